//! Jitsi's bridge-channel JSON as a client sends it
//! (`sfu_component::channel::incoming::parse_client_message`).

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(message) = sfu_component::channel::incoming::parse_client_message(&text) {
        let _ = message.class();
    }
}
