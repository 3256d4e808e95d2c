//! Faults staged on a throwaway PostgreSQL cluster (tarn-pgctl), never on the
//! machine's server: stop, start, restart, crash, `pg_terminate_backend`,
//! `ALTER SYSTEM` + reload, and every connection slot taken by another client.
//!
//! Cluster operations block (they wait for the server), so they run on
//! Tokio's blocking pool and the async tests stay responsive meanwhile.

use std::time::{Duration, Instant};

use tarn_pgctl::{Cluster, ClusterOptions, PgCtlError};

use crate::invariants::{Settled, settle};
use crate::tarn::Tarn;
use tokio_postgres::{Client, NoTls};

/// The password every fault test puts in tarn's database URL. The throwaway
/// clusters use trust authentication, so it is never needed — which makes it
/// easy to look for: it must appear in no response, header or log line.
pub const PASSWORD: &str = "Fault-1njection-S3cret";

/// The `application_name` of the tests' own observer connections.
pub const OBSERVER: &str = "tarn-tests-observer";

/// The `application_name` of [`Hog`] connections.
pub const HOG: &str = "tarn-tests-hog";

/// A throwaway PostgreSQL cluster that a test can break and mend.
pub struct Database {
    /// `None` only while a blocking operation holds it.
    cluster: Option<Cluster>,
    port: u16,
    database: String,
}

impl Database {
    /// Starts a throwaway cluster with default settings.
    pub async fn start() -> Database {
        Database::start_with(|_| {}).await
    }

    /// Starts a throwaway cluster after `configure` adjusted its options
    /// (e.g. `max_connections`).
    pub async fn start_with(
        configure: impl FnOnce(&mut ClusterOptions) + Send + 'static,
    ) -> Database {
        let cluster = tokio::task::spawn_blocking(move || Cluster::start_temp_with(configure))
            .await
            .expect("join cluster start")
            .unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL cluster: {e}"));
        Database {
            port: cluster.port(),
            database: cluster.database().to_string(),
            cluster: Some(cluster),
        }
    }

    /// Runs a blocking cluster operation off the async runtime.
    async fn run<T: Send + 'static>(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut Cluster) -> Result<T, PgCtlError> + Send + 'static,
    ) -> T {
        let mut cluster = self.cluster.take().expect("cluster present");
        let (cluster, result) = tokio::task::spawn_blocking(move || {
            let result = op(&mut cluster);
            (cluster, result)
        })
        .await
        .expect("join cluster operation");
        self.cluster = Some(cluster);
        result.unwrap_or_else(|e| panic!("cluster {what} failed: {e}"))
    }

    /// Stops the server in fast mode (clients are disconnected) and waits for it to exit.
    pub async fn stop(&mut self) {
        self.run("stop", Cluster::stop).await;
    }

    /// Starts the stopped server again on the same port; returns once it accepts connections.
    pub async fn start_again(&mut self) {
        self.run("start", Cluster::start_again).await;
    }

    /// Kills the server and its backends with SIGKILL (a crash).
    pub async fn kill(&mut self) {
        self.run("kill", Cluster::kill).await;
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for tarn: carries [`PASSWORD`] and `application_name`.
    pub fn url(&self, application_name: &str) -> String {
        url_via(self.port, &self.database, application_name)
    }

    /// The same URL pointed at another port (a fault proxy in front of this cluster).
    pub fn url_via(&self, port: u16, application_name: &str) -> String {
        url_via(port, &self.database, application_name)
    }

    /// The URL of the tests' own observer connections.
    pub fn observer_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?application_name={OBSERVER}",
            self.port, self.database
        )
    }

    /// Waits (up to 10 s) until `tarn`, tagged `app`, is quiet and consistent
    /// with this database, its pool back at `pool_total` (see [`settle`]).
    pub async fn settle(&self, tarn: &Tarn, app: &str, pool_total: i64) -> Settled {
        settle(
            tarn,
            &self.observer_url(),
            app,
            Some(pool_total),
            Duration::from_secs(10),
        )
        .await
    }

    /// Connects an observer client (panics if the server is down).
    pub async fn observer(&self) -> Client {
        crate::postgres::connect(&self.observer_url()).await
    }

    /// Terminates every backend whose `application_name` is `app`, waiting
    /// (up to 5 s each) until they have exited; returns how many.
    pub async fn terminate_backends(&self, app: &str) -> i64 {
        self.observer()
            .await
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) \
                 FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .expect("pg_terminate_backend")
            .get(0)
    }

    /// `ALTER SYSTEM SET name = value` followed by `pg_reload_conf()`.
    pub async fn alter_system(&self, name: &str, value: &str) {
        let observer = self.observer().await;
        observer
            .batch_execute(&format!("ALTER SYSTEM SET {name} = '{value}'"))
            .await
            .unwrap_or_else(|e| panic!("ALTER SYSTEM SET {name}: {e}"));
        observer
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .expect("pg_reload_conf");
    }

    /// Creates login role `role` with `password` and makes the server ask
    /// every role but `postgres` for its password (SCRAM) over TCP.
    pub async fn require_password(&self, role: &str, password: &str) {
        let observer = self.observer().await;
        observer
            .batch_execute(&format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{}'",
                password.replace('\'', "''")
            ))
            .await
            .unwrap_or_else(|e| panic!("CREATE ROLE {role}: {e}"));
        let data_dir = self
            .cluster
            .as_ref()
            .expect("cluster present")
            .data_dir()
            .to_path_buf();
        std::fs::write(
            data_dir.join("pg_hba.conf"),
            "local all all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        observer
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .expect("pg_reload_conf");
    }

    /// The database's name on the cluster.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Opens connections as another client until the server refuses more
    /// (`max_connections` reached); they stay open until the [`Hog`] is dropped.
    pub async fn hog_all_slots(&self) -> Hog {
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/{}?application_name={HOG}",
            self.port, self.database
        );
        let mut clients = Vec::new();
        let refusal = loop {
            match tokio_postgres::connect(&url, NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    clients.push(client);
                }
                Err(e) => {
                    break e
                        .as_db_error()
                        .map_or_else(|| e.to_string(), |db| db.message().to_string());
                }
            }
            assert!(
                clients.len() < 1000,
                "the server never refused a connection"
            );
        };
        Hog { clients, refusal }
    }
}

fn url_via(port: u16, database: &str, application_name: &str) -> String {
    format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{port}/{database}?application_name={application_name}"
    )
}

/// Connection slots taken by another client; released on drop.
pub struct Hog {
    clients: Vec<Client>,
    /// What the server said when it refused one more.
    pub refusal: String,
}

impl Hog {
    /// How many connections it holds.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// Polls `probe` every 20 ms until it returns true; returns how long that
/// took, or `None` if `timeout` passed first.
pub async fn time_until<F, Fut>(timeout: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < timeout {
        if probe().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
