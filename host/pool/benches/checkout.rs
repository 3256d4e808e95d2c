//! Checkout + return throughput against the machine's PostgreSQL (127.0.0.1:5432, user
//! postgres): uncontended on one task, and 64 tasks contending for 15 connections (with a
//! fairness report: mean vs max checkout wait, least vs most total wait per task, and how
//! many checkouts overtook the most-overtaken waiter).
//!
//! Run with `cargo bench -p tarn-pool`. Set `TARN_BENCH_PG` to use another server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use tarn_pool::{Pool, PoolConfig};

/// get() + drop pairs per measured iteration.
const PAIRS: usize = 10_000;
/// Contending tasks and the iterations each does per measured iteration.
const TASKS: usize = 64;
const ROUNDS: usize = 200;

fn main() {
    divan::main();
    fairness_report();
}

fn pg() -> tokio_postgres::Config {
    let url = std::env::var("TARN_BENCH_PG").unwrap_or_else(|_| {
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres application_name=tarn_bench"
            .to_owned()
    });
    url.parse()
        .expect("TARN_BENCH_PG is a valid connection string")
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// The default configuration (5 + 10 connections). With `keep_overflow`, surplus connections
/// stay open for a minute instead of being closed on return, so that every measured run starts
/// with 15 open connections (otherwise each burst would first reconnect 10 of them).
fn pool(rt: &tokio::runtime::Runtime, keep_overflow: bool) -> Pool {
    let config = PoolConfig {
        overflow_idle_timeout: if keep_overflow {
            Duration::from_secs(60)
        } else {
            Duration::ZERO
        },
        ..PoolConfig::default()
    };
    let pool = rt
        .block_on(Pool::connect("bench", pg(), config))
        .expect("the benchmark needs PostgreSQL at 127.0.0.1:5432");
    // Open all 15 connections once.
    rt.block_on(async {
        let held: Vec<_> = futures::future::join_all((0..15).map(|_| pool.get())).await;
        assert!(held.iter().all(Result::is_ok));
    });
    pool
}

/// One task, a warm pool, no pre-ping (every connection was used within `pre_ping_after`).
#[divan::bench(sample_count = 50)]
fn uncontended(bencher: Bencher) {
    let rt = runtime(1);
    let pool = pool(&rt, false);
    bencher.counter(ItemsCount::new(PAIRS)).bench_local(|| {
        rt.block_on(async {
            for _ in 0..PAIRS {
                let conn = pool.get().await.expect("checkout");
                drop(black_box(conn));
            }
        })
    });
    rt.block_on(pool.close(Duration::from_secs(1)));
}

/// Per-checkout waits and per-task total waits of the contended runs, by benchmark.
/// The third element is the largest number of checkouts that completed while one checkout
/// waited. With a FIFO queue a waiter can be overtaken at most once by each other task (63):
/// a fairness measure that does not depend on the OS scheduling of a shared 2-core machine.
type Waits = Vec<(&'static str, Vec<Duration>, Vec<Duration>, u64)>;
static WAITS: Mutex<Waits> = Mutex::new(Vec::new());

/// 64 tasks on 2 worker threads share 15 connections; each holds its connection across one
/// `yield_now` (so connections really are held across await points).
#[divan::bench(sample_count = 20)]
fn contended_64_tasks_15_conns(bencher: Bencher) {
    let rt = runtime(2);
    let pool = pool(&rt, true);
    bencher
        .counter(ItemsCount::new(TASKS * ROUNDS))
        .bench_local(|| {
            record("yield, 2 workers", rt.block_on(run_contended(&pool, false)));
        });
    rt.block_on(pool.close(Duration::from_secs(1)));
}

/// The same on a single-threaded runtime: no worker can be descheduled while a task it woke
/// waits in its (unstealable) LIFO slot, so the overtake count shows the queue's own order.
#[divan::bench(sample_count = 20)]
fn contended_64_tasks_15_conns_single_thread(bencher: Bencher) {
    let rt = runtime(1);
    let pool = pool(&rt, true);
    bencher
        .counter(ItemsCount::new(TASKS * ROUNDS))
        .bench_local(|| {
            record("yield, 1 thread", rt.block_on(run_contended(&pool, false)));
        });
    rt.block_on(pool.close(Duration::from_secs(1)));
}

/// Same, but each holder makes one real round trip (`check_connection`) on its connection.
#[divan::bench(sample_count = 10)]
fn contended_64_tasks_15_conns_roundtrip(bencher: Bencher) {
    let rt = runtime(2);
    let pool = pool(&rt, true);
    bencher
        .counter(ItemsCount::new(TASKS * ROUNDS))
        .bench_local(|| {
            record(
                "roundtrip, 2 workers",
                rt.block_on(run_contended(&pool, true)),
            );
        });
    rt.block_on(pool.close(Duration::from_secs(1)));
}

async fn run_contended(pool: &Pool, roundtrip: bool) -> (Vec<Duration>, Vec<Duration>, u64) {
    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let served = Arc::new(AtomicU64::new(0));
    let overtaken_max = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (pool, start) = (pool.clone(), Arc::clone(&start));
            let (served, overtaken_max) = (Arc::clone(&served), Arc::clone(&overtaken_max));
            tokio::spawn(async move {
                let mut waits = Vec::with_capacity(ROUNDS);
                start.wait().await;
                for _ in 0..ROUNDS {
                    let asked = Instant::now();
                    let before = served.load(Ordering::SeqCst);
                    let conn = pool.get().await.expect("checkout");
                    let overtaken = served.fetch_add(1, Ordering::SeqCst) - before;
                    overtaken_max.fetch_max(overtaken, Ordering::Relaxed);
                    waits.push(asked.elapsed());
                    if roundtrip {
                        conn.check_connection().await.expect("round trip");
                    } else {
                        tokio::task::yield_now().await;
                    }
                    drop(conn);
                }
                waits
            })
        })
        .collect();
    let mut all = Vec::with_capacity(TASKS * ROUNDS);
    let mut per_task = Vec::with_capacity(TASKS);
    for task in tasks {
        let waits = task.await.expect("task");
        per_task.push(waits.iter().sum());
        all.extend(waits);
    }
    (all, per_task, overtaken_max.load(Ordering::Relaxed))
}

fn record(name: &'static str, (waits, per_task, overtaken): (Vec<Duration>, Vec<Duration>, u64)) {
    let mut all = WAITS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match all.iter_mut().find(|(n, ..)| *n == name) {
        Some((_, w, p, o)) => {
            w.extend(waits);
            p.extend(per_task);
            *o = (*o).max(overtaken);
        }
        None => all.push((name, waits, per_task, overtaken)),
    }
}

fn fairness_report() {
    let all = WAITS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (name, waits, per_task, overtaken) in all.iter() {
        if waits.is_empty() {
            continue;
        }
        let mut sorted = waits.clone();
        sorted.sort_unstable();
        let mean = sorted.iter().sum::<Duration>() / sorted.len() as u32;
        let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
        println!(
            "fairness {name}: {} checkouts, wait mean {mean:?}, p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?} (max/mean {:.1})",
            sorted.len(),
            pct(0.5),
            pct(0.99),
            pct(0.999),
            sorted[sorted.len() - 1],
            sorted[sorted.len() - 1].as_secs_f64() / mean.as_secs_f64().max(1e-12),
        );
        println!(
            "fairness {name}: at most {overtaken} checkouts overtook a waiter (FIFO bound: {})",
            TASKS - 1
        );
        let (least, most) = (per_task.iter().min(), per_task.iter().max());
        if let (Some(least), Some(most)) = (least, most) {
            println!(
                "fairness {name}: total wait per task of {ROUNDS} checkouts: min {least:?}, max {most:?}"
            );
        }
    }
}
