//! Telling what a data directory holds before starting a cluster in it.

use std::fs;
use std::io;
use std::path::Path;

use crate::PgCtlError;

/// What a prospective data directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataDirState {
    /// It does not exist.
    Missing,
    /// It exists and is empty: `initdb` may use it.
    Empty,
    /// It holds a cluster, made by this PostgreSQL major version (if legible).
    Initialized {
        /// The major version in its `PG_VERSION` file.
        major: Option<u32>,
    },
}

impl DataDirState {
    /// Inspects `path`; a non-empty directory without `PG_VERSION` is an error.
    pub(crate) fn inspect(path: &Path) -> Result<Self, PgCtlError> {
        let mut entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Self::Missing),
            Err(source) => return Err(PgCtlError::io("read directory", path, source)),
        };
        match fs::read_to_string(path.join("PG_VERSION")) {
            Ok(version) => Ok(Self::Initialized {
                major: parse_major(&version),
            }),
            Err(_) if entries.next().is_none() => Ok(Self::Empty),
            Err(_) => Err(PgCtlError::NotADataDir {
                path: path.to_owned(),
            }),
        }
    }

    /// Whether `initdb` has run there.
    pub(crate) fn is_initialized(self) -> bool {
        matches!(self, Self::Initialized { .. })
    }
}

/// The major version in a `PG_VERSION` file: `15` → 15, `9.6` → 9.
fn parse_major(text: &str) -> Option<u32> {
    text.trim().split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_directories() {
        let base =
            std::env::temp_dir().join(format!("tarn-pgctl-unit-{}-data-dir", std::process::id()));
        assert_eq!(
            DataDirState::inspect(&base.join("missing")).unwrap(),
            DataDirState::Missing
        );
        fs::create_dir_all(base.join("empty")).unwrap();
        assert_eq!(
            DataDirState::inspect(&base.join("empty")).unwrap(),
            DataDirState::Empty
        );
        fs::create_dir_all(base.join("cluster")).unwrap();
        fs::write(base.join("cluster/PG_VERSION"), "15\n").unwrap();
        assert_eq!(
            DataDirState::inspect(&base.join("cluster")).unwrap(),
            DataDirState::Initialized { major: Some(15) }
        );
        fs::create_dir_all(base.join("junk")).unwrap();
        fs::write(base.join("junk/notes.txt"), "x").unwrap();
        let message = DataDirState::inspect(&base.join("junk"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("junk") && message.contains("PG_VERSION"),
            "{message}"
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn parses_major_versions() {
        assert_eq!(parse_major("15\n"), Some(15));
        assert_eq!(parse_major("9.6"), Some(9));
        assert_eq!(parse_major("x"), None);
    }
}
