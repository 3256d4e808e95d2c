//! The requests the suite sends: the same HTTP API on every target (tarn's Rust guest and
//! the baselines), and the tables they need.

use anyhow::{Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Rows in the lookup table.
pub const LOOKUP_ROWS: i64 = 10_000;

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// `GET /health`: no database; HTTP plus (for tarn) one guest instance.
    Health,
    /// `POST /query` with `SELECT 1`.
    Select1,
    /// `POST /query` with a primary-key lookup in a 10,000-row table.
    Lookup,
    /// `POST /notes`: an `INSERT ... RETURNING` committed in a read-write transaction.
    NoteWrite,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 4] = [
        Workload::Select1,
        Workload::Lookup,
        Workload::NoteWrite,
        Workload::Health,
    ];

    /// The name used in the JSON results.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Health => "health",
            Workload::Select1 => "select1",
            Workload::Lookup => "lookup",
            Workload::NoteWrite => "note-write",
        }
    }

    /// A human description for tables.
    pub fn describe(self) -> &'static str {
        match self {
            Workload::Health => "GET /health (no database)",
            Workload::Select1 => "POST /query `SELECT 1`",
            Workload::Lookup => "POST /query primary-key lookup",
            Workload::NoteWrite => "POST /notes (insert, commit)",
        }
    }

    /// HTTP method.
    pub fn method(self) -> &'static str {
        match self {
            Workload::Health => "GET",
            _ => "POST",
        }
    }

    /// Request path.
    pub fn path(self) -> &'static str {
        match self {
            Workload::Health => "/health",
            Workload::Select1 | Workload::Lookup => "/query",
            Workload::NoteWrite => "/notes",
        }
    }

    /// The body of the `n`-th request (lookups walk the table).
    pub fn body(self, n: u64) -> Bytes {
        match self {
            Workload::Health => Bytes::new(),
            Workload::Select1 => Bytes::from_static(br#"{"sql":"SELECT 1"}"#),
            Workload::Lookup => {
                let id = (n as i64 % LOOKUP_ROWS) + 1;
                Bytes::from(format!(
                    r#"{{"sql":"SELECT id, name, score FROM bench_items WHERE id = $1","params":[{id}]}}"#
                ))
            }
            Workload::NoteWrite => Bytes::from(format!(
                r#"{{"title":"bench {n}","body":"written by tarn-bench"}}"#
            )),
        }
    }

    /// The status a correct answer has.
    pub fn expected_status(self) -> u16 {
        match self {
            Workload::NoteWrite => 201,
            _ => 200,
        }
    }
}

/// Creates the lookup table and the notes table if missing.
pub async fn prepare_tables(url: &str) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to {url}"))?;
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, name text NOT NULL, score float8 NOT NULL);
             INSERT INTO bench_items SELECT g, 'item ' || g, g * 0.5 FROM generate_series(1, {LOOKUP_ROWS}) g
                 ON CONFLICT (id) DO NOTHING;
             CREATE TABLE IF NOT EXISTS notes (id bigserial primary key, title text not null,
                 body text not null, created_at timestamptz not null default now());
             ANALYZE bench_items;"
        ))
        .await
        .context("create the benchmark tables")?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json() {
        for w in Workload::ALL {
            let body = w.body(12_345);
            if !body.is_empty() {
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                assert!(v.is_object());
            }
        }
        let v: serde_json::Value = serde_json::from_slice(&Workload::Lookup.body(12_345)).unwrap();
        assert_eq!(v["params"][0], 2_346);
    }
}
