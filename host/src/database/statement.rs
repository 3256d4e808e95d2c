//! What a guest statement may do to the connection it runs on.
//!
//! Guest SQL runs with the extended protocol, one statement per call, so the
//! leading keyword tells what kind of statement it is. Transaction control is
//! refused (transactions go through the `transaction` resource, which the host
//! tracks); statements that may change session state (`SET`, `LISTEN`,
//! `PREPARE`, temporary tables, advisory locks, ...) mark the connection so
//! it is reset with `DISCARD ALL` before anyone else gets it. Everything else
//! leaves the connection clean and costs no reset; of those, the queries
//! PostgreSQL plans are worth preparing (the connection's statement cache).

/// The verdict on one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A query PostgreSQL parses and plans (`SELECT`, `INSERT`, `UPDATE`,
    /// `DELETE`, `MERGE`, ...): leaves no session state behind, and is worth
    /// preparing when it runs again.
    Planned,
    /// Leaves no session state behind.
    Clean,
    /// May leave session state behind: reset before reuse.
    Session,
}

/// Why a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{keyword}` is not allowed here: transactions are controlled with the `transaction` resource (begin/commit/rollback)"
)]
pub struct TransactionControl {
    /// The statement's leading keyword, upper-cased.
    pub keyword: String,
}

/// Leading keywords of the queries PostgreSQL plans; none leaves session
/// state behind on its own.
const PLANNED: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE", "MERGE",
];

/// Other leading keywords that never leave session state behind on their own.
const PLAIN: &[&str] = &[
    "EXPLAIN", "SHOW", "CREATE", "ALTER", "DROP", "TRUNCATE", "COMMENT", "GRANT", "REVOKE",
    "ANALYZE", "REFRESH",
];

/// Leading keywords that start, end or nest transactions.
const TRANSACTION: &[&str] = &[
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
];

/// Words that reveal session state inside an otherwise plain statement:
/// `set_config()`, advisory locks, temporary tables.
const SESSION_MARKERS: &[&str] = &["set_config", "advisory", "temp"];

/// Classifies `sql`.
pub fn classify(sql: &str) -> Result<Effect, TransactionControl> {
    let mut words = keywords(sql);
    let first = words.next().unwrap_or_default().to_ascii_uppercase();
    let second = words.next().unwrap_or_default().to_ascii_uppercase();
    let is_txn =
        TRANSACTION.contains(&first.as_str()) || (first == "PREPARE" && second == "TRANSACTION");
    if is_txn {
        return Err(TransactionControl { keyword: first });
    }
    let planned = PLANNED.contains(&first.as_str());
    if !planned && !PLAIN.contains(&first.as_str()) {
        return Ok(Effect::Session);
    }
    let lower = sql.to_ascii_lowercase();
    if SESSION_MARKERS.iter().any(|m| lower.contains(m)) {
        Ok(Effect::Session)
    } else if planned {
        Ok(Effect::Planned)
    } else {
        Ok(Effect::Clean)
    }
}

/// The leading words of `sql`, skipping white space, comments and `(`.
fn keywords(sql: &str) -> impl Iterator<Item = &str> {
    let mut rest = sql;
    std::iter::from_fn(move || {
        rest = skip_noise(rest);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(word)
    })
}

fn skip_noise(mut s: &str) -> &str {
    loop {
        let trimmed = s.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(line) = trimmed.strip_prefix("--") {
            s = line.find('\n').map_or("", |i| &line[i..]);
        } else if let Some(mut body) = trimmed.strip_prefix("/*") {
            // Block comments nest in PostgreSQL.
            let mut depth = 1;
            while depth > 0 && !body.is_empty() {
                if let Some(b) = body.strip_prefix("/*") {
                    depth += 1;
                    body = b;
                } else if let Some(b) = body.strip_prefix("*/") {
                    depth -= 1;
                    body = b;
                } else {
                    let mut chars = body.chars();
                    chars.next();
                    body = chars.as_str();
                }
            }
            s = body;
        } else {
            return trimmed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_planned() {
        for sql in [
            "select 1",
            "  SELECT * FROM notes WHERE id = $1",
            "(select 1) union (select 2)",
            "insert into notes(title) values ($1) returning id",
            "with x as (select 1) select * from x",
            "-- comment\nupdate t set a = 1",
            "/* a /* nested */ comment */ delete from t",
        ] {
            assert_eq!(classify(sql), Ok(Effect::Planned), "{sql}");
        }
    }

    #[test]
    fn other_plain_statements_are_clean() {
        for sql in [
            "create table t (a int)",
            "EXPLAIN SELECT 1",
            "show work_mem",
            "drop table t",
        ] {
            assert_eq!(classify(sql), Ok(Effect::Clean), "{sql}");
        }
    }

    #[test]
    fn session_changes_are_detected() {
        for sql in [
            "SET search_path = x",
            "set local work_mem = '1MB'",
            "RESET ALL",
            "LISTEN ch",
            "PREPARE p AS SELECT 1",
            "DECLARE c CURSOR FOR SELECT 1",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CREATE TEMP TABLE t (a int)",
            "create temporary table t (a int)",
            "SELECT set_config('a.b', 'c', false)",
            "select pg_advisory_lock(1)",
            "CALL p()",
            "DISCARD ALL",
        ] {
            assert_eq!(classify(sql), Ok(Effect::Session), "{sql}");
        }
    }

    #[test]
    fn transaction_control_is_refused() {
        for (sql, kw) in [
            ("BEGIN", "BEGIN"),
            ("  start transaction read only", "START"),
            ("/* x */ commit", "COMMIT"),
            ("end", "END"),
            ("ROLLBACK", "ROLLBACK"),
            ("savepoint a", "SAVEPOINT"),
            ("PREPARE TRANSACTION 'x'", "PREPARE"),
        ] {
            assert_eq!(
                classify(sql),
                Err(TransactionControl {
                    keyword: kw.to_string()
                }),
                "{sql}"
            );
        }
    }

    #[test]
    fn empty_and_odd_input_does_not_panic() {
        assert_eq!(classify(""), Ok(Effect::Session));
        assert_eq!(classify("/* unterminated"), Ok(Effect::Session));
        assert_eq!(classify("--"), Ok(Effect::Session));
        assert_eq!(classify("ß"), Ok(Effect::Session));
    }
}
