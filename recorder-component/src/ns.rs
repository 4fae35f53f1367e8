//! XML namespaces of Jibri's protocol and the MUC.

pub const JIBRI: &str = "http://jitsi.org/protocol/jibri";
pub const HEALTH: &str = "http://jitsi.org/protocol/health";
pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NICK: &str = "http://jabber.org/protocol/nick";
pub const CLIENT: &str = "jabber:client";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const PING: &str = "urn:xmpp:ping";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
