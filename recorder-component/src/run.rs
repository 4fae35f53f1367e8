//! The thin tokio runtime: one task owns the [`Recorder`], its two links
//! (control: `jibri@auth.D`; call: `recorder@recorder.D`) and the
//! [`Recordings`] on disk, feeding stanzas and timeouts in and sending what
//! comes out. Free disk space is measured every [`DISK_CHECK`].
//!
//! The focus's Jingle session for each recording arrives as
//! [`RecorderEvent::CallIq`]: [`MediaLinks`] answers it (a str0m
//! [`crate::media_link::MediaLink`] on a UDP socket of its own), and
//! its RTP goes into the recording, its bridge channel's dominant speaker
//! into `set_speaker`, the recording's keyframe requests out as PLIs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xmpp_core::client::ClientLink;

use crate::files::free_space;
use crate::media_runtime::MediaLinks;
use crate::recorder::{Output, Recorder, RecorderEvent, RecorderOptions};
use crate::recordings::Recordings;

/// How often free disk space is measured.
pub const DISK_CHECK: Duration = Duration::from_secs(5);
/// Media inputs (datagrams, speaker changes) handled in one turn of the
/// loop at most, so that stanzas and timeouts still get their turn.
const MEDIA_BATCH: usize = 64;

/// Runs the recorder on two bound sessions until either ends.
pub async fn run_with_links(
    mut control: ClientLink,
    mut call: ClientLink,
    mut options: RecorderOptions,
    finalize_script: Option<PathBuf>,
) {
    options.jid = control.jid.to_string();
    options.recorder_jid = call.jid.to_string();
    let control_tx = control.sender();
    let call_tx = call.sender();
    let mut files = Recordings::new(&options.dir, finalize_script);
    let dir = options.dir.clone();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), %e, "cannot create the recordings directory");
    }
    let now = Instant::now();
    let mut recorder = Recorder::new(options, now);
    let (mut media, mut media_rx) = MediaLinks::new(recorder.options().insecure_tls);
    let mut next_disk_check = now;
    tracing::info!(control = %control.jid, call = %call.jid, "recorder started");
    loop {
        let now = Instant::now();
        if now >= next_disk_check {
            match free_space(&dir) {
                Ok(bytes) => recorder.set_free_space(now, bytes),
                Err(e) => tracing::warn!(%e, "cannot read free disk space"),
            }
            next_disk_check = now + DISK_CHECK;
        }
        for (session_id, e) in files.handle_timeout(now) {
            recorder.media_failed(now, &session_id, &e.to_string());
        }
        for (session_id, e) in media.handle_timeout(now, &mut files) {
            recorder.media_failed(now, &session_id, &e);
        }
        while let Some(out) = recorder.poll_output() {
            let sent = match out {
                Output::Control(s) => control_tx.send(s),
                Output::Call(s) => call_tx.send(s),
                Output::Event(e) => on_event(&mut recorder, &mut files, &mut media, now, &e)
                    .into_iter()
                    .all(|s| call_tx.send(s)),
            };
            if !sent {
                return;
            }
        }
        let deadline = [
            recorder.next_timeout(),
            files.next_timeout(),
            media.next_timeout(),
            Some(next_disk_check),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + DISK_CHECK);
        tokio::select! {
            s = control.recv() => match s {
                Some(s) => recorder.handle_stanza(Instant::now(), s),
                None => { tracing::warn!("the recorder's control session ended"); break; }
            },
            s = call.recv() => match s {
                Some(s) => recorder.handle_stanza(Instant::now(), s),
                None => { tracing::warn!("the recorder's call session ended"); break; }
            },
            Some(input) = media_rx.recv() => {
                // Whatever else has arrived is handled in the same turn: the
                // timeouts of every link are looked at once per batch, not
                // once per datagram.
                let mut batch = Some(input);
                let mut handled = 0;
                while let Some(input) = batch.take() {
                    for (session_id, e) in media.input(Instant::now(), input, &mut files) {
                        recorder.media_failed(Instant::now(), &session_id, &e);
                    }
                    handled += 1;
                    if handled < MEDIA_BATCH {
                        batch = media_rx.try_recv().ok();
                    }
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                recorder.handle_timeout(Instant::now());
            }
        }
    }
    // The links are gone: close every file cleanly.
    let now = Instant::now();
    let ids: Vec<String> = recorder.sessions().map(str::to_string).collect();
    for id in ids {
        recorder.media_failed(now, &id, "XMPP session ended");
    }
    while let Some(out) = recorder.poll_output() {
        if let Output::Event(e) = out {
            on_event(&mut recorder, &mut files, &mut media, now, &e);
        }
    }
    files.wait_finalizers();
}

/// Acts on one event; returns the stanzas to send on the call link.
fn on_event(
    recorder: &mut Recorder,
    files: &mut Recordings,
    media: &mut MediaLinks,
    now: Instant,
    e: &RecorderEvent,
) -> Vec<xmpp_core::Element> {
    match files.handle_event(now, e) {
        Ok(Some(done)) => {
            tracing::info!(session = %done.session_id, file = %done.file.display(), "recording finished")
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(%err, "recording files");
            if let RecorderEvent::Started { session_id, .. } = e {
                recorder.media_failed(now, session_id, &err.to_string());
            }
        }
    }
    match e {
        RecorderEvent::CallIq { session_id, iq } => {
            let responder = recorder.options().recorder_jid.clone();
            return media.call_iq(now, session_id, iq, &responder);
        }
        RecorderEvent::Stopped { session_id, .. } => media.stop(session_id),
        _ => {}
    }
    Vec::new()
}
