//! mod_debug_reset: when the last client leaves, modules forget what they
//! keep in memory (here mod_pep's entity caps cache), as after Prosody's
//! reset; while a client stays, nothing is forgotten.

use crate::im_common;

use im_common::*;
use xmpp_core::stanza::{Element, NS_CLIENT};

const CAPS: &str = "http://jabber.org/protocol/caps";
const INFO: &str = "http://jabber.org/protocol/disco#info";
const VER: &str = "PDH7CGVPRERS2WUqBD18PHGEzaY=";
const NODE: &str = "http://code.matthewwild.co.uk/verse/";

fn caps_presence() -> Element {
    Element::new("presence", NS_CLIENT).child(
        Element::new("c", CAPS)
            .attr("hash", "sha-1")
            .attr("node", NODE)
            .attr("ver", VER),
    )
}

/// Sends available presence with caps; `true` when the server asks about
/// the caps (and answers the question as the client would).
fn presence_asks_disco(c: &mut Client) -> bool {
    c.send(caps_presence());
    let asked = c
        .drain()
        .into_iter()
        .find(|s| s.name() == "iq" && s.id() == Some("disco"));
    if let Some(q) = &asked {
        let answer = Element::new("iq", NS_CLIENT)
            .attr("type", "result")
            .attr("id", "disco")
            .attr("to", q.from().unwrap_or_default())
            .child(
                Element::new("query", INFO)
                    .attr("node", format!("{NODE}#{VER}"))
                    .child(
                        Element::new("identity", INFO)
                            .attr("category", "client")
                            .attr("type", "pc")
                            .attr("name", "Verse"),
                    )
                    .child(Element::new("feature", INFO).attr("var", INFO))
                    .child(
                        Element::new("feature", INFO)
                            .attr("var", "http://jabber.org/protocol/disco#items"),
                    )
                    .child(Element::new("feature", INFO).attr("var", CAPS)),
            );
        c.send(answer);
        c.drain();
    }
    asked.is_some()
}

fn harness(with_reset: bool) -> Harness {
    let mut mods = IM_MODULES.to_vec();
    mods.push("pep");
    if with_reset {
        mods.push("debug_reset");
    }
    Harness::with(&["romeo", "juliet"], &mods, Setup::default())
}

#[test]
fn last_client_leaving_empties_the_caps_cache() {
    let h = harness(true);
    let mut romeo = h.connect("romeo", "1");
    assert!(presence_asks_disco(&mut romeo));
    let mut juliet = h.connect("juliet", "1");
    assert!(!presence_asks_disco(&mut juliet), "known hash");
    h.disconnect(&juliet);
    // Romeo is still there: no reset.
    let mut juliet = h.connect("juliet", "2");
    assert!(
        !presence_asks_disco(&mut juliet),
        "no reset while romeo stays"
    );
    h.disconnect(&juliet);
    h.disconnect(&romeo);
    let mut juliet = h.connect("juliet", "3");
    assert!(
        presence_asks_disco(&mut juliet),
        "asked again after the reset"
    );
}

#[test]
fn without_the_module_the_cache_stays() {
    let h = harness(false);
    let mut romeo = h.connect("romeo", "1");
    assert!(presence_asks_disco(&mut romeo));
    h.disconnect(&romeo);
    let mut juliet = h.connect("juliet", "1");
    assert!(!presence_asks_disco(&mut juliet));
}
