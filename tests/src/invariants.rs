//! Invariants checked from PostgreSQL's side after every fault scenario:
//! tarn's server connections never exceed `pool_size + max_overflow` at any
//! sample, none is left `idle in transaction`, the pool's own statistics
//! (tarn's admin `/metrics`) agree with `pg_stat_activity` once things
//! settle, and the database password appears nowhere tarn wrote.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::faults::PASSWORD;
use crate::http::send;
use crate::load::Report;
use crate::tarn::Tarn;

/// What the background sampler saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Samples {
    /// Samples taken (the server was reachable).
    pub taken: usize,
    /// Most server connections with tarn's `application_name` at one sample.
    pub max_connections: i64,
    /// Most of them `idle in transaction` at one sample.
    pub max_idle_in_transaction: i64,
    /// Most of them running a statement at one sample.
    pub max_active: i64,
}

/// Samples `pg_stat_activity` for one `application_name` every interval,
/// reconnecting whenever the server went away, until stopped.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Samples>,
}

const SAMPLE_SQL: &str = "SELECT count(*), \
     count(*) FILTER (WHERE state LIKE 'idle in transaction%'), \
     count(*) FILTER (WHERE state = 'active') \
     FROM pg_stat_activity WHERE application_name = $1";

impl Sampler {
    /// Starts sampling connections named `app` through the observer `url`.
    pub fn start(url: &str, app: &str, every: Duration) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let (url, app) = (url.to_string(), app.to_string());
        let task = tokio::spawn(async move {
            let mut seen = Samples::default();
            let mut client: Option<Client> = None;
            while !*stopped.borrow() {
                if client.as_ref().is_none_or(Client::is_closed) {
                    client = match tokio_postgres::connect(&url, NoTls).await {
                        Ok((c, conn)) => {
                            tokio::spawn(conn);
                            Some(c)
                        }
                        Err(_) => None,
                    };
                }
                if let Some(c) = &client
                    && let Ok(row) = c.query_one(SAMPLE_SQL, &[&app]).await
                {
                    seen.taken += 1;
                    seen.max_connections = seen.max_connections.max(row.get(0));
                    seen.max_idle_in_transaction = seen.max_idle_in_transaction.max(row.get(1));
                    seen.max_active = seen.max_active.max(row.get(2));
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => {}
                }
            }
            seen
        });
        Sampler { stop, task }
    }

    /// Stops sampling and returns what was seen.
    pub async fn stop(self) -> Samples {
        self.stop.send_replace(true);
        self.task.await.expect("sampler task")
    }
}

/// The pool gauges tarn exports on its admin `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolGauges {
    /// Idle connections.
    pub checked_in: i64,
    /// Connections lent out.
    pub checked_out: i64,
    /// Open connections.
    pub total: i64,
    /// Callers waiting.
    pub waiting: i64,
}

/// Reads database `db`'s pool gauges from tarn's admin listener.
pub async fn pool_gauges(admin_port: u16, db: &str) -> PoolGauges {
    let text = metrics(admin_port).await;
    PoolGauges {
        checked_in: pool_metric(&text, "checked_in", db),
        checked_out: pool_metric(&text, "checked_out", db),
        total: pool_metric(&text, "total", db),
        waiting: pool_metric(&text, "waiting", db),
    }
}

/// tarn's admin `/metrics` text.
pub async fn metrics(admin_port: u16) -> String {
    send(admin_port, "GET", "/metrics", bytes::Bytes::new())
        .await
        .expect("GET /metrics")
        .text()
}

/// The value of `tarn_pool_<name>{database="<db>"}` in a `/metrics` text
/// (counters are named with their `_total` suffix).
pub fn pool_metric(text: &str, name: &str, db: &str) -> i64 {
    let prefix = format!("tarn_pool_{name}{{database=\"{db}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
}

/// The state once tarn is quiet: the pool's view and PostgreSQL's.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// Server connections with tarn's `application_name`.
    pub server_connections: i64,
    /// Of them, idle in a transaction.
    pub idle_in_transaction: i64,
    /// The pool's gauges.
    pub pool: PoolGauges,
    /// How long it took to settle.
    pub after: Duration,
}

async fn server_view(observer: &Client, app: &str) -> (i64, i64) {
    let row = observer
        .query_one(SAMPLE_SQL, &[&app])
        .await
        .expect("sample pg_stat_activity");
    (row.get(0), row.get(1))
}

/// Waits (up to `timeout`) until tarn is quiet and consistent: nothing
/// checked out or waiting, nothing idle in a transaction, the pool's total
/// equal to the server's count, and — if given — equal to `expected_total`.
/// Panics with both views if that does not happen.
pub async fn settle(
    tarn: &Tarn,
    observer_url: &str,
    app: &str,
    expected_total: Option<i64>,
    timeout: Duration,
) -> Settled {
    let observer = crate::postgres::connect(observer_url).await;
    let started = Instant::now();
    loop {
        let pool = pool_gauges(tarn.admin_port, "default").await;
        let (server_connections, idle_in_transaction) = server_view(&observer, app).await;
        let settled = Settled {
            server_connections,
            idle_in_transaction,
            pool,
            after: started.elapsed(),
        };
        let consistent = pool.checked_out == 0
            && pool.waiting == 0
            && idle_in_transaction == 0
            && pool.total == server_connections
            && expected_total.is_none_or(|n| n == pool.total);
        if consistent {
            return settled;
        }
        assert!(
            started.elapsed() < timeout,
            "tarn did not settle within {timeout:?} (expected total {expected_total:?}): {settled:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts the sampled bound: at most `max_connections` server connections
/// at every sample. (Connections are briefly `idle in transaction` between
/// the statements of a guest's transaction, so that state is only an
/// invariant once tarn is quiet: see [`settle`].)
pub fn assert_bounds(samples: &Samples, max_connections: i64) {
    assert!(samples.taken > 0, "the sampler took no sample");
    assert!(
        samples.max_connections <= max_connections,
        "saw {} server connections, the bound is {max_connections} ({samples:?})",
        samples.max_connections
    );
}

/// Asserts that the fault clusters' password is in neither tarn's log nor
/// any response the load `reports` received.
pub fn assert_secret_kept(tarn: &Tarn, reports: &[&Report]) {
    let log = tarn.log();
    let mut texts = vec![("tarn's log", log.as_str())];
    for report in reports {
        texts.extend(
            report
                .samples
                .iter()
                .map(|s| ("a response", s.text.as_str())),
        );
    }
    assert_no_secret(PASSWORD, texts);
}

/// Asserts that `secret` appears in none of `texts` (response headers and
/// bodies, log lines, error messages), naming where it was found.
pub fn assert_no_secret<'a>(secret: &str, texts: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (source, text) in texts {
        if let Some(at) = text.find(secret) {
            let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!(
                "the database password appears in {source}: {}",
                &text[from..to]
            );
        }
    }
}
