//! LDAP search filters built from configuration and user input: RFC 4515
//! value escaping, Prosody's `$user`/`$host` substitution
//! (`mod_auth_ldap`) and mod_lib_ldap's `combine_and` (`mod_auth_ldap2`).

/// Escapes a value for use inside a filter (RFC 4515 §3): `*`, `(`, `)`,
/// `\` and NUL become `\` and two lower-case hex digits, as Prosody's
/// `ldap_filter_escape` writes them. Everything else (UTF-8 included) is
/// kept: the filter is a UTF-8 string.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => out.push_str(&format!("\\{:02x}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// Prosody's `ldap_filter` template: `$user` becomes the escaped username
/// and `$host` the escaped realm; other `$word`s are left as written (Lua's
/// `gsub` with a table keeps a match the table has no entry for). An old
/// style `%s` stands for `$user` (its first occurrence only, as Prosody).
pub fn substitute(template: &str, username: &str, host: &str) -> String {
    let template = template.replacen("%s", "$user", 1);
    let mut out = String::with_capacity(template.len() + username.len());
    let mut rest = template.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let word_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        match &after[..word_len] {
            "user" => out.push_str(&escape(username)),
            "host" => out.push_str(&escape(host)),
            other => {
                out.push('$');
                out.push_str(other);
            }
        }
        rest = &after[word_len..];
    }
    out.push_str(rest);
    out
}

/// Wraps a filter component in parentheses unless it already has them
/// (mod_lib_ldap's rule: `uid=x` → `(uid=x)`).
fn parenthesised(filter: &str) -> String {
    if filter.starts_with('(') || filter.ends_with(')') {
        filter.to_string()
    } else {
        format!("({filter})")
    }
}

/// `(&(filter)(field=value))` with the value escaped: how mod_auth_ldap2
/// finds a user (its `user.filter` and `user.usernamefield`). An empty
/// configured filter leaves only the username test.
pub fn user_filter(configured: Option<&str>, field: &str, username: &str) -> String {
    let wanted = format!("({field}={})", escape(username));
    match configured.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => format!("(&{}{wanted})", parenthesised(f)),
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metacharacters_are_escaped_as_prosody_does() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(escape("a\\b"), "a\\5cb");
        assert_eq!(escape("nul\0"), "nul\\00");
        assert_eq!(escape("jürgen"), "jürgen");
    }

    #[test]
    fn template_substitution() {
        assert_eq!(substitute("(uid=$user)", "bob", "x"), "(uid=bob)");
        assert_eq!(
            substitute("(&(uid=$user)(mail=$user@$host))", "b*", "example.com"),
            "(&(uid=b\\2a)(mail=b\\2a@example.com))"
        );
        assert_eq!(substitute("(uid=%s)", "bob", "x"), "(uid=bob)");
        assert_eq!(substitute("(cn=$other)", "bob", "x"), "(cn=$other)");
        assert_eq!(substitute("(uid=$user)$", "bob", "x"), "(uid=bob)$");
        assert_eq!(
            substitute("(uid=$user)", "*)(uid=*", "x"),
            "(uid=\\2a\\29\\28uid=\\2a)"
        );
    }

    #[test]
    fn ldap2_user_filter() {
        assert_eq!(
            user_filter(Some("(objectClass=inetOrgPerson)"), "uid", "alice"),
            "(&(objectClass=inetOrgPerson)(uid=alice))"
        );
        assert_eq!(
            user_filter(Some("objectClass=person"), "uid", "a*"),
            "(&(objectClass=person)(uid=a\\2a))"
        );
        assert_eq!(user_filter(None, "uid", "alice"), "(uid=alice)");
        assert_eq!(user_filter(Some(" "), "uid", "alice"), "(uid=alice)");
    }
}
