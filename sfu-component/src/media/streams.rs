//! Which str0m streams each endpoint's `Rtc` has: a `StreamRx` for every
//! SSRC the endpoint sends (with its FID rtx), and a `StreamTx` for every
//! stream of the other endpoints as receivers see it (one per source; the
//! first `SIM` SSRC for simulcast), each with the sender's rtx SSRC so str0m
//! answers NACKs from its cache, and a synthetic rid so a keyframe request
//! (str0m reports mid+rid) finds its sender. Recomputed whenever sources,
//! endpoints or `Rtc`s change.

use std::collections::{HashMap, HashSet};

use media_signalling::{MediaKind, Source};
use str0m::rtp::Ssrc;

use super::conference::Conference;
use super::endpoint::{ForwardedStream, configure_forwarded_stream, mid_of};
use super::forward::LayerForwarder;

/// A stream as receivers see it.
#[derive(Debug, Clone, Copy)]
pub(super) struct VisibleStream {
    ssrc: u32,
    rtx: Option<u32>,
    kind: MediaKind,
}

/// An SSRC an endpoint sends, its rtx and kind.
type OwnStream = (u32, Option<u32>, MediaKind);

fn visible_streams(sources: &[Source]) -> Vec<VisibleStream> {
    let mut out = Vec::new();
    for source in sources {
        let sim = source
            .groups
            .iter()
            .find(|g| g.semantics == "SIM" && g.ssrcs.len() > 1);
        if let Some(first) = sim.and_then(|g| g.ssrcs.first()) {
            out.push(VisibleStream {
                ssrc: *first,
                rtx: source.rtx_for(*first),
                kind: source.kind,
            });
            continue;
        }
        for ssrc in source.primary_ssrcs() {
            out.push(VisibleStream {
                ssrc,
                rtx: source.rtx_for(ssrc),
                kind: source.kind,
            });
        }
    }
    out
}

impl Conference {
    /// Declares on every endpoint's `Rtc` what it receives and sends, and
    /// removes what is no longer signalled.
    pub fn declare_all_streams(&mut self) {
        let all: Vec<(String, bool, Vec<VisibleStream>, Vec<OwnStream>)> = self
            .endpoints
            .iter()
            .map(|(id, e)| {
                let own = e
                    .sources
                    .iter()
                    .flat_map(|s| {
                        s.primary_ssrcs()
                            .into_iter()
                            .map(|p| (p, s.rtx_for(p), s.kind))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                (id.clone(), e.relay, visible_streams(&e.sources), own)
            })
            .collect();
        let ssrcs = &self.ssrcs;
        // Who sends an SSRC: a relayed endpoint's arrive on its relay.
        let owner_of = |carrier: &str, ssrc: u32| -> String {
            ssrcs
                .get(&ssrc)
                .map_or_else(|| carrier.to_string(), |i| i.owner.clone())
        };
        for (id, endpoint) in self.endpoints.iter_mut() {
            let Some(rtc) = endpoint.rtc.as_mut() else {
                continue;
            };
            // What it sends.
            let own = all
                .iter()
                .find(|(owner, ..)| owner == id)
                .map(|(_, _, _, own)| own.clone())
                .unwrap_or_default();
            let wanted: HashSet<u32> = own.iter().map(|(s, _, _)| *s).collect();
            for old in endpoint
                .rx_ssrcs
                .difference(&wanted)
                .copied()
                .collect::<Vec<_>>()
            {
                rtc.direct_api().remove_stream_rx(Ssrc::from(old));
                endpoint.rx_ssrcs.remove(&old);
            }
            for (ssrc, rtx, kind) in own {
                if endpoint.rx_ssrcs.insert(ssrc) {
                    rtc.direct_api().expect_stream_rx(
                        Ssrc::from(ssrc),
                        rtx.map(Ssrc::from),
                        mid_of(kind),
                        None,
                    );
                }
            }
            // What it receives from the others.
            // A relay gets every layer of the local endpoints on its own
            // SSRC (the peer bridge chooses layers for its receivers); an
            // endpoint gets what receivers see of the others, relayed ones
            // included. Nothing goes from a relay to a relay.
            let mut wanted_tx: HashMap<u32, (String, VisibleStream)> = HashMap::new();
            for (carrier, relay, streams, own) in all.iter().filter(|(o, ..)| o != id) {
                if endpoint.relay {
                    if *relay {
                        continue;
                    }
                    for (ssrc, rtx, kind) in own {
                        let stream = VisibleStream {
                            ssrc: *ssrc,
                            rtx: *rtx,
                            kind: *kind,
                        };
                        wanted_tx.insert(*ssrc, (carrier.clone(), stream));
                    }
                    continue;
                }
                for stream in streams {
                    wanted_tx.insert(stream.ssrc, (owner_of(carrier, stream.ssrc), *stream));
                }
            }
            let stale: Vec<u32> = endpoint
                .forwarded
                .iter()
                .filter(|(ssrc, f)| {
                    wanted_tx
                        .get(ssrc)
                        .is_none_or(|(owner, _)| *owner != f.sender)
                })
                .map(|(ssrc, _)| *ssrc)
                .collect();
            for ssrc in stale {
                if let Some(f) = endpoint.forwarded.remove(&ssrc) {
                    endpoint.rid_to_ssrc.remove(&f.rid);
                    if let Some(rtx) = f.rtx {
                        endpoint.rtx_ssrcs.remove(&rtx);
                    }
                }
                if let Some(rtc) = endpoint.rtc.as_mut() {
                    rtc.direct_api().remove_stream_tx(Ssrc::from(ssrc));
                }
            }
            for (ssrc, (owner, stream)) in wanted_tx {
                if endpoint.forwarded.contains_key(&ssrc) {
                    continue;
                }
                let rid = endpoint.allocate_rid();
                if let Some(rtc) = endpoint.rtc.as_mut() {
                    let mut api = rtc.direct_api();
                    let tx = api.declare_stream_tx(
                        Ssrc::from(ssrc),
                        stream.rtx.map(Ssrc::from),
                        mid_of(stream.kind),
                        Some(rid),
                    );
                    configure_forwarded_stream(tx, stream.kind);
                }
                endpoint.rid_to_ssrc.insert(rid, ssrc);
                if let Some(rtx) = stream.rtx {
                    endpoint.rtx_ssrcs.insert(rtx);
                }
                let name = ssrcs
                    .get(&ssrc)
                    .map(|i| i.source_name.as_str())
                    .unwrap_or_default();
                let target = endpoint.target_for(&owner, name);
                endpoint.forwarded.insert(
                    ssrc,
                    ForwardedStream {
                        rid,
                        sender: owner,
                        kind: stream.kind,
                        rtx: stream.rtx,
                        roc_base: None,
                        forwarder: LayerForwarder::new(target),
                    },
                );
            }
        }
    }
}
