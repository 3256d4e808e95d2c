//! Credential redaction for PostgreSQL connection strings.
//!
//! Both forms `tokio_postgres::Config` accepts are handled: URLs
//! (`postgres://user:secret@host/db?password=secret`) and key/value strings
//! (`host=h password='secret'`). The password is replaced by `***`.

/// What a redacted password reads as.
pub const MASK: &str = "***";

/// Returns `conn` with every password replaced by [`MASK`].
pub fn redact_url(conn: &str) -> String {
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        redact_uri(conn)
    } else {
        redact_key_value(conn)
    }
}

fn redact_uri(uri: &str) -> String {
    let scheme_end = uri.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = uri.split_at(scheme_end);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}:{MASK}{}", &userinfo[..colon], &authority[at..]),
                None => authority.to_string(),
            }
        }
        None => authority.to_string(),
    };
    let tail = match tail.find('?') {
        Some(q) => {
            let (path, query) = tail.split_at(q + 1);
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}={MASK}")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

fn redact_key_value(conn: &str) -> String {
    let mut out = String::with_capacity(conn.len());
    let mut rest = conn;
    while let Some(pos) = find_password_key(rest) {
        out.push_str(&rest[..pos]);
        let after_key = &rest[pos..];
        let eq = after_key.find('=').map_or(after_key.len(), |i| i + 1);
        out.push_str(&after_key[..eq]);
        let value = after_key[eq..].trim_start();
        let skipped = after_key[eq..].len() - value.len();
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            let mut escaped = false;
            let mut end = quoted.len();
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            (end + 1).min(value.len())
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push_str(&after_key[eq..eq + skipped]);
        out.push_str(MASK);
        rest = &after_key[eq + skipped + value_len..];
    }
    out.push_str(rest);
    out
}

/// Finds the byte offset of a `password` key (followed by optional spaces
/// and `=`) that starts a word.
fn find_password_key(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password") {
        let at = from + i;
        let starts_word = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[at + "password".len()..].trim_start();
        if starts_word && after.starts_with('=') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_password_is_masked() {
        assert_eq!(
            redact_url("postgres://app:s3cr3t@db.example:5432/app"),
            "postgres://app:***@db.example:5432/app"
        );
    }

    #[test]
    fn uri_without_password_is_unchanged() {
        let url = "postgresql://app@127.0.0.1/app?sslmode=disable";
        assert_eq!(redact_url(url), url);
    }

    #[test]
    fn uri_query_password_is_masked() {
        assert_eq!(
            redact_url("postgres://h/db?user=a&password=hunter2&application_name=x"),
            "postgres://h/db?user=a&password=***&application_name=x"
        );
    }

    #[test]
    fn uri_password_with_at_sign_is_masked() {
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn key_value_password_is_masked() {
        assert_eq!(
            redact_url("host=h user=u password=hunter2 dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(
            redact_url("host=h password = 'a b\\'c' dbname=d"),
            "host=h password = *** dbname=d"
        );
    }

    #[test]
    fn key_value_password_like_names_are_kept() {
        let s = "host=h user=nopassword dbname=password_db";
        assert_eq!(redact_url(s), s);
    }
}
