//! # recorder-component
//!
//! lilt's recorder: what Jibri does, without a browser. It speaks Jibri's
//! protocol to the focus (Jicofo or lilt's focus) from the JibriBrewery
//! room, joins each recorded conference as a hidden participant from the
//! recorder domain, and writes each recording as one WebM — the dominant
//! speaker's video copied, everyone's audio mixed into one Opus track — in
//! Jibri's directory layout. Many recordings run at once in one process.
//!
//! Where to start reading: [`recorder`] (the sans-IO [`Recorder`]: Jibri's
//! IQs and presences, stanzas and time in, stanzas, events and a deadline
//! out), with its settings and events in [`events`], its wire shapes in
//! [`jibri_iq`], [`brewery`], [`conference`] and [`replies`]; then
//! [`recording`] (the media of one recording: RTP in,
//! WebM out), built on [`rtp`], [`sources`] (SSRC to endpoint from the
//! focus's Jingle), [`depacketizer`] (video frames from RTP, with
//! [`vp8`], [`vp9`] and [`av1`] for each payload format), [`timeline`]
//! (one clock), [`speaker`] (video switching at keyframes), [`mixer`]
//! (Opus decode, mix, encode) and [`webm`]/[`ebml`] (the file);
//! [`participant_files`] optionally adds one file per participant. [`files`]
//! is the directory layout, metadata.json, the finalize script and the
//! disk-space check, [`recordings`] acts on the recorder's events with
//! them; [`media_link`] answers the focus's Jingle offer as a
//! receive-only browser (str0m, sans-IO) and [`media_runtime`] gives it
//! its UDP socket and [`bridge_channel`] (colibri-ws); [`run`] is the thin tokio runtime
//! and [`cli`] `lilt recorder`'s flags.
//!
//! ## Codecs and retransmissions
//!
//! Video is copied as the senders encoded it: VP8, VP9 (one spatial layer,
//! or several joined into a superframe) or AV1 (temporal units with their
//! sequence header, `av1C` as CodecPrivate); the file takes the codec of
//! its first frame. The media link negotiates RTX as a browser does, so
//! lost video packets are NACKed and the bridge's retransmissions fill the
//! gaps before a frame is given up (and a keyframe asked for).
//!
//! ## Live streaming (`recording_mode='stream'`): what it would take
//!
//! Jibri streams by pushing its screen capture to an RTMP URL (the
//! `streamid` of `<jibri action='start' recording_mode='stream'>`, usually
//! YouTube's); the recorder refuses that mode today (`off`, `error`, no
//! retry). Doing it from the media, as recordings are done:
//!
//! - **Protocol**: accept `stream` in [`recorder`] (Jicofo's rule is already
//!   parsed: a `streamid` without a mode means stream), keep the status and
//!   failure flow (`should_retry` when the RTMP server refuses or drops the
//!   connection, as Jibri's `RTMP_CONNECTION_FAILED`), no metadata.json or
//!   finalize script, and no disk check.
//! - **An output beside the WebM file**: [`recording::Recording`] writes into
//!   a [`webm::WebmWriter`]; the same timeline, speaker switching and mix
//!   would feed a live muxer instead: FLV tags over RTMP (handshake,
//!   chunk stream, `connect`/`createStream`/`publish`), a sans-IO client
//!   with a thin tokio TCP (and TLS for `rtmps://`) runtime, paced on the
//!   recording clock, never going back in time across speaker switches.
//! - **Codecs**: classic RTMP carries H.264 and AAC only. Audio: the mix
//!   is already decoded, so encoding it to AAC instead of Opus is cheap but
//!   needs an AAC encoder (libfdk-aac is not in Debian main; ffmpeg's
//!   native encoder via a library, or Opus over enhanced RTMP). Video: the
//!   speaker's VP8/VP9/AV1 cannot be copied into classic RTMP; either the
//!   conference uses H.264 (Jitsi can prefer it; then the frames are copied
//!   after an Annex-B/AVCC conversion), or the server speaks *enhanced
//!   RTMP* (FourCC `vp09`/`av01`; YouTube takes AV1 and VP9 that way), or
//!   the video is decoded and re-encoded (libvpx/dav1d to x264): about a
//!   core per 720p30 stream, which gives up what makes this recorder cheap.
//! - **Tests**: a local RTMP sink on loopback (`ffmpeg -listen 1 -f flv -i
//!   rtmp://127.0.0.1:PORT/live/key`) reading the stream, with ffprobe
//!   checks as for the files, and the browser test starting a stream
//!   through lib-jitsi-meet (`startRecording({mode: 'stream', streamId})`).
//!
//! Other live outputs need no transcoding at all: HLS or DASH segments of
//! WebM/fMP4 (the clusters this writer already closes at keyframes are
//! segments), or WHIP (WebRTC) to a streaming service, where the media
//! link's str0m would send instead of receive.

pub mod av1;
pub mod bits;
pub mod brewery;
pub mod bridge_channel;
pub mod cli;
pub mod conference;
pub mod depacketizer;
pub mod ebml;
pub mod events;
pub mod files;
pub mod jibri_iq;
pub mod media_link;
pub mod media_runtime;
pub mod mixer;
pub mod ns;
pub mod participant_files;
pub mod recorder;
pub mod recording;
pub mod recordings;
pub mod replies;
pub mod rtp;
pub mod run;
pub mod sources;
pub mod speaker;
pub mod timeline;
pub mod vp8;
pub mod vp9;
pub mod webm;

pub use cli::RecorderArgs;
pub use recorder::{Output, Recorder, RecorderEvent, RecorderOptions, StopReason};
pub use recording::{Media, Recording};
pub use run::run_with_links;
