//! `tarn build`: runs each component's build command from the manifest, and
//! tells which components are stale (missing, or older than a watched file).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use crate::manifest::{ComponentSpec, Manifest};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The command could not be started.
    #[error("component `{id}`: cannot run `{command}`: {source}")]
    Spawn {
        /// Component id.
        id: String,
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command failed.
    #[error("component `{id}`: `{command}` failed ({status}){hint}")]
    Failed {
        /// Component id.
        id: String,
        /// The command.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Advice when the cause is recognisable.
        hint: String,
    },
    /// The command succeeded but the component file is still missing.
    #[error("component `{id}`: the build succeeded but {} does not exist", path.display())]
    NoOutput {
        /// Component id.
        id: String,
        /// The expected file.
        path: PathBuf,
    },
    /// A component has no build command and no file.
    #[error("component `{id}`: {} does not exist and the manifest has no build command for it", path.display())]
    Missing {
        /// Component id.
        id: String,
        /// The expected file.
        path: PathBuf,
    },
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether `spec`'s component must be (re)built: its file is missing, or a
/// file matching one of its `watch` patterns is newer.
pub fn is_stale(spec: &ComponentSpec) -> bool {
    let Some(built) = modified(&spec.source) else {
        return true;
    };
    let Some(build) = &spec.build else {
        return false;
    };
    build.watch.iter().any(|pattern| {
        let full = build.workdir.join(pattern);
        glob::glob(&full.to_string_lossy())
            .into_iter()
            .flatten()
            .flatten()
            .any(|p| modified(&p).is_some_and(|m| m > built))
    })
}

/// Builds one component with its build command.
pub async fn build(id: &str, spec: &ComponentSpec) -> Result<(), BuildError> {
    let Some(build) = &spec.build else {
        return if spec.source.exists() {
            Ok(())
        } else {
            Err(BuildError::Missing {
                id: id.to_string(),
                path: spec.source.clone(),
            })
        };
    };
    tracing::info!(component = id, command = %build.command, "building");
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&build.command)
        .current_dir(&build.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|source| BuildError::Spawn {
            id: id.to_string(),
            command: build.command.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    if !output.status.success() {
        let hint = if stderr.contains("wasm32-wasip2")
            && stderr.contains("target may not be installed")
        {
            "\nthe wasm32-wasip2 target is missing; add it with: rustup target add wasm32-wasip2"
                .to_string()
        } else {
            String::new()
        };
        return Err(BuildError::Failed {
            id: id.to_string(),
            command: build.command.clone(),
            status: output.status,
            hint,
        });
    }
    if !spec.source.exists() {
        return Err(BuildError::NoOutput {
            id: id.to_string(),
            path: spec.source.clone(),
        });
    }
    Ok(())
}

/// Builds every component (`all`) or only the stale ones.
pub async fn build_manifest(manifest: &Manifest, all: bool) -> Result<usize, BuildError> {
    let mut built = 0;
    for (id, spec) in &manifest.components {
        if all || is_stale(spec) {
            build(id, spec).await?;
            built += 1;
        }
    }
    Ok(built)
}
