//! The AV1 dependency descriptor RTP header extension as a sender puts it
//! on its packets (`sfu_component::media::check_av1_dependency_descriptors`):
//! each part is one packet's descriptor of the same SSRC, in order (a
//! structure sent in one is what the later ones refer to); each parsed
//! descriptor is also rewritten as the bridge does for a receiver and must
//! read back the same.

pub fn run(data: &[u8]) {
    let parts = crate::parts::split(data);
    sfu_component::media::check_av1_dependency_descriptors(&parts);
}
