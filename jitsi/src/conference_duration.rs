//! `conference_duration` (Jitsi's mod_conference_duration), on the
//! VirtualHost: on the `main_muc` component, a room's disco#info carries
//! `muc#roominfo_created_timestamp`, the time (milliseconds since the Unix
//! epoch, as text) its second occupant joined, which Jitsi's client counts
//! the conference duration from (empty before). The host also announces the
//! deprecated `component`/`conference_duration` identity at
//! `conference_duration_component` (default `conferenceduration.<host>`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xmpp_core::{Host, Server};

use muc::events::{lock, room_of};
use muc::features::on_disco;
use muc::form::{Field, FieldValue};
use muc::room::iq::add_disco_field;

/// Each room's `created_timestamp` (not saved, as in Jitsi).
#[derive(Default)]
struct Created(Mutex<HashMap<String, String>>, Mutex<bool>);

pub fn register(server: &Arc<Server>, host: &Arc<Host>) {
    let Some(main_muc) = host.option_str("main_muc").map(str::to_string) else {
        tracing::error!(host = %host.name, "conference_duration not enabled: missing main_muc config");
        return;
    };
    let component = host
        .option_str("conference_duration_component")
        .map(str::to_string)
        .unwrap_or_else(|| format!("conferenceduration.{}", host.name));
    modules::disco::add_identity(host, "component", "conference_duration", Some(&component));
    let Some(muc) = server.host(&main_muc) else {
        tracing::info!(host = %host.name, "no host/component found for main_muc {main_muc}");
        return;
    };
    let created = muc.extension::<Created>();
    {
        // Several VirtualHosts may name the same main_muc: hook it once.
        let mut hooked = lock(&created.1);
        if *hooked {
            return;
        }
        *hooked = true;
    }
    let c = created.clone();
    on_disco(&muc, move |room, event| {
        let value = lock(&c.0).get(&room.jid).cloned().unwrap_or_default();
        let field = Field::new("muc#roominfo_created_timestamp", "text-single")
            .label("The meeting created_timestamp.")
            .value(Some(FieldValue::Text(value)));
        let value = field.value.clone();
        add_disco_field(event, field, value);
    });
    let c = created.clone();
    muc.events.hook("muc-occupant-joined", -1, move |event| {
        if let Some(room) = room_of(event)
            && room.occupant_count() > 1
        {
            let now = event.server.clock.now();
            lock(&c.0)
                .entry(room.jid.clone())
                .or_insert_with(|| format!("{}", (now.floor() as i64) * 1000));
        }
        false
    });
    muc.events.hook("muc-room-destroyed", 0, move |event| {
        if let Some(room) = room_of(event) {
            lock(&created.0).remove(&room.jid);
        }
        false
    });
}
