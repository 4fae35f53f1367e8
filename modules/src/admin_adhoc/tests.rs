//! The handlers on a real host (internal storage in a temporary directory,
//! the host's own account provider), called as the `adhoc` module calls
//! them: the form first, then the submitted form.

use std::path::Path;
use std::sync::Arc;

use xmpp_core::adhoc::{Reply, Request, Status};
use xmpp_core::stanza::Element;
use xmpp_core::{Clock, Host, Server, Value};

use super::*;

fn host() -> (tempfile::TempDir, Arc<Server>, Arc<Host>) {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "data_path = {:?}\nstorage = \"internal\"\nauthentication = \"internal_hashed\"\nVirtualHost \"example.com\"\n",
        dir.path().to_str().unwrap()
    );
    let config = lua_compat::config::load_str(&source, Path::new("test.cfg.lua")).unwrap();
    let server = Server::new(config, Clock::Fixed(1_000_000.0));
    crate::storage::register_builtin_drivers(&server, dir.path().to_path_buf());
    let host = server.host("example.com").unwrap();
    let provider = auth::provider_for_host(&host).unwrap();
    host.set_auth_provider(provider.as_auth_provider());
    (dir, server, host)
}

fn submitted(fields: &[(&str, &[&str])]) -> Element {
    let mut x = Element::new("x", NS_DATA).attr("type", "submit");
    for (var, values) in fields {
        let mut f = Element::new("field", NS_DATA).attr("var", *var);
        for v in *values {
            f.push_child(Element::new("value", NS_DATA).text(*v));
        }
        x.push_child(f);
    }
    x
}

fn call(server: &Arc<Server>, host: &Arc<Host>, h: &Handler, form: Option<&Element>) -> Reply {
    let req = Request {
        server,
        host,
        from: "boss@example.com/r",
        to: "example.com",
        action: "execute",
        form,
        state: form.map(|_| Value::str("executing")),
    };
    h(&req)
}

#[test]
fn add_then_delete_a_user() {
    let (_dir, server, host) = host();
    let add = users::add_user();
    let first = call(&server, &host, &add, None);
    assert_eq!(first.status, Status::Executing);
    let form = first.form.expect("the form");
    assert_eq!(
        form.get_child_text("title", NS_DATA).as_deref(),
        Some("Adding a User")
    );

    let x = submitted(&[
        ("accountjid", &["dave@example.com"]),
        ("password", &["pw"]),
        ("password-verify", &["pw"]),
    ]);
    let done = call(&server, &host, &add, Some(&x));
    assert_eq!(done.info.as_deref(), Some("Account successfully created"));
    assert!(host.user_exists("dave"));
    let again = call(&server, &host, &add, Some(&x));
    assert_eq!(again.error.as_deref(), Some("Account already exists"));

    let mismatch = submitted(&[
        ("accountjid", &["erin@example.com"]),
        ("password", &["a"]),
        ("password-verify", &["b"]),
    ]);
    let refused = call(&server, &host, &add, Some(&mismatch));
    assert_eq!(
        refused.error.as_deref(),
        Some("Invalid data.\nPassword mismatch, or empty username")
    );
    assert!(!host.user_exists("erin"));

    let delete = users::delete_user();
    let x = submitted(&[("accountjids", &["dave@example.com", "nobody@example.com"])]);
    let done = call(&server, &host, &delete, Some(&x));
    assert_eq!(
        done.info.as_deref(),
        Some(
            "The following accounts were successfully deleted:\ndave@example.com\n\
             The following accounts could not be deleted:\nnobody@example.com"
        )
    );
    assert!(!host.user_exists("dave"));
}

#[test]
fn missing_required_fields_are_named() {
    let (_dir, server, host) = host();
    let h = users::change_password();
    let done = call(&server, &host, &h, Some(&submitted(&[])));
    assert_eq!(done.status, Status::Completed);
    assert_eq!(
        done.error.as_deref(),
        Some("accountjid: Required value missing\npassword: Required value missing")
    );
}

#[test]
fn no_one_online_is_an_empty_list() {
    let (_dir, server, host) = host();
    let h = sessions::get_online_users();
    let done = call(
        &server,
        &host,
        &h,
        Some(&submitted(&[("max_items", &["all"])])),
    );
    let x = done.form.expect("the result form");
    assert_eq!(x.get_attr("type"), Some("result"));
    let field = x
        .children()
        .find(|f| f.get_attr("var") == Some("onlineuserjids"))
        .expect("onlineuserjids");
    assert_eq!(field.children().filter(|c| c.name() == "value").count(), 0);
}

#[test]
fn notes_join_as_prosody_joins_them() {
    let a = vec!["a".to_string(), "b".to_string()];
    let none: Vec<String> = Vec::new();
    assert_eq!(done_and_failed("OK:", &a, "KO:", &none), "OK:\na\nb\n");
    assert_eq!(done_and_failed("OK:", &none, "KO:", &a), "KO:\na\nb");
    assert_eq!(ok_and_err("OK:", &a, "KO:", &a), "OK:\na\nb\nKO:\na\nb");
    assert_eq!(ok_and_err("OK:", &none, "KO:", &a), "KO:\na\nb");
}

#[test]
fn text_multi_results_are_split_into_lines() {
    let layout = layout(
        None,
        None,
        vec![
            Field::new("lines", "text-multi"),
            Field::new("n", "text-single"),
        ],
    );
    let x = result_form(&layout, &[("lines", "\nx\ny".into()), ("n", "3".into())]);
    let values: Vec<String> = x
        .children()
        .flat_map(|f| f.children().filter(|c| c.name() == "value"))
        .map(Element::text_content)
        .collect();
    assert_eq!(values, ["x", "y", "3"]);
}

#[test]
fn hosts_are_neither_added_nor_removed() {
    let (_dir, server, host) = host();
    let activate = service::activate_host();
    let deactivate = service::deactivate_host();
    let on = |h: &Handler, name: &str| {
        let x = submitted(&[("host", &[name])]);
        let reply = call(&server, &host, h, Some(&x));
        assert_eq!(reply.status, Status::Canceled);
        reply.error.unwrap_or_default()
    };
    assert_eq!(
        on(&activate, "example.com"),
        "The host example.com is already activated"
    );
    assert_eq!(
        on(&activate, "other.example"),
        "Couldn't find the host other.example defined in the current config"
    );
    assert_eq!(
        on(&deactivate, "other.example"),
        "The host other.example is not activated"
    );
}
