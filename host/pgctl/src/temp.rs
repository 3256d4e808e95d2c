//! Directories owned by a throwaway cluster: created uniquely under the system temp dir,
//! removed on drop, and swept up after processes that died without dropping them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::PgCtlError;
use crate::pidfile::PidFile;
use crate::process::{self, Postmaster, Signal};

/// Name prefix of temporary cluster roots: `tarn-pgctl-<owner pid>-<sequence>`.
const PREFIX: &str = "tarn-pgctl-";

/// Name of the data directory inside a temporary root (see [`data_dir_of`]).
const DATA: &str = "data";

/// How long a leftover server gets to shut down before it is killed.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

/// A directory removed, with its contents, when this value is dropped.
#[derive(Debug)]
pub(crate) struct OwnedDir {
    path: PathBuf,
}

impl OwnedDir {
    /// Takes ownership of the existing directory `path`.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Creates a fresh, uniquely named directory under the system temp dir, first sweeping
    /// up the leftovers of dead processes (once per process).
    pub(crate) fn create_temp_root() -> Result<Self, PgCtlError> {
        static SWEEP: Once = Once::new();
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        SWEEP.call_once(|| sweep_leftovers(&base));
        loop {
            let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("{PREFIX}{}-{sequence}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self::new(path)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(PgCtlError::io("create directory", path, source)),
            }
        }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnedDir {
    fn drop(&mut self) {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => tracing::debug!(path = %self.path.display(), "removed cluster directory"),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(
                path = %self.path.display(), %error, "could not remove cluster directory"
            ),
        }
    }
}

/// The data directory inside temporary root `root`.
pub(crate) fn data_dir_of(root: &Path) -> PathBuf {
    root.join(DATA)
}

/// The pid of the process that created temporary root `name`, if it is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, sequence) = name.strip_prefix(PREFIX)?.split_once('-')?;
    sequence.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Stops the servers of, and removes, temporary roots whose creating process is dead.
fn sweep_leftovers(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(owner) = entry.file_name().to_str().and_then(owner_pid) else {
            continue;
        };
        if owner == std::process::id() || process::is_alive(owner) {
            continue;
        }
        let root = entry.path();
        stop_leftover_server(&data_dir_of(&root));
        if let Err(error) = fs::remove_dir_all(&root) {
            tracing::debug!(path = %root.display(), %error, "could not remove leftover cluster");
        } else {
            tracing::info!(path = %root.display(), "removed a dead process's leftover cluster");
        }
    }
}

/// Shuts down (immediate mode, then SIGKILL) a server still running in `data_dir`.
fn stop_leftover_server(data_dir: &Path) {
    let Ok(Some(pid_file)) = PidFile::read(data_dir) else {
        return;
    };
    if process::postmaster_of(pid_file.pid, data_dir) != Postmaster::Running {
        return;
    }
    tracing::info!(pid = pid_file.pid, data_dir = %data_dir.display(), "stopping leftover server");
    let _ = process::send(pid_file.pid, Signal::Quit);
    let deadline = Instant::now() + LEFTOVER_GRACE;
    while process::is_alive(pid_file.pid) && Instant::now() < deadline {
        sleep(Duration::from_millis(20));
    }
    if process::is_alive(pid_file.pid) {
        let _ = process::send(pid_file.pid, Signal::Kill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_only_our_root_names() {
        assert_eq!(owner_pid("tarn-pgctl-1234-0"), Some(1234));
        assert_eq!(owner_pid("tarn-pgctl-1234-17"), Some(1234));
        assert_eq!(owner_pid("tarn-pgctl-unit-1234-config"), None);
        assert_eq!(owner_pid("tarn-pgctl-1234"), None);
        assert_eq!(owner_pid("other-1234-0"), None);
    }

    #[test]
    fn roots_are_unique_and_removed_on_drop() {
        let first = OwnedDir::create_temp_root().unwrap();
        let second = OwnedDir::create_temp_root().unwrap();
        assert_ne!(first.path(), second.path());
        fs::write(first.path().join("file"), "x").unwrap();
        let path = first.path().to_owned();
        drop(first);
        assert!(!path.exists());
    }

    #[test]
    fn sweeps_roots_of_dead_processes_only() {
        let base =
            std::env::temp_dir().join(format!("tarn-pgctl-unit-{}-sweep", std::process::id()));
        let dead = base.join(format!("{PREFIX}{}-0", i32::MAX));
        let alive = base.join(format!("{PREFIX}{}-0", std::process::id()));
        let unrelated = base.join("tarn-pgctl-notes");
        for dir in [&dead, &alive, &unrelated] {
            fs::create_dir_all(dir.join(DATA)).unwrap();
        }
        sweep_leftovers(&base);
        assert!(!dead.exists());
        assert!(alive.exists());
        assert!(unrelated.exists());
        fs::remove_dir_all(base).unwrap();
    }
}
