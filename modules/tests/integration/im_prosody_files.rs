//! Differential check against Debian's Prosody 0.12.3: the same session
//! (two users subscribing to each other, a named and grouped contact, a
//! pre-approval, a kept subscription request, a contact removal, an offline
//! message) was played against Prosody with a raw XMPP client, and the roster
//! files Prosody's `internal` storage wrote are below. lilt, run through its
//! real `internal` driver, must leave the same data (Lua tables have no key
//! order, so the files are compared as values) and push the same roster
//! versions.

use crate::im_common;

use std::path::Path;

use im_common::*;
use lua_compat::datfile::{Limits, parse_dat};
use xmpp_core::Value;
use xmpp_core::stanza::Element;

/// `data/localhost/roster/a.dat` as Prosody 0.12.3 wrote it.
const PROSODY_A: &str = r#"return {
	[false] = {
		["version"] = 9;
		["pending"] = {};
	};
	["c@localhost"] = {
		["groups"] = {
			["G1"] = true;
		};
		["name"] = "See";
		["ask"] = "subscribe";
		["subscription"] = "none";
	};
	["b@localhost"] = {
		["groups"] = {};
		["subscription"] = "none";
	};
	["d@localhost"] = {
		["groups"] = {};
		["subscription"] = "none";
		["approved"] = "true";
	};
};
"#;

const PROSODY_B: &str = r#"return {
	[false] = {
		["version"] = 5;
		["pending"] = {};
	};
};
"#;

const PROSODY_C: &str = r#"return {
	[false] = {
		["version"] = 1;
		["pending"] = {
			["a@localhost"] = {
				{
					["attr"] = {
						["xmlns"] = "urn:xmpp:pars:0";
						["token"] = "T1";
					};
					["name"] = "preauth";
				};
				["attr"] = {
					["xml:lang"] = "en";
					["to"] = "c@localhost";
					["type"] = "subscribe";
					["from"] = "a@localhost";
				};
				["name"] = "presence";
			};
		};
	};
};
"#;

fn parse(bytes: &[u8], name: &str) -> Value {
    let dat = parse_dat(bytes, name, &Limits::default())
        .expect("valid data file")
        .expect("not empty");
    dat.to_value().expect("convertible")
}

fn file(dir: &Path, user: &str) -> Vec<u8> {
    std::fs::read(
        dir.join("localhost")
            .join("roster")
            .join(format!("{user}.dat")),
    )
    .expect("roster file written")
}

fn push_versions(v: &[Element]) -> Vec<String> {
    v.iter()
        .filter(|e| is_roster_push(e))
        .filter_map(|e| {
            e.get_child("query", "jabber:iq:roster")
                .and_then(|q| q.get_attr("ver"))
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn same_session_same_roster_files_as_prosody() {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = Setup {
        data_path: Some(dir.path().to_path_buf()),
        ..Setup::default()
    };
    let h = Harness::with(&["a", "b", "c"], IM_MODULES, setup);
    let mut a = h.connect("a", "ra");
    let mut b = h.connect("b", "rb");
    let roster_get = |id: &str| iq("get", id, None, query("jabber:iq:roster"));
    let (mut a_pushes, mut b_pushes) = (Vec::new(), Vec::new());
    let mut step = |a: &mut Client, b: &mut Client, who: char, stanza: Element| {
        if who == 'a' {
            a.send(stanza)
        } else {
            b.send(stanza)
        }
        a_pushes.extend(push_versions(&a.drain()));
        b_pushes.extend(push_versions(&b.drain()));
    };
    step(&mut a, &mut b, 'a', roster_get("r1"));
    step(&mut a, &mut b, 'b', roster_get("r1"));
    step(&mut a, &mut b, 'a', presence());
    step(&mut a, &mut b, 'b', presence());
    step(
        &mut a,
        &mut b,
        'a',
        presence_to("b@localhost", Some("subscribe")),
    );
    step(
        &mut a,
        &mut b,
        'b',
        presence_to("a@localhost", Some("subscribed")),
    );
    step(
        &mut a,
        &mut b,
        'b',
        presence_to("a@localhost", Some("subscribe")),
    );
    step(
        &mut a,
        &mut b,
        'a',
        presence_to("b@localhost", Some("subscribed")),
    );
    step(
        &mut a,
        &mut b,
        'b',
        presence_to("a@localhost", Some("subscribe")),
    );
    let item = Element::new("item", "jabber:iq:roster")
        .attr("jid", "c@localhost")
        .attr("name", "See")
        .child(Element::new("group", "jabber:iq:roster").text("G1"));
    step(
        &mut a,
        &mut b,
        'a',
        iq("set", "s1", None, query("jabber:iq:roster").child(item)),
    );
    step(
        &mut a,
        &mut b,
        'a',
        presence_to("d@localhost", Some("subscribed")),
    );
    // Prosody's c2s stamps the stream's xml:lang on client stanzas.
    let preauth = Element::new("preauth", "urn:xmpp:pars:0").attr("token", "T1");
    step(
        &mut a,
        &mut b,
        'a',
        presence_to("c@localhost", Some("subscribe"))
            .attr("xml:lang", "en")
            .child(preauth),
    );
    step(
        &mut a,
        &mut b,
        'b',
        presence_to("c@localhost", Some("probe")),
    );
    let remove = Element::new("item", "jabber:iq:roster")
        .attr("jid", "a@localhost")
        .attr("subscription", "remove");
    step(
        &mut a,
        &mut b,
        'b',
        iq("set", "rm", None, query("jabber:iq:roster").child(remove)),
    );
    step(
        &mut a,
        &mut b,
        'a',
        message("c@localhost", "chat", "hi c").attr("id", "m1"),
    );

    // The versions Prosody pushed in the same session.
    assert_eq!(a_pushes, ["1", "2", "4", "5", "6", "7", "8", "9"]);
    assert_eq!(b_pushes, ["2", "3", "4", "4", "5"]);

    h.disconnect(&a);
    h.disconnect(&b);
    let mut c = h.connect("c", "rc");
    c.send(presence());
    let got = c.drain();
    assert!(is_presence(&got[0], "c@localhost/rc", None));
    let sub = got
        .iter()
        .find(|e| is_presence(e, "a@localhost", Some("subscribe")))
        .expect("kept request");
    assert_eq!(
        sub.get_child("preauth", "urn:xmpp:pars:0")
            .and_then(|p| p.get_attr("token")),
        Some("T1")
    );
    let m = got
        .iter()
        .find(|e| e.name() == "message")
        .expect("offline message");
    assert_eq!(body(m).as_deref(), Some("hi c"));
    assert!(m.get_child("delay", "urn:xmpp:delay").is_some());

    if std::env::var_os("LILT_PRINT_FILES").is_some() {
        for u in ["a", "b", "c"] {
            println!(
                "--- {u}.dat\n{}",
                String::from_utf8_lossy(&file(dir.path(), u))
            );
        }
    }
    for (user, prosody) in [("a", PROSODY_A), ("b", PROSODY_B), ("c", PROSODY_C)] {
        let ours = file(dir.path(), user);
        assert_eq!(
            parse(&ours, user),
            parse(prosody.as_bytes(), user),
            "roster of {user} differs from Prosody's; lilt wrote:\n{}",
            String::from_utf8_lossy(&ours)
        );
    }
}

/// Prosody's files, read by lilt, give the same rosters back.
#[test]
fn reads_prosody_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let roster_dir = dir.path().join("localhost").join("roster");
    std::fs::create_dir_all(&roster_dir).expect("mkdir");
    std::fs::write(roster_dir.join("a.dat"), PROSODY_A).expect("write");
    std::fs::write(roster_dir.join("c.dat"), PROSODY_C).expect("write");
    let setup = Setup {
        data_path: Some(dir.path().to_path_buf()),
        ..Setup::default()
    };
    let h = Harness::with(&["a", "c"], IM_MODULES, setup);
    let mut a = h.connect("a", "1");
    let r = a.iq(iq("get", "g", None, query("jabber:iq:roster")));
    assert_eq!(
        r.get_child("query", "jabber:iq:roster")
            .and_then(|q| q.get_attr("ver")),
        Some("9")
    );
    let mut items = roster_items(&r);
    items.sort();
    assert_eq!(
        items,
        vec![
            ("b@localhost".to_string(), "none".to_string(), None),
            (
                "c@localhost".to_string(),
                "none".to_string(),
                Some("subscribe".to_string())
            ),
            ("d@localhost".to_string(), "none".to_string(), None),
        ]
    );
    assert!(modules::roster::manager::is_contact_preapproved(
        &h.server,
        &h.host,
        "a",
        "d@localhost"
    ));
    let mut c = h.connect("c", "1");
    c.send(presence());
    let got = c.drain();
    let sub = got
        .iter()
        .find(|e| is_presence(e, "a@localhost", Some("subscribe")))
        .expect("kept request");
    assert_eq!(sub.get_attr("xml:lang"), Some("en"));
    assert!(sub.get_child("preauth", "urn:xmpp:pars:0").is_some());
}
