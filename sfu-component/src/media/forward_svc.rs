//! VP9 SVC for one receiver: a VP9 source sent as one SSRC carries its
//! spatial layers as SIDs of the payload descriptor (RFC 9628). Layer
//! frames of a SID above the target and of a TID above the target are
//! dropped, each dropped packet shifting the following sequence numbers
//! down (the same history as VP8's temporal drops), and the last packet
//! kept of a picture (E=1 at the highest SID forwarded) gets the marker
//! bit that the dropped top layer carried.
//!
//! Switching: a lower SID takes effect at the next picture; a higher one
//! at the next key picture (asked of the sender, throttled as layer
//! switches are), since an upper spatial layer predicts from its own
//! earlier frames. A new temporal limit takes effect at the next TID 0
//! picture. Picture ids are left as sent: flexible mode refers to earlier
//! pictures by picture id difference, which renumbering would break, and
//! the receiver's depacketizer accepts gaps in them.

use std::time::Instant;

use super::{Incoming, LayerDecision, LayerForwarder, Target};
use crate::media::vp9::Vp9Info;

impl LayerForwarder {
    /// [`LayerForwarder::on_packet`] for a VP9 SVC packet.
    pub(super) fn on_svc_packet(
        &mut self,
        now: Instant,
        packet: &Incoming,
        vp9: &Vp9Info,
    ) -> (LayerDecision, Option<usize>) {
        let (sid_target, tid_target) = match self.target {
            Target::Suspended => return (LayerDecision::Drop, None),
            Target::Top => (u8::MAX, u8::MAX),
            Target::Layer(l) => (l.spatial, l.temporal),
        };
        if self.current != Some(packet.spatial) {
            if !packet.keyframe {
                return (
                    LayerDecision::Drop,
                    self.keyframe_request(now, packet.spatial),
                );
            }
            self.switch_to(now, packet);
            self.sid_limit = sid_target;
            self.temporal_limit = tid_target;
        } else if vp9.starts_picture() {
            if sid_target < self.sid_limit || (sid_target > self.sid_limit && packet.keyframe) {
                self.sid_limit = sid_target;
            }
            if vp9.tid == 0 {
                self.temporal_limit = tid_target;
            }
        }
        let request = if sid_target > self.sid_limit {
            self.keyframe_request(now, packet.spatial)
        } else {
            None
        };
        if vp9.sid > self.sid_limit || vp9.tid > self.temporal_limit {
            self.drop_packet(packet);
            return (LayerDecision::Drop, request);
        }
        let mut decision = self.rewrite(now, packet);
        if let LayerDecision::Forward { marker, .. } = &mut decision {
            *marker = packet.marker || (vp9.ends_frame && vp9.sid == self.sid_limit);
        }
        (decision, request)
    }
}
