//! Quoting names and values for SQL, `postgresql.conf` and connection URLs.

/// A double-quoted SQL identifier: `my "db"` → `"my ""db"""`.
pub(crate) fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted SQL string literal (standard_conforming_strings) or configuration-file
/// value: `it's` → `'it''s'`.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A single-quoted libpq connection-string value: `it's` → `'it\'s'`.
pub(crate) fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a URL path segment.
pub(crate) fn url_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers_and_literals() {
        assert_eq!(identifier("app"), "\"app\"");
        assert_eq!(identifier("my \"db\""), "\"my \"\"db\"\"\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(""), "''");
    }

    #[test]
    fn quotes_connection_string_values() {
        assert_eq!(conninfo_value("app"), "'app'");
        assert_eq!(conninfo_value("a=b 'c' \\d"), "'a=b \\'c\\' \\\\d'");
    }

    #[test]
    fn percent_encodes_url_components() {
        assert_eq!(url_component("tarn_app-1.x~"), "tarn_app-1.x~");
        assert_eq!(url_component("my db/é"), "my%20db%2F%C3%A9");
    }
}
