//! Passwords out of connection strings before anything prints them.
//!
//! Every broker or database address relflow shows (errors, logs, `Debug`,
//! `relflow check`) goes through [`redact_url`]. Two shapes are understood:
//!
//! * URLs, `scheme://user:password@host/...`: the password becomes `***`,
//!   and so does the value of any `password`-like query parameter
//!   (`postgres://db/relflow?password=...`, libpq reads those too).
//! * libpq keyword strings, `host=db user=relflow password=secret`, quoted
//!   values (`password='a b'`, with `\'` and `\\` escapes) included.
//!
//! Why not a URL parser: a parser splits the address the way the standard
//! says, and an operator's password is not bound by the standard. In
//! `amqp://u:p@ss/w:rd@host`, a parser sees the authority end at the first
//! `/` and the password as `p`, and `ss/w:rd` would be printed. Here the
//! user info runs to the *last* `@`, so whatever the password contains, it
//! is hidden; the price is that a literal `@` later in the URL (a vhost
//! named `a@b`) hides the host too. Anything that is neither shape is hidden
//! whole: a malformed address may still carry a secret.

use std::ops::Range;

/// What a secret is replaced with.
pub const HIDDEN: &str = "***";

/// `url` with its password (and any `password=` value) replaced by `***`.
///
/// ```
/// use relflow_core::redact::redact_url;
/// assert_eq!(redact_url("amqps://relflow:p@ss:w/rd@broker/%2f"), "amqps://relflow:***@broker/%2f");
/// assert_eq!(redact_url("host=db user=relflow password='a b'"), "host=db user=relflow password=***");
/// ```
pub fn redact_url(url: &str) -> String {
    match url.find("://") {
        Some(end) if is_scheme(&url[..end]) => redact_uri(url, end + 3),
        _ => keyword_secrets(url).map_or_else(|| HIDDEN.to_owned(), |secrets| hide(url, secrets)),
    }
}

/// RFC 3986 `scheme`: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// `authority` is where the part after `scheme://` starts.
fn redact_uri(url: &str, authority: usize) -> String {
    let mut secrets = query_secrets(url, authority);
    secrets.extend(userinfo_password(url, authority));
    hide(url, secrets)
}

/// The password of `user:password@`: from the first `:` to the last `@`.
fn userinfo_password(url: &str, authority: usize) -> Option<Range<usize>> {
    let at = authority + url[authority..].rfind('@')?;
    let colon = authority + url[authority..at].find(':')?;
    Some(colon + 1..at)
}

/// The values of `password`-like query parameters, each up to the next `&`.
fn query_secrets(url: &str, from: usize) -> Vec<Range<usize>> {
    let secret = |(i, _): (usize, &str)| {
        let key_start = from + i + 1;
        let eq = key_start + url[key_start..].find('=')?;
        let key = &url[key_start..eq];
        if key.contains(['&', '?']) || !is_secret(key) {
            return None;
        }
        let end = url[eq + 1..].find('&').map_or(url.len(), |e| eq + 1 + e);
        Some(eq + 1..end)
    };
    url[from..].match_indices(['?', '&']).filter_map(secret).collect()
}

/// `password`, and libpq's `sslpassword` (a client key's passphrase).
fn is_secret(key: &str) -> bool {
    key.to_ascii_lowercase().ends_with("password")
}

/// libpq's `key = value ...`: the ranges of the secret values, or `None`
/// when `s` is not such a list.
fn keyword_secrets(s: &str) -> Option<Vec<Range<usize>>> {
    let mut secrets = Vec::new();
    let mut at = 0;
    loop {
        at = s.len() - s[at..].trim_start().len();
        if at == s.len() {
            return Some(secrets);
        }
        let rest = &s[at..];
        let key_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let value = rest[key_len..].trim_start().strip_prefix('=')?.trim_start();
        if key_len == 0 {
            return None;
        }
        let value_at = s.len() - value.len();
        let value_end = value_at + value_len(value)?;
        if is_secret(&rest[..key_len]) {
            secrets.push(value_at..value_end);
        }
        at = value_end;
    }
}

/// Length of the value at the start of `s`, as libpq reads it: `'quoted'`,
/// or up to the next white space; `\` escapes the next character in both.
/// `None` for an unterminated quote.
fn value_len(s: &str) -> Option<usize> {
    let quoted = s.starts_with('\'');
    let mut chars = s.char_indices().skip(usize::from(quoted));
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' if quoted => return Some(i + 1),
            c if c.is_whitespace() && !quoted => return Some(i),
            _ => {}
        }
    }
    if quoted {
        None
    } else {
        Some(s.len())
    }
}

/// `s` with each of `secrets` (overlapping ones merged) replaced by [`HIDDEN`].
fn hide(s: &str, mut secrets: Vec<Range<usize>>) -> String {
    secrets.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::new();
    for r in secrets {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut shown = 0;
    for r in merged {
        out.push_str(&s[shown..r.start]);
        out.push_str(HIDDEN);
        shown = r.end;
    }
    out.push_str(&s[shown..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_hidden_and_the_rest_kept() {
        let cases = [
            ("amqp://guest:secret@host:5672/%2f", "amqp://guest:***@host:5672/%2f"),
            ("amqp://u:@h", "amqp://u:***@h"),
            ("amqps://u:p@[::1]:5671/v?heartbeat=10", "amqps://u:***@[::1]:5671/v?heartbeat=10"),
            ("postgres://relflow:pw@db1:5432,db2:5432/relflow", "postgres://relflow:***@db1:5432,db2:5432/relflow"),
            ("postgresql://me%40corp:pw@db/x", "postgresql://me%40corp:***@db/x"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn addresses_without_secrets_are_unchanged() {
        for url in ["amqp://host", "amqps://host/vhost", "postgres://relflow@db/relflow", "host=db dbname=x", ""] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn passwords_with_url_delimiters_are_hidden_whole() {
        let cases = [
            ("amqp://u:p@ss@host/v", "amqp://u:***@host/v"),
            ("amqp://u:p:a:ss@host:5672/v", "amqp://u:***@host:5672/v"),
            ("amqp://u:pa/ss@host/v", "amqp://u:***@host/v"),
            ("amqp://u:pa%40ss@host/v", "amqp://u:***@host/v"),
            ("amqp://u:pa?ss#x@host/v", "amqp://u:***@host/v"),
            ("amqp://u:a@b:c/d%40e@host:1/%2f", "amqp://u:***@host:1/%2f"),
            // The first `:` ends the user, so a user may contain `@`.
            ("amqp://me@corp:pw@host/", "amqp://me@corp:***@host/"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn a_later_at_sign_hides_too_much_rather_than_too_little() {
        assert_eq!(redact_url("amqp://u:pw@host/v@h"), "amqp://u:***@h");
    }

    #[test]
    fn password_query_parameters_are_hidden() {
        assert_eq!(
            redact_url("postgres://db/relflow?user=u&password=s3cret&sslmode=require"),
            "postgres://db/relflow?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://u:a@db/x?sslpassword=k"), "postgres://u:***@db/x?sslpassword=***");
    }

    #[test]
    fn keyword_passwords_are_hidden() {
        let cases = [
            ("host=db user=x password=secret dbname=y", "host=db user=x password=*** dbname=y"),
            ("host=db password='a b' dbname=y", "host=db password=*** dbname=y"),
            (r"password='it\'s a \\ secret' user=x", "password=*** user=x"),
            (r"password=a\ b user=x", "password=*** user=x"),
            ("  password = secret\tuser=x ", "  password = ***\tuser=x "),
            ("host=db password=a://b:c@d", "host=db password=***"),
            ("PASSWORD=x sslpassword=y", "PASSWORD=*** sslpassword=***"),
            ("host=db password=", "host=db password=***"),
        ];
        for (conninfo, want) in cases {
            assert_eq!(redact_url(conninfo), want, "{conninfo}");
        }
    }

    #[test]
    fn anything_else_is_hidden_whole() {
        for s in ["host=db password='unterminated", "amqp:u:pw@host", "amqp:/u:pw@host?x=1", "=x", "host db"] {
            assert_eq!(redact_url(s), HIDDEN, "{s}");
        }
    }

    #[test]
    fn no_piece_of_an_awkward_password_survives() {
        let passwords = ["Aa1@Bb2:Cc3/Dd4%40Ee5", "Ff6:Gg7@Hh8", "Ii9/Jj0@Kk1:Ll2", "Mm3 'Nn4' \\Oo5"];
        for pw in passwords {
            let quoted = pw.replace('\\', r"\\").replace('\'', r"\'");
            let forms = [
                format!("amqp://relflow:{pw}@127.0.0.1:5672/%2frelflow"),
                format!("postgres://relflow:{pw}@db/relflow?sslmode=disable"),
                format!("postgres://db/relflow?password={pw}"),
                format!("host=db user=relflow password='{quoted}' dbname=relflow"),
            ];
            for form in forms {
                let shown = redact_url(&form);
                // Every password piece is 3 characters no other part has.
                let pieces = pw.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| p.len() == 3);
                for piece in pieces {
                    assert!(!shown.contains(piece), "{piece:?} of {pw:?} shown in {shown:?}");
                }
            }
        }
    }
}
