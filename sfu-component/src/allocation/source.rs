//! The allocator's view of the conference's video sources: who sends them,
//! their video type, and each layer's height, frame rate and bit rate as
//! the media core measured them ([`crate::media::SourceLayers`]). Built
//! from the signalled sources, so a source the core has not measured yet
//! (no packet so far) is still there, with its layers unmeasured.

use crate::conference::{Conference, Endpoint};
use crate::media::{LayerId, SourceLayers};

/// Videobridge's `VideoType` of a source (`SourceVideoTypeMessage`, or the
/// focus' `desktop` marking).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoType {
    Camera,
    Desktop,
    DesktopHighFps,
    /// The sender said it sends no video on this source.
    None,
}

impl VideoType {
    pub fn parse(text: &str) -> VideoType {
        match text.to_ascii_lowercase().as_str() {
            "desktop" => VideoType::Desktop,
            "desktop_high_fps" => VideoType::DesktopHighFps,
            "none" => VideoType::None,
            _ => VideoType::Camera,
        }
    }

    pub fn is_enabled(self) -> bool {
        self != VideoType::None
    }

    pub fn is_screen_share(self) -> bool {
        matches!(self, VideoType::Desktop | VideoType::DesktopHighFps)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VideoType::Camera => "CAMERA",
            VideoType::Desktop => "DESKTOP",
            VideoType::DesktopHighFps => "DESKTOP_HIGH_FPS",
            VideoType::None => "NONE",
        }
    }
}

/// The temporal id of an unmeasured layer: every frame is forwarded
/// until the core knows the source's temporal layers.
pub const ALL_TEMPORAL: u8 = u8::MAX;

/// One layer (Videobridge's `RtpLayerDesc` with a bit rate snapshot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layer {
    pub id: LayerId,
    /// -1 when not known.
    pub height: i64,
    /// Frames per second, -1 when not known.
    pub frame_rate: f64,
    /// Measured bits per second, this temporal layer and the ones below
    /// it; 0 when the layer is not being received.
    pub bitrate_bps: i64,
}

/// One video source of the conference.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDesc {
    pub owner: String,
    pub name: String,
    pub video_type: VideoType,
    /// Lowest first (spatial, then temporal).
    pub layers: Vec<Layer>,
}

/// The name of an endpoint's `index`-th video source: as signalled, or
/// `<owner>-v<index>` for the 2021 clients' unnamed ones (as the media
/// core names them).
pub fn video_source_name(owner: &str, index: usize, signalled: &str) -> String {
    if signalled.is_empty() {
        format!("{owner}-v{index}")
    } else {
        signalled.to_string()
    }
}

/// Every video source of `conf` in speech-activity order (dominant speaker
/// first, as Videobridge's `ConferenceSpeechActivity` orders endpoints),
/// with the layers the core measured, or unmeasured layers (one per
/// simulcast SSRC, every temporal layer: [`ALL_TEMPORAL`]) for a source
/// it has not measured.
pub fn conference_sources(conf: &Conference, measured: &[SourceLayers]) -> Vec<SourceDesc> {
    let mut out = Vec::new();
    for owner in conf.speaker_order() {
        let Some(ep) = conf.endpoints.get(&owner) else {
            continue;
        };
        out.extend(endpoint_sources(ep, measured));
    }
    out
}

fn endpoint_sources(ep: &Endpoint, measured: &[SourceLayers]) -> Vec<SourceDesc> {
    ep.video_sources()
        .enumerate()
        .map(|(i, s)| {
            let name = video_source_name(&ep.id, i, &s.name);
            let video_type = ep
                .video_types
                .get(&name)
                .map(|t| VideoType::parse(t))
                .or_else(|| s.video_type.as_deref().map(VideoType::parse))
                .unwrap_or(VideoType::Camera);
            let layers = match measured
                .iter()
                .find(|m| m.owner == ep.id && m.source_name == name)
                .filter(|m| !m.layers.is_empty())
            {
                Some(m) => m
                    .layers
                    .iter()
                    .map(|l| Layer {
                        id: l.layer,
                        height: if l.height == 0 {
                            -1
                        } else {
                            i64::from(l.height)
                        },
                        frame_rate: if l.frame_rate > 0.0 {
                            l.frame_rate
                        } else {
                            -1.0
                        },
                        bitrate_bps: i64::try_from(l.bitrate_bps).unwrap_or(i64::MAX),
                    })
                    .collect(),
                None => {
                    let spatial = s
                        .groups
                        .iter()
                        .find(|g| g.semantics == "SIM")
                        .map_or(1, |g| g.ssrcs.len().max(1));
                    (0..spatial.min(usize::from(u8::MAX)))
                        .map(|i| Layer {
                            id: LayerId::new(u8::try_from(i).unwrap_or(u8::MAX), ALL_TEMPORAL),
                            height: -1,
                            frame_rate: -1.0,
                            bitrate_bps: 0,
                        })
                        .collect()
                }
            };
            SourceDesc {
                owner: ep.id.clone(),
                name,
                video_type,
                layers,
            }
        })
        .collect()
}
