//! Building what the suite drives: the `tarn` binary (in the profile of the running
//! `tarn-bench`) and the release Rust guest, with cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::server::Binaries;

/// The workspace root.
pub fn workspace() -> &'static Path {
    tarn_tests::workspace()
}

/// The binaries next to `bench` (the running `tarn-bench`, in `target/<profile>/`), building
/// them first unless `build` is false.
pub fn binaries(bench: PathBuf, build: bool) -> Result<Binaries> {
    let dir = bench
        .parent()
        .context("tarn-bench has no directory")?
        .to_path_buf();
    let release = dir.file_name().is_some_and(|n| n == "release");
    let target = dir.parent().context("no target directory")?.to_path_buf();
    if build {
        let mut tarn = vec!["build", "--quiet", "-p", "tarn", "--bin", "tarn"];
        if release {
            tarn.push("--release");
        }
        cargo(&tarn)?;
        cargo(&[
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "tarn-guest",
        ])?;
    }
    Ok(Binaries {
        tarn: dir.join("tarn"),
        bench,
        guest: target
            .join("wasm32-wasip2")
            .join("release")
            .join("tarn_guest.wasm"),
    })
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(workspace())
        .status()
        .with_context(|| format!("run {cargo}"))?;
    ensure!(status.success(), "cargo {args:?} failed: {status}");
    Ok(())
}
