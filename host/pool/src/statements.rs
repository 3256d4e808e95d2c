//! [`StatementCache`], a connection's prepared statements.
//!
//! A statement seen a second time on a connection is prepared there (a named statement), and
//! later runs skip PostgreSQL's parse and plan; a statement seen once stays unnamed, so one-off
//! SQL costs no extra round trip. The cache is bounded: when it is full, the least recently used
//! statement is dropped, which closes it on the server; statements longer than
//! [`MAX_CACHED_SQL_BYTES`] are never prepared, so a guest cannot fill the host's (and the
//! server's) memory with huge statement texts.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use tokio_postgres::Statement;
use tokio_postgres::types::Type;

/// The longest SQL text a connection prepares (asyncpg's `max_cacheable_statement_size`).
pub const MAX_CACHED_SQL_BYTES: usize = 15 * 1024;

/// How to run a statement on a connection, as [`StatementCache::plan`] decides.
#[derive(Debug)]
pub enum Plan {
    /// Run this statement, prepared earlier on the connection.
    Prepared(Statement),
    /// Seen before but not prepared: prepare it now and [`StatementCache::insert`] it.
    Prepare,
    /// Run it unnamed (parsed and planned by this run only).
    Unnamed,
}

/// The prepared statements of one connection, keyed by SQL text and parameter types.
#[derive(Debug)]
pub struct StatementCache {
    capacity: usize,
    entries: HashMap<u64, Entry>,
    /// Keys of statements seen once and not prepared.
    seen: HashSet<u64>,
    /// Ticks on every hit and insert: the recency order for eviction.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    sql: Box<str>,
    types: Box<[Type]>,
    statement: Statement,
    used: u64,
}

impl Entry {
    fn is(&self, sql: &str, types: &[Type]) -> bool {
        *self.sql == *sql && *self.types == *types
    }
}

fn key(sql: &str, types: &[Type]) -> u64 {
    let mut hasher = DefaultHasher::new();
    sql.hash(&mut hasher);
    types.hash(&mut hasher);
    hasher.finish()
}

impl StatementCache {
    /// A cache of at most `capacity` statements; 0 prepares nothing.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            seen: HashSet::new(),
            clock: 0,
        }
    }

    /// How `sql` with parameters of `types` should run.
    pub fn plan(&mut self, sql: &str, types: &[Type]) -> Plan {
        if self.capacity == 0 || sql.len() > MAX_CACHED_SQL_BYTES {
            return Plan::Unnamed;
        }
        let key = key(sql, types);
        self.clock += 1;
        if let Some(entry) = self.entries.get_mut(&key) {
            if !entry.is(sql, types) {
                // A hash collision: run the newcomer unnamed.
                return Plan::Unnamed;
            }
            entry.used = self.clock;
            return Plan::Prepared(entry.statement.clone());
        }
        if self.seen.contains(&key) {
            return Plan::Prepare;
        }
        // Forgetting the sightings now and then bounds them; a statement run often is
        // seen again soon enough.
        if self.seen.len() >= self.capacity.saturating_mul(4) {
            self.seen.clear();
        }
        self.seen.insert(key);
        Plan::Unnamed
    }

    /// Keeps `statement`, prepared for `sql` with `types`, dropping the least recently used one
    /// if the cache is full.
    pub fn insert(&mut self, sql: &str, types: &[Type], statement: Statement) {
        if self.capacity == 0 {
            return;
        }
        let key = key(sql, types);
        self.seen.remove(&key);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        self.entries.insert(
            key,
            Entry {
                sql: sql.into(),
                types: types.into(),
                statement,
                used: self.clock,
            },
        );
    }

    /// Drops the statement for `sql` with `types` (e.g. after PostgreSQL said its plan is stale).
    pub fn remove(&mut self, sql: &str, types: &[Type]) {
        let key = key(sql, types);
        if self.entries.get(&key).is_some_and(|e| e.is(sql, types)) {
            self.entries.remove(&key);
        }
    }

    /// Drops every statement (their server side is gone, or about to be: `DISCARD ALL`,
    /// `DEALLOCATE`).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.seen.clear();
    }
}
