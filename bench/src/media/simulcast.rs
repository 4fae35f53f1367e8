//! The `lilt-core-alloc` scenario: bandwidth allocation on. Every sender
//! sends its video as three simulcast layers (VP8 with three temporal
//! layers, 180p / 360p / 720p sharing the video bit rate of the other
//! scenarios 1 : 3 : 10, so a sender offers the same load; a `SIM` group of three SSRCs, each with its `FID` rtx SSRC),
//! and every endpoint tells the bridge over its bridge channel
//! (ReceiverVideoConstraints, through the bridge host's `channel` lines)
//! that it wants at most 360p, so the allocator forwards the middle layer
//! of each source to each receiver: one layer of three, rewritten onto
//! the receiver-visible SSRC (the first of the group).

use str0m::media::{Mid, Rid};
use str0m::rtp::Ssrc;

use super::payload::VideoShape;
use super::peer::{Kind, OutStream, Peer, SimLayer};

/// What every endpoint asks for.
pub const CONSTRAINTS: &str =
    r#"{"colibriClass":"ReceiverVideoConstraints","defaultConstraints":{"maxHeight":360}}"#;

/// The layer the constraints select (index in the `SIM` group).
pub const FORWARDED_LAYER: usize = 1;

/// Each layer's size and share of the sender's video bit rate (in
/// fourteenths; more than that made str0m's pacer in the senders queue).
const LAYERS: [(u16, u16, usize); 3] = [(320, 180, 1), (640, 360, 3), (1280, 720, 10)];

/// A sender's video layers (stream number, SSRC, rtx SSRC, layer index),
/// lowest first.
pub type SenderLayers = Vec<(u32, u32, u32, usize)>;

/// Adds sender `i`'s three layers to `p` from stream number `first`.
pub fn add_sender(p: &mut Peer, i: usize, first: u32, top: VideoShape) -> SenderLayers {
    let top_bytes = top.packets_per_frame as usize * top.packet_size;
    let max_packet = top.packet_size;
    let mut out = Vec::new();
    for (layer, (width, height, share)) in LAYERS.iter().enumerate() {
        let base = 0x0200_0000 + 16 * i as u32 + 2 * layer as u32;
        let (ssrc, rtx) = (base, base + 1);
        let kbps = (top_bytes * share / 14 * 8 * top.fps as usize / 1000) as u32;
        let shape = VideoShape::new(kbps.max(1), top.fps, max_packet);
        let number = first + layer as u32;
        let mut s = OutStream::new(number, Kind::Video, Ssrc::from(ssrc), Some(Ssrc::from(rtx)));
        s.layer = Some(SimLayer::new(shape, *width, *height));
        p.outgoing.push(s);
        // Each layer its own rid (not sent: no rid extension is mapped):
        // str0m's pacer picks a send queue by mid and rid, and with three
        // streams under one (mid, no rid) it found only one of them, so the
        // others' packets waited while the sender's `Rtc` asked for an
        // immediate timeout again and again (the generator at 100 % CPU).
        let rid = Rid::from(format!("l{layer}").as_str());
        p.rtc.direct_api().declare_stream_tx(
            Ssrc::from(ssrc),
            Some(Ssrc::from(rtx)),
            Mid::from("v"),
            Some(rid),
        );
        out.push((number, ssrc, rtx, layer));
    }
    out
}

/// The video `<media-source>` of a simulcast sender: every SSRC, the
/// `SIM` group and one `FID` group per layer.
pub fn video_source_xml(endpoint: &str, layers: &SenderLayers) -> String {
    let ssma = "urn:xmpp:jingle:apps:rtp:ssma:0";
    let name = format!("{endpoint}-v0");
    let msid = format!("{name}-stream {name}-track");
    let mut s = format!("<media-source type='video' id='{name}'>");
    for (_, ssrc, rtx, _) in layers {
        for x in [ssrc, rtx] {
            s.push_str(&format!(
                "<source xmlns='{ssma}' ssrc='{x}' name='{name}'><parameter name='msid' value='{msid}'/></source>"
            ));
        }
    }
    s.push_str(&format!("<ssrc-group xmlns='{ssma}' semantics='SIM'>"));
    for (_, ssrc, _, _) in layers {
        s.push_str(&format!("<source ssrc='{ssrc}'/>"));
    }
    s.push_str("</ssrc-group>");
    for (_, ssrc, rtx, _) in layers {
        s.push_str(&format!(
            "<ssrc-group xmlns='{ssma}' semantics='FID'><source ssrc='{ssrc}'/><source ssrc='{rtx}'/></ssrc-group>"
        ));
    }
    s.push_str("</media-source>");
    s
}

/// The bridge host's `channel` line carrying `json` for the endpoint whose
/// bridge channel is at `url` (`.../<conference>/<endpoint>?pwd=...`).
pub fn channel_line(url: &str, json: &str) -> Option<String> {
    let (path, query) = url.split_once('?')?;
    let pwd = query.strip_prefix("pwd=")?;
    let mut parts = path.rsplit('/');
    let endpoint = parts.next()?;
    let conference = parts.next()?;
    Some(format!("channel {conference} {endpoint} {pwd} {json}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// str0m's pacer finds a send stream by mid and rid: each layer must
    /// be found as itself, not the three under one key.
    #[test]
    fn every_layer_is_its_own_send_queue() {
        let rtc = super::super::peer::rtc_config().build(std::time::Instant::now());
        let mut p = Peer::new("s".into(), rtc, [127, 0, 0, 1].into()).unwrap();
        p.rtc
            .direct_api()
            .declare_media(Mid::from("v"), str0m::media::MediaKind::Video);
        let layers = add_sender(&mut p, 0, 1, VideoShape::new(1000, 30, 1100));
        assert_eq!(layers.len(), 3);
        for (_, ssrc, _, layer) in layers {
            let rid = Rid::from(format!("l{layer}").as_str());
            let mut api = p.rtc.direct_api();
            let found = api
                .stream_tx_by_mid(Mid::from("v"), Some(rid))
                .map(|t| t.ssrc());
            assert_eq!(found, Some(Ssrc::from(ssrc)), "layer {layer}");
        }
    }

    #[test]
    fn channel_line_from_the_url() {
        let url = "ws://127.0.0.1:9/colibri-ws/bench/c0ffee/1000aaaa?pwd=secret";
        assert_eq!(
            channel_line(url, "{}").as_deref(),
            Some("channel c0ffee 1000aaaa secret {}")
        );
    }
}
