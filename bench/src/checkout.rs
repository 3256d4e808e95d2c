//! Pool checkout + return, the pool issue's benchmark in the suite's terms: tarn's pool next
//! to deadpool-postgres with `Fast` recycling (what the native ceiling uses) and with `Clean`
//! (reset-per-checkout). Uncontended: one task, get + drop in a loop. Contended: 64 tasks on
//! 2 worker threads share 15 connections, each holding its connection across a yield.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use serde::{Deserialize, Serialize};
use tarn_pool::{Pool, PoolConfig};
use tokio_postgres::NoTls;

use crate::latency::Summary;

/// Tasks of the contended run.
const TASKS: usize = 64;
/// Connections of every pool in the contended run.
const CONNECTIONS: usize = 15;

/// One pool's numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutResult {
    /// `tarn-pool`, `deadpool-fast` or `deadpool-clean`.
    pub pool: String,
    /// Uncontended get + drop, per pair.
    pub uncontended: Summary,
    /// Contended checkouts per second.
    pub contended_per_second: f64,
    /// Contended: one task's cycle (get, hold across a yield, return), waiting included.
    pub contended_cycle: Summary,
}

/// Either pool behind one interface.
#[derive(Clone)]
enum AnyPool {
    Tarn(Pool),
    Deadpool(deadpool_postgres::Pool),
}

impl AnyPool {
    async fn cycle(&self) -> Result<()> {
        match self {
            AnyPool::Tarn(p) => drop(p.get().await?),
            AnyPool::Deadpool(p) => drop(p.get().await?),
        }
        Ok(())
    }

    async fn hold_across_yield(&self) -> Result<()> {
        match self {
            AnyPool::Tarn(p) => {
                let conn = p.get().await?;
                tokio::task::yield_now().await;
                drop(conn);
            }
            AnyPool::Deadpool(p) => {
                let conn = p.get().await?;
                tokio::task::yield_now().await;
                drop(conn);
            }
        }
        Ok(())
    }
}

async fn open(kind: &str, url: &str) -> Result<AnyPool> {
    let pg: tokio_postgres::Config = url.parse()?;
    Ok(match kind {
        "tarn-pool" => {
            // Surplus kept open, so every run starts with 15 connections (as the pool's own
            // benchmark does).
            let config = PoolConfig {
                overflow_idle_timeout: Duration::from_secs(60),
                ..PoolConfig::default()
            };
            AnyPool::Tarn(Pool::connect("bench", pg, config).await?)
        }
        _ => {
            let method = if kind == "deadpool-clean" {
                RecyclingMethod::Clean
            } else {
                RecyclingMethod::Fast
            };
            let manager = Manager::from_config(
                pg,
                NoTls,
                ManagerConfig {
                    recycling_method: method,
                },
            );
            AnyPool::Deadpool(
                deadpool_postgres::Pool::builder(manager)
                    .max_size(CONNECTIONS)
                    .build()?,
            )
        }
    })
}

/// Measures the three pools against `url`; `pairs` uncontended cycles and `rounds` cycles per
/// contended task (a tenth of both for the slow `Clean` pool).
pub fn measure(url: &str, pairs: usize, rounds: usize) -> Result<Vec<CheckoutResult>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for kind in ["tarn-pool", "deadpool-fast", "deadpool-clean"] {
        let (pairs, rounds) = if kind == "deadpool-clean" {
            (pairs / 10, rounds / 10)
        } else {
            (pairs, rounds)
        };
        let result = rt.block_on(async {
            let pool = open(kind, url)
                .await
                .with_context(|| format!("open {kind}"))?;
            // Open every connection once.
            let held: Vec<_> =
                futures::future::join_all((0..CONNECTIONS).map(|_| pool.hold_across_yield())).await;
            held.into_iter().collect::<Result<Vec<_>>>()?;
            let mut uncontended = tokio::spawn({
                let pool = pool.clone();
                async move {
                    let mut times = Vec::with_capacity(pairs);
                    for _ in 0..pairs {
                        let started = Instant::now();
                        pool.cycle().await?;
                        times.push(started.elapsed());
                    }
                    Ok::<_, anyhow::Error>(times)
                }
            })
            .await??;
            let (per_second, mut cycles) = contended(&pool, rounds).await?;
            Ok::<_, anyhow::Error>(CheckoutResult {
                pool: kind.into(),
                uncontended: Summary::of(&mut uncontended),
                contended_per_second: per_second,
                contended_cycle: Summary::of(&mut cycles),
            })
        })?;
        results.push(result);
    }
    Ok(results)
}

async fn contended(pool: &AnyPool, rounds: usize) -> Result<(f64, Vec<Duration>)> {
    let start = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (pool, start) = (pool.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                let mut waits = Vec::with_capacity(rounds);
                start.wait().await;
                for _ in 0..rounds {
                    let asked = Instant::now();
                    pool.hold_across_yield().await?;
                    waits.push(asked.elapsed());
                }
                Ok::<_, anyhow::Error>(waits)
            })
        })
        .collect();
    start.wait().await;
    let started = Instant::now();
    let mut all = Vec::with_capacity(TASKS * rounds);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}
