//! The XML namespaces the focus speaks, by their Jitsi names.

pub const CLIENT: &str = "jabber:client";
pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const DATA_FORMS: &str = "jabber:x:data";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const CAPS: &str = "http://jabber.org/protocol/caps";

/// The conference IQ, `bridge-session`, `ice-state`, `conference-properties`.
pub const FOCUS: &str = "http://jitsi.org/protocol/focus";
/// `json-message`, `ssrc-info`, `versions`, `stats-id`, `region`.
pub const JITMEET: &str = "http://jitsi.org/jitmeet";
pub const MUTE_AUDIO: &str = "http://jitsi.org/jitmeet/audio";
pub const MUTE_VIDEO: &str = "http://jitsi.org/jitmeet/video";
pub const MUTE_DESKTOP: &str = "http://jitsi.org/jitmeet/desktop";

pub const JINGLE: &str = "urn:xmpp:jingle:1";
pub const JINGLE_RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
pub const JINGLE_ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
pub const JINGLE_DTLS: &str = "urn:xmpp:jingle:apps:dtls:0";
pub const JINGLE_RTCP_FB: &str = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0";
pub const JINGLE_HDREXT: &str = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0";
pub const JINGLE_GROUPING: &str = "urn:xmpp:jingle:apps:grouping:0";
pub const JINGLE_SSMA: &str = "urn:xmpp:jingle:apps:rtp:ssma:0";

pub const COLIBRI: &str = "http://jitsi.org/protocol/colibri";
pub const COLIBRI2: &str = "jitsi:colibri2";
pub const HEALTHCHECK: &str = "http://jitsi.org/protocol/healthcheck";
pub const JIBRI: &str = "http://jitsi.org/protocol/jibri";

/// Client features (disco#info) that change what the focus sends.
pub const FEATURE_JSON_SOURCES: &str = "http://jitsi.org/json-encoded-sources";
pub const FEATURE_RTX: &str = "urn:ietf:rfc:4588";
pub const FEATURE_SOURCE_NAMES: &str = "http://jitsi.org/source-name";
pub const FEATURE_RECEIVE_MULTIPLE_STREAMS: &str =
    "http://jitsi.org/receive-multiple-video-streams";
pub const FEATURE_TCC: &str = "http://jitsi.org/tcc";
pub const FEATURE_REMB: &str = "http://jitsi.org/remb";
pub const FEATURE_AUDIO: &str = "urn:xmpp:jingle:apps:rtp:audio";
pub const FEATURE_VIDEO: &str = "urn:xmpp:jingle:apps:rtp:video";
