//! The server settings tarn manages, kept in `tarn.conf` inside the data directory.
//!
//! `postgresql.conf` includes `tarn.conf` at its end, and `postgresql.auto.conf` is read after
//! both, so `ALTER SYSTEM` (used by tests, e.g. to lower `max_connections`) still overrides
//! what tarn writes here. Passing settings as `-c` flags would not allow that.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::quote;
use crate::{ClusterOptions, PgCtlError};

/// The managed file's name inside the data directory.
const FILE_NAME: &str = "tarn.conf";

/// The line that makes `postgresql.conf` read [`FILE_NAME`].
const INCLUDE_LINE: &str = "include_if_exists = 'tarn.conf'";

/// Settings that trade durability for speed, for throwaway clusters.
const THROWAWAY_SETTINGS: [(&str, &str); 3] = [
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
];

/// Appends the include of `tarn.conf` to `data_dir/postgresql.conf` unless already there.
pub(crate) fn ensure_included(data_dir: &Path) -> Result<(), PgCtlError> {
    let path = data_dir.join("postgresql.conf");
    let text = fs::read_to_string(&path).map_err(|source| PgCtlError::io("read", &path, source))?;
    if text.lines().any(|line| line.trim() == INCLUDE_LINE) {
        return Ok(());
    }
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|source| PgCtlError::io("open", &path, source))?;
    writeln!(
        file,
        "\n# Settings managed by tarn (ALTER SYSTEM still overrides them)\n{INCLUDE_LINE}"
    )
    .map_err(|source| PgCtlError::io("append to", &path, source))
}

/// The text of `tarn.conf` for `options`, listening on `port`.
fn render(options: &ClusterOptions, port: u16) -> String {
    let socket_dir = options
        .socket_dir
        .as_deref()
        .map(|dir| dir.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut settings = vec![
        ("listen_addresses".to_owned(), "127.0.0.1".to_owned()),
        ("port".to_owned(), port.to_string()),
        ("unix_socket_directories".to_owned(), socket_dir),
        (
            "max_connections".to_owned(),
            options.max_connections.to_string(),
        ),
    ];
    if !options.persistent {
        settings.extend(THROWAWAY_SETTINGS.map(|(name, value)| (name.into(), value.into())));
    }
    settings.extend(options.extra_settings.iter().cloned());
    let mut text = String::from("# Written by tarn-pgctl at every start; do not edit.\n");
    for (name, value) in settings {
        text.push_str(&format!("{name} = {}\n", quote::literal(&value)));
    }
    text
}

/// Writes `data_dir/tarn.conf` for `options` and `port`; returns its path.
pub(crate) fn write(
    data_dir: &Path,
    options: &ClusterOptions,
    port: u16,
) -> Result<std::path::PathBuf, PgCtlError> {
    let path = data_dir.join(FILE_NAME);
    fs::write(&path, render(options, port))
        .map_err(|source| PgCtlError::io("write", &path, source))?;
    Ok(path)
}

/// The port `data_dir/tarn.conf` configured at the previous start, if any.
pub(crate) fn previous_port(data_dir: &Path) -> Option<u16> {
    let text = fs::read_to_string(data_dir.join(FILE_NAME)).ok()?;
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == "port").then(|| value.trim().trim_matches('\'').parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tarn-pgctl-unit-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn renders_throwaway_and_extra_settings_quoted() {
        let mut options = ClusterOptions::new("/d");
        options.persistent = false;
        options.socket_dir = Some("/tmp/it's".into());
        options.extra_settings = vec![("work_mem".into(), "8MB".into())];
        let text = render(&options, 15432);
        assert!(text.contains("port = '15432'\n"), "{text}");
        assert!(
            text.contains("unix_socket_directories = '/tmp/it''s'\n"),
            "{text}"
        );
        assert!(text.contains("fsync = 'off'\n"), "{text}");
        assert!(text.contains("work_mem = '8MB'\n"), "{text}");
        assert!(text.find("fsync").unwrap() < text.find("work_mem").unwrap());
    }

    #[test]
    fn persistent_clusters_keep_fsync_and_listen_on_tcp_only() {
        let text = render(&ClusterOptions::new("/d"), 5555);
        assert!(!text.contains("fsync"), "{text}");
        assert!(text.contains("unix_socket_directories = ''\n"), "{text}");
        assert!(text.contains("listen_addresses = '127.0.0.1'\n"), "{text}");
    }

    #[test]
    fn writes_reads_back_the_port_and_includes_once() {
        let dir = scratch_dir("config");
        fs::write(dir.join("postgresql.conf"), "max_connections = 100\n").unwrap();
        ensure_included(&dir).unwrap();
        ensure_included(&dir).unwrap();
        let main = fs::read_to_string(dir.join("postgresql.conf")).unwrap();
        assert_eq!(main.matches(INCLUDE_LINE).count(), 1, "{main}");
        assert_eq!(previous_port(&dir), None);
        write(&dir, &ClusterOptions::new("/d"), 23456).unwrap();
        assert_eq!(previous_port(&dir), Some(23456));
        fs::remove_dir_all(dir).unwrap();
    }
}
