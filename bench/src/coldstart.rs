//! Cold start: from spawning `tarn up` to its first 200 on `GET /health`, with and without
//! the compiled-component cache, with an eager pool (connections opened before serving) and
//! a lazy one.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::latency::Summary;
use crate::server::{Binaries, Server, TarnOptions};

/// One cold-start configuration's numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColdStart {
    /// Whether the compiled component was in the cache.
    pub cached: bool,
    /// Whether the pool was lazy.
    pub lazy: bool,
    /// Time to the first 200, over the repetitions.
    pub to_first_200: Summary,
}

/// Measures eager and lazy pools with a warm cache and, if `without_cache`, with an empty one,
/// `repeats` starts each; files go under `dir`.
pub async fn measure(
    bins: &Binaries,
    database_url: &str,
    dir: &Path,
    repeats: usize,
    without_cache: bool,
) -> Result<Vec<ColdStart>> {
    let warm_cache = dir.join("warm-cache");
    // Fill the cache once, unmeasured.
    drop(start(bins, database_url, &warm_cache, false, dir).await?);
    let mut results = Vec::new();
    let caches: &[bool] = if without_cache {
        &[true, false]
    } else {
        &[true]
    };
    for &cached in caches {
        for lazy in [false, true] {
            let mut times = Vec::with_capacity(repeats);
            for i in 0..repeats {
                let cache_dir = if cached {
                    warm_cache.clone()
                } else {
                    dir.join(format!("cold-cache-{lazy}-{i}"))
                };
                if !cached {
                    let _ = std::fs::remove_dir_all(&cache_dir);
                }
                let server = start(bins, database_url, &cache_dir, lazy, dir).await?;
                times.push(server.startup);
                drop(server);
                if !cached {
                    let _ = std::fs::remove_dir_all(&cache_dir);
                }
            }
            results.push(ColdStart {
                cached,
                lazy,
                to_first_200: Summary::of(&mut times),
            });
        }
    }
    Ok(results)
}

async fn start(
    bins: &Binaries,
    database_url: &str,
    cache_dir: &Path,
    lazy: bool,
    dir: &Path,
) -> Result<Server> {
    let options = TarnOptions {
        database_url: database_url.into(),
        cache_dir: cache_dir.to_path_buf(),
        lazy_init: lazy,
        extra_config: String::new(),
        binary: None,
    };
    Server::tarn(bins, &options, &dir.join("run")).await
}
