//! What kind of cluster to start, and where.

use std::path::PathBuf;

use crate::PgCtlError;

/// The superuser name clusters are initialized with (and connected as).
pub(crate) const SUPERUSER: &str = "postgres";

/// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// How to start a cluster. [`ClusterOptions::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// The data directory; initialized (trust auth, superuser `postgres`) when missing or empty.
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1; 0 picks a free one (a persistent cluster first tries the port of
    /// its previous run).
    pub port: u16,
    /// Directory for the Unix-domain socket; `None` listens on TCP only.
    pub socket_dir: Option<PathBuf>,
    /// Database to create if missing; [`Cluster::url`](crate::Cluster::url) points at it.
    pub database: String,
    /// The server's `max_connections`.
    pub max_connections: u32,
    /// Further `postgresql.conf` settings, `(name, value)`; `ALTER SYSTEM` overrides them.
    pub extra_settings: Vec<(String, String)>,
    /// `true`: durable (fsync on), left running when the [`Cluster`](crate::Cluster) is
    /// dropped and reused by the next start. `false`: throwaway (fsync off), stopped on drop,
    /// and directories this cluster created are removed.
    pub persistent: bool,
    /// Directory of `initdb`/`postgres`/`psql`; `None` searches the usual places.
    pub bindir: Option<PathBuf>,
}

impl ClusterOptions {
    /// Options for a persistent cluster in `data_dir`: free port, TCP only, database
    /// `postgres`, 100 connections, binaries searched for.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            port: 0,
            socket_dir: None,
            database: SUPERUSER.to_owned(),
            max_connections: 100,
            extra_settings: Vec::new(),
            persistent: true,
            bindir: None,
        }
    }

    /// Rejects values that cannot work, naming the option.
    pub(crate) fn validate(&self) -> Result<(), PgCtlError> {
        let invalid = |option: &str, value: &dyn std::fmt::Debug, reason| {
            Err(PgCtlError::InvalidOption {
                option: option.to_owned(),
                value: format!("{value:?}"),
                reason,
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", &self.data_dir, "must not be empty");
        }
        if self.database.is_empty() || self.database.contains('\0') {
            return invalid(
                "database",
                &self.database,
                "must be non-empty, without NUL bytes",
            );
        }
        if self.database.len() > MAX_IDENTIFIER_BYTES {
            return invalid("database", &self.database, "must be at most 63 bytes long");
        }
        if self.max_connections == 0 {
            return invalid(
                "max_connections",
                &self.max_connections,
                "must be at least 1",
            );
        }
        if let Some(dir) = &self.socket_dir {
            let text = dir.to_string_lossy();
            if text.is_empty() || text.contains([',', '"', '\n', '\0']) {
                return invalid(
                    "socket_dir",
                    dir,
                    "must be non-empty, without commas, double quotes or newlines",
                );
            }
        }
        for (name, value) in &self.extra_settings {
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
            if !valid_name {
                return invalid(
                    "extra_settings",
                    name,
                    "setting names are letters, digits, `_` and `.`",
                );
            }
            if value.contains(['\n', '\r', '\0']) {
                return invalid(
                    &format!("extra_settings.{name}"),
                    value,
                    "values must not contain line breaks or NUL bytes",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(options: &ClusterOptions) -> String {
        options.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_persistent() {
        let options = ClusterOptions::new("/tmp/x");
        options.validate().unwrap();
        assert!(options.persistent);
        assert_eq!(options.max_connections, 100);
        assert_eq!(options.database, "postgres");
    }

    #[test]
    fn rejects_bad_values_naming_the_option() {
        let base = ClusterOptions::new("/tmp/x");
        let message = rejection(&ClusterOptions {
            database: String::new(),
            ..base.clone()
        });
        assert!(message.contains("`database`"), "{message}");
        let message = rejection(&ClusterOptions {
            database: "d".repeat(64),
            ..base.clone()
        });
        assert!(message.contains("63 bytes"), "{message}");
        let message = rejection(&ClusterOptions {
            max_connections: 0,
            ..base.clone()
        });
        assert!(message.contains("`max_connections` = 0"), "{message}");
        let message = rejection(&ClusterOptions {
            data_dir: PathBuf::new(),
            ..base.clone()
        });
        assert!(message.contains("`data_dir`"), "{message}");
        let message = rejection(&ClusterOptions {
            socket_dir: Some("/a,b".into()),
            ..base.clone()
        });
        assert!(
            message.contains("`socket_dir`") && message.contains("/a,b"),
            "{message}"
        );
        let bad_name = vec![("work mem".to_owned(), "4MB".to_owned())];
        let message = rejection(&ClusterOptions {
            extra_settings: bad_name,
            ..base.clone()
        });
        assert!(message.contains("work mem"), "{message}");
        let bad_value = vec![("work_mem".to_owned(), "4MB\nfsync = off".to_owned())];
        let message = rejection(&ClusterOptions {
            extra_settings: bad_value,
            ..base
        });
        assert!(message.contains("`extra_settings.work_mem`"), "{message}");
    }
}
