//! Tests of the directives that touch files and the environment: `Include`,
//! `FileContents`/`FileLine`/`FileLines`, `Credential`, `ENV_*`, `Lua.*`,
//! `RunScript`.

use std::path::Path;

use xmpp_core::value::Value;

use super::tests::{err, load_main, ok, s, write};
use super::*;

#[test]
fn include_plain_and_glob_relative_to_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "conf.d/b.cfg.lua",
        "from_b = true\nVirtualHost \"b.example\"\n  in_b = 1\n",
    );
    write(
        dir.path(),
        "conf.d/a.cfg.lua",
        "from_a = true\nInclude \"nested/extra.lua\"\n",
    );
    write(
        dir.path(),
        "conf.d/nested/extra.lua",
        "from_nested = \"yes\"\n",
    );
    write(dir.path(), "conf.d/.hidden.cfg.lua", "hidden = true\n");
    write(dir.path(), "conf.d/skip.txt", "skipped = true\n");
    write(dir.path(), "single.lua", "single = 1\n");
    let main = write(
        dir.path(),
        "prosody.cfg.lua",
        "VirtualHost \"localhost\"\nInclude \"conf.d/*.cfg.lua\"\nafter_include = 1\ninclude \"single.lua\"\n",
    );
    let c = load(&main).unwrap();
    assert_eq!(c.global.get("from_a"), Some(&Value::Bool(true)));
    assert_eq!(c.global.get("from_b"), Some(&Value::Bool(true)));
    assert_eq!(c.global.get("from_nested"), Some(&s("yes")));
    assert_eq!(c.global.get("single"), Some(&Value::Integer(1)));
    assert!(c.global.get("hidden").is_none() && c.global.get("skipped").is_none());
    // The main file's section is not changed by what an included file declares.
    assert_eq!(
        c.host("localhost").unwrap().section.get("after_include"),
        Some(&Value::Integer(1))
    );
    let b = c.host("b.example").unwrap();
    assert_eq!(
        b.section.sources["in_b"].file,
        dir.path().join("conf.d/b.cfg.lua")
    );
    assert_eq!(b.section.sources["in_b"].line, 3);
    assert_eq!(
        c.global.sources["from_nested"].file,
        dir.path().join("conf.d/nested/extra.lua")
    );
}

#[test]
fn include_errors_name_the_including_line() {
    let e = err("admins = {}\nInclude \"missing.cfg.lua\"\n");
    assert!(matches!(e, ConfigError::Include { .. }), "{e:?}");
    assert_eq!(e.line(), Some(2));
    assert!(e.to_string().contains("cannot read included file"), "{e}");
    let e = err("Include \"nowhere/*.cfg.lua\"\n");
    assert!(matches!(e, ConfigError::IncludeDir { .. }), "{e:?}");
    let e = err("Include \"prosody.cfg.lua\"\n");
    assert!(matches!(e, ConfigError::IncludeLoop { .. }), "{e:?}");
}

#[test]
fn errors_inside_included_files_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let inc = write(
        dir.path(),
        "conf.d/broken.cfg.lua",
        "ok = 1\nthis is not lua\n",
    );
    let main = write(
        dir.path(),
        "prosody.cfg.lua",
        "Include \"conf.d/*.cfg.lua\"\n",
    );
    let e = load(&main).unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert_eq!(e.file(), inc);
    assert_eq!(e.line(), Some(2));
}

#[test]
fn file_readers() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.txt", "first line\nsecond line\n");
    let main = write(
        dir.path(),
        "prosody.cfg.lua",
        "all = FileContents(\"secret.txt\")\none = FileLine(\"secret.txt\")\nlines = FileLines(\"secret.txt\")\nraw = FileContents(\"secret.txt\", \"*l\")\n",
    );
    let c = load(&main).unwrap();
    assert_eq!(c.global.get("all"), Some(&s("first line\nsecond line\n")));
    assert_eq!(c.global.get("one"), Some(&s("first line")));
    assert_eq!(c.global.get("raw"), Some(&s("first line")));
    assert_eq!(
        c.global.get("lines").and_then(Value::as_string_list),
        Some(vec!["first line".into(), "second line".into()])
    );
    let e = err("a = 1\nb = FileContents(\"nope.txt\")\n");
    assert!(
        matches!(
            e,
            ConfigError::FileRead {
                directive: "FileContents",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.line(), Some(2));
}

#[test]
fn credentials() {
    let creds = tempfile::tempdir().unwrap();
    write(creds.path(), "db_password", "hunter2");
    let options = LoadOptions {
        credentials_directory: Some(creds.path().to_path_buf()),
        ..Default::default()
    };
    let c = load_str_with(
        "sql = { password = Credential(\"db_password\") }\n",
        Path::new("/x/p.cfg.lua"),
        &options,
    )
    .unwrap();
    assert_eq!(
        c.global.get("sql").and_then(|t| t.get("password")),
        Some(&s("hunter2"))
    );

    // Without a credentials directory: an error for the server...
    let none = LoadOptions {
        credentials_directory: None,
        credential_fallback: CredentialFallback::Error,
    };
    if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
        let e = load_str_with(
            "a = 1\npw = Credential(\"x\")\n",
            Path::new("/x/p.cfg.lua"),
            &none,
        )
        .unwrap_err();
        assert!(
            matches!(e, ConfigError::NoCredentialsDirectory { .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "/x/p.cfg.lua:2: Credential() requires the $CREDENTIALS_DIRECTORY environment variable to be set"
        );
        // ...and a warning with the option left unset for prosodyctl.
        let warn = LoadOptions {
            credential_fallback: CredentialFallback::Warn,
            ..none
        };
        let c = load_str_with(
            "a = 1\npw = Credential(\"x\")\n",
            Path::new("/x/p.cfg.lua"),
            &warn,
        )
        .unwrap();
        assert!(c.global.get("pw").is_none());
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].starts_with("/x/p.cfg.lua:2: option 'pw' is unset"),
            "{:?}",
            c.warnings
        );
    }
}

#[test]
fn environment_variables_and_lua_globals() {
    let path = std::env::var("PATH").unwrap_or_default();
    let c = ok(
        "a = ENV_PATH\nb = Lua.os.getenv(\"PATH\")\nc = ENV_LILT_SURELY_UNSET_VARIABLE\nd = Lua.string.upper(\"x\")\n",
    );
    if !path.is_empty() {
        assert_eq!(c.global.get("a"), Some(&s(&path)));
        assert_eq!(c.global.get("b"), Some(&s(&path)));
    }
    assert!(c.global.get("c").is_none());
    assert_eq!(c.global.get("d"), Some(&s("X")));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let (dir, result) = load_main("x = 1\ne = os.getenv(\"PATH\")\n");
    let c = result.unwrap();
    let main = dir.path().join("prosody.cfg.lua");
    assert_eq!(
        c.warnings,
        [format!(
            "{}:2: direct usage of the Lua API is deprecated - replace `os` with `Lua.os`",
            main.display()
        )]
    );
}

#[test]
fn run_script_uses_real_globals() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "script.lua", "lilt_script_ran = 42\nreturn 7\n");
    let main = write(
        dir.path(),
        "prosody.cfg.lua",
        "seven = RunScript(\"script.lua\")\nfrom_global = Lua.lilt_script_ran\n",
    );
    let c = load(&main).unwrap();
    assert_eq!(c.global.get("seven"), Some(&Value::Integer(7)));
    assert_eq!(c.global.get("from_global"), Some(&Value::Integer(42)));
    let e = err("a = 1\nRunScript(\"missing.lua\")\n");
    assert!(matches!(e, ConfigError::RunScript { .. }), "{e:?}");
    assert_eq!(e.line(), Some(2));
}

#[test]
fn load_str_resolves_includes_against_the_given_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "extra.cfg.lua", "extra = true\n");
    let c = load_str(
        "Include \"extra.cfg.lua\"\n",
        &dir.path().join("virtual.cfg.lua"),
    )
    .unwrap();
    assert_eq!(c.global.get("extra"), Some(&Value::Bool(true)));
    assert_eq!(
        c.config_file.as_deref(),
        Some(dir.path().join("virtual.cfg.lua").as_path())
    );
}
