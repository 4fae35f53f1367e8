//! The module manager on a server with one host: load by name through the
//! registry, `depends`, a failed load leaving nothing behind, unload
//! removing every hook (host and global), item and cleanup, shared state
//! surviving a reload, and `sync_host` following a new module list.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use xmpp_core::module::{LoadOutcome, ModuleContext, ModuleError, Registry, manager};
use xmpp_core::{Event, Server};

fn total_hooks(server: &Server) -> usize {
    server.events.total_count()
        + server
            .hosts()
            .iter()
            .map(|h| h.events.total_count())
            .sum::<usize>()
}

#[derive(Default)]
struct Counter(AtomicUsize);

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_fn("base", |ctx: &ModuleContext| {
        ctx.hook("message/bare", 5, |_| false);
        ctx.hook_global("server-started", 0, |_| false);
        ctx.add_feature("urn:example:base");
        ctx.add_item("widget", Arc::new(String::from("w1")));
        let loads = ctx.shared::<Counter>("loads");
        loads.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
    .add_fn("dependent", |ctx| {
        ctx.depends("base")?;
        // Registered directly on the host, not through the context: still owned.
        ctx.host().events.hook("presence/bare", 0, |_| false);
        Ok(())
    })
    .add_fn("broken", |ctx| {
        ctx.hook("iq/host", 0, |_| false);
        let undone = ctx.server().extension::<Counter>();
        ctx.on_unload(move || {
            undone.0.fetch_add(1, Ordering::Relaxed);
        });
        Err(ModuleError::failed(ctx, "bad option"))
    })
    .add_fn("needs_missing", |ctx| ctx.depends("nowhere"))
    .add_fn("legacy", |ctx| {
        // Loading another module by name, as older modules do.
        manager::load(ctx.server(), ctx.host(), "base").map(|_| ())
    });
    r
}

#[test]
fn load_unload_depends_and_rollback() {
    let server = Server::for_tests();
    let host = server.host("localhost").unwrap();
    manager::set_registry(&server, registry());
    let baseline = total_hooks(&server);

    assert_eq!(
        manager::load(&server, &host, "unknown").unwrap(),
        LoadOutcome::Unknown
    );
    assert_eq!(
        manager::load(&server, &host, "dependent").unwrap(),
        LoadOutcome::Loaded
    );
    assert!(host.has_module("base") && host.has_module("dependent"));
    assert_eq!(manager::loaded(&server, &host), ["base", "dependent"]);
    let base = manager::context(&server, &host, "base").unwrap();
    assert_eq!(base.hook_count(), 3, "two hooks and the disco feature");
    assert_eq!(base.host_items::<String>("widget").len(), 1);
    assert_eq!(total_hooks(&server), baseline + 4);

    // A failed load leaves no hook and no mark.
    let err = manager::load(&server, &host, "broken").unwrap_err();
    assert!(err.to_string().contains("bad option"), "{err}");
    assert!(!host.has_module("broken"));
    assert_eq!(
        server.extension::<Counter>().0.load(Ordering::Relaxed),
        1,
        "its cleanup ran"
    );
    assert_eq!(total_hooks(&server), baseline + 4);
    let err = manager::load(&server, &host, "needs_missing").unwrap_err();
    assert!(
        matches!(err, ModuleError::MissingDependency { .. }),
        "{err}"
    );

    // Unloading takes the global hook, the host hooks, the feature and the item.
    let mut removed = Event::new(&server, "x");
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    host.events.hook("item-removed/widget", 0, move |_| {
        s.fetch_add(1, Ordering::Relaxed);
        false
    });
    assert!(manager::unload(&server, &host, "base"));
    assert!(!manager::unload(&server, &host, "base"));
    assert_eq!(base.hook_count(), 0);
    assert_eq!(seen.load(Ordering::Relaxed), 1);
    assert!(base.host_items::<String>("widget").is_empty());
    assert!(!server.fire_global("server-started", &mut removed));
    assert_eq!(
        total_hooks(&server),
        baseline + 1 + 1,
        "dependent's hook and the test's"
    );

    // Reload keeps shared state.
    manager::reload(&server, &host, "base").unwrap();
    let base = manager::context(&server, &host, "base").unwrap();
    assert_eq!(base.shared::<Counter>("loads").0.load(Ordering::Relaxed), 2);
}

#[test]
fn sync_host_follows_the_list_and_keeps_dependencies() {
    let server = Server::for_tests();
    let host = server.host("localhost").unwrap();
    manager::set_registry(&server, registry());
    let baseline = total_hooks(&server);
    let list = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let r = manager::sync_host(&server, &host, &list(&["dependent", "nope"]));
    assert_eq!(r.loaded, ["dependent"]);
    assert_eq!(r.unknown, ["nope"]);
    assert!(host.has_module("base"), "loaded as a dependency");

    // `base` stays while `dependent` wants it.
    let r = manager::sync_host(&server, &host, &list(&["dependent"]));
    assert!(r.unloaded.is_empty() && r.loaded.is_empty(), "{r:?}");

    // A module loaded by name from another's load counts as its dependency.
    let r = manager::sync_host(&server, &host, &list(&["legacy"]));
    assert_eq!(r.loaded, ["legacy"]);
    assert_eq!(r.unloaded, ["dependent"]);
    assert!(host.has_module("base"));

    let r = manager::sync_host(&server, &host, &list(&[]));
    assert_eq!(r.unloaded, ["legacy", "base"]);
    assert_eq!(total_hooks(&server), baseline);
    assert!(manager::loaded(&server, &host).is_empty());
}
