//! Reading a data directory's `postmaster.pid` lock file.
//!
//! Its lines are: pid, data directory, start time, port, socket directory, listen address,
//! shared memory key, and (once known) the server status such as `starting` or `ready`.

use std::fs;
use std::io;
use std::path::Path;

use crate::PgCtlError;

/// The lock file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "postmaster.pid";

/// What `postmaster.pid` says about a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidFile {
    /// The postmaster's pid.
    pub(crate) pid: u32,
    /// The port it listens on, once written.
    pub(crate) port: Option<u16>,
    /// `ready` once it accepts connections.
    pub(crate) status: Option<String>,
}

impl PidFile {
    /// Reads `data_dir/postmaster.pid`; `None` when there is none, or it is still being
    /// written (or is garbage, which PostgreSQL itself will complain about).
    pub(crate) fn read(data_dir: &Path) -> Result<Option<Self>, PgCtlError> {
        let path = data_dir.join(FILE_NAME);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PgCtlError::io("read", path, source)),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let pid = lines.first()?.parse().ok()?;
        let port = lines.get(3).and_then(|line| line.parse().ok());
        let status = lines
            .get(7)
            .filter(|line| !line.is_empty())
            .map(|line| (*line).to_owned());
        Some(Self { pid, port, status })
    }

    /// Whether the server says it accepts connections.
    pub(crate) fn is_ready(&self) -> bool {
        self.status.as_deref() == Some("ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_ready_server() {
        let text = "4242\n/tmp/data\n1732680000\n54321\n/tmp/sock\n127.0.0.1\n  1234567     98304\nready   \n";
        let pid_file = PidFile::parse(text).unwrap();
        assert_eq!(pid_file.pid, 4242);
        assert_eq!(pid_file.port, Some(54321));
        assert!(pid_file.is_ready());
    }

    #[test]
    fn parses_a_starting_or_partial_file() {
        let starting = PidFile::parse("7\n/d\n1\n5433\n\n127.0.0.1\n 1 2\nstarting\n").unwrap();
        assert!(!starting.is_ready());
        let partial = PidFile::parse("7\n/d\n").unwrap();
        assert_eq!(partial.port, None);
        assert!(!partial.is_ready());
        assert_eq!(PidFile::parse(""), None);
        assert_eq!(PidFile::parse("not a pid\n"), None);
    }
}
