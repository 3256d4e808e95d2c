//! Black-box harness: builds and starts the real `tarn` binary with real
//! guest components against a real PostgreSQL, and talks to it over HTTP.

pub mod faults;
pub mod hostile;
pub mod http;
pub mod invariants;
pub mod load;
pub mod postgres;
pub mod proxy;
pub mod sample;
pub mod tarn;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
}

fn cargo(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(workspace())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(status.success(), "cargo {args:?} failed: {status}");
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// The `tarn` binary, built once per test process (debug profile).
pub fn tarn_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        cargo(&["build", "--quiet", "-p", "tarn", "--bin", "tarn"]);
        target_dir().join("debug").join("tarn")
    })
}

/// The Rust sample guest component, built once per test process.
pub fn rust_guest() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        cargo(&[
            "build",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--release",
            "-p",
            "tarn-guest",
        ]);
        target_dir()
            .join("wasm32-wasip2")
            .join("release")
            .join("tarn_guest.wasm")
    })
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `…/tarn-test-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tarn-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `command` to completion; returns whether it succeeded and what it
/// printed (standard output, then standard error).
pub fn run_output(command: &mut std::process::Command) -> (bool, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A unique name for this test's connections (`application_name`), so
/// counts in `pg_stat_activity` see only this test's tarn.
pub fn unique_name(label: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "tarn-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Prints one scenario's measured figures on a line of their own
/// (`FIGURES <scenario>: ...`), for RELIABILITY.md; visible with `--nocapture`.
pub fn figures(scenario: &str, line: &str) {
    println!("FIGURES {scenario}: {line}");
}
