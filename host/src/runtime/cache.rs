//! Compiled components cached on disk, keyed by a hash of the engine's
//! compatibility settings and the component's bytes, so restarts skip
//! compilation.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Feeds `Hash` output into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only used through write")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Where a component with these bytes is cached for this engine.
fn cache_path(engine: &Engine, dir: &Path, bytes: &[u8]) -> PathBuf {
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update(bytes);
    let digest = hasher.0.finalize();
    let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.cwasm"))
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the on-disk cache.
    Cache,
    /// Compiled now (and written to the cache when possible).
    Compiled,
}

/// Loads `bytes` as a component, from the cache in `dir` when present.
pub fn load(engine: &Engine, dir: &Path, bytes: &[u8]) -> wasmtime::Result<(Component, Origin)> {
    let path = cache_path(engine, dir, bytes);
    if path.exists() {
        // SAFETY: the file was written by `Engine::precompile_component` of an
        // engine with the same compatibility hash (it is in the name), into
        // tarn's own cache directory.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, Origin::Cache)),
            Err(e) => tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e}"),
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    if let Err(e) = write_atomically(&path, &compiled) {
        tracing::warn!(path = %path.display(), "cannot write component cache: {e}");
    }
    // SAFETY: `compiled` was just produced by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    Ok((component, Origin::Compiled))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
