//! Inspecting and signalling server processes by pid (Linux: `/proc` and `kill(2)`).

use std::fs;
use std::io;
use std::path::Path;

use crate::PgCtlError;

/// A signal this crate sends to PostgreSQL processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Smart shutdown: wait for clients to disconnect.
    Term,
    /// Fast shutdown: disconnect clients, checkpoint, exit.
    Int,
    /// Immediate shutdown: exit at once, crash recovery on next start.
    Quit,
    /// Freeze a process (so it cannot fork while we look at its children).
    Stop,
    /// Kill outright.
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Self::Term => libc::SIGTERM,
            Self::Int => libc::SIGINT,
            Self::Quit => libc::SIGQUIT,
            Self::Stop => libc::SIGSTOP,
            Self::Kill => libc::SIGKILL,
        }
    }

    /// The signal's conventional name, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
            Self::Quit => "SIGQUIT",
            Self::Stop => "SIGSTOP",
            Self::Kill => "SIGKILL",
        }
    }
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub(crate) fn send(pid: u32, signal: Signal) -> Result<(), PgCtlError> {
    let raw = libc::pid_t::try_from(pid).map_err(|_| PgCtlError::Signal {
        signal: signal.name(),
        pid,
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: kill(2) has no memory-safety preconditions; `raw` is a positive pid.
    if unsafe { libc::kill(raw, signal.number()) } == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    if source.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(PgCtlError::Signal {
        signal: signal.name(),
        pid,
        source,
    })
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The `(state, parent pid)` of a process from `/proc/<pid>/stat`, if it exists.
fn stat(pid: u32) -> Option<(char, u32)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses `pid (comm) S ppid ...`; `comm` may itself contain spaces and parentheses.
fn parse_stat(text: &str) -> Option<(char, u32)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is a live process (zombies, which have exited, do not count).
pub(crate) fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X' | 'x'))
}

/// The live processes whose parent is `pid`.
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| stat(child).is_some_and(|(state, ppid)| ppid == pid && state != 'Z'))
        .collect()
}

/// What a pid recorded in a data directory's `postmaster.pid` turns out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Postmaster {
    /// No such live process: the pid file is stale.
    Gone,
    /// A live PostgreSQL server for that data directory (as far as we can tell).
    Running,
    /// A live process that is not that directory's server (the pid was reused).
    Impostor,
}

/// Classifies `pid` as the postmaster of `data_dir` or not, from its name and working directory.
pub(crate) fn postmaster_of(pid: u32, data_dir: &Path) -> Postmaster {
    if !is_alive(pid) {
        return Postmaster::Gone;
    }
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !matches!(comm.trim_end(), "postgres" | "postmaster") {
        return Postmaster::Impostor;
    }
    // The postmaster chdirs into its data directory. Reading another user's cwd needs
    // privileges; when we cannot, the name has to do.
    match (
        fs::read_link(format!("/proc/{pid}/cwd")),
        fs::canonicalize(data_dir),
    ) {
        (Ok(cwd), Ok(dir)) if cwd != dir => Postmaster::Impostor,
        _ => Postmaster::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        assert_eq!(parse_stat("42 (postgres) S 1 42 42 0"), Some(('S', 1)));
        assert_eq!(parse_stat("7 (a) b (c)) Z 99 7"), Some(('Z', 99)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) R notanumber"), None);
    }

    #[test]
    fn this_process_is_alive_and_has_no_postmaster_identity() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert_eq!(postmaster_of(me, Path::new("/")), Postmaster::Impostor);
        assert_eq!(
            postmaster_of(u32::MAX - 1, Path::new("/")),
            Postmaster::Gone
        );
    }

    #[test]
    fn finds_children_and_tolerates_signalling_the_dead() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(children(std::process::id()).contains(&child.id()));
        send(child.id(), Signal::Kill).unwrap();
        child.wait().unwrap();
        assert!(!is_alive(child.id()));
        // Beyond any kernel's pid_max, so certainly not a process: ESRCH is not an error.
        send(i32::MAX.unsigned_abs(), Signal::Kill).unwrap();
    }
}
