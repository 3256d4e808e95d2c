//! The PostgreSQL the suite runs against: by default a private, durable (fsync on) cluster
//! of the machine's PostgreSQL binaries with room for the connection-hungry baselines
//! (connect-per-request at concurrency 128, a 64-connection pool) and no other users; or a
//! server given by URL.

use std::path::Path;

use anyhow::{Context, Result};
use tarn_pgctl::{Cluster, ClusterOptions};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// `max_connections` of the private cluster: every target's connections at once, with room.
const MAX_CONNECTIONS: u32 = 400;

/// The role the servers under test log in as with a password ([`BenchDatabase::scram_url`]).
const SCRAM_ROLE: &str = "bench_scram";

/// Its password: the private cluster is a throwaway on loopback.
const SCRAM_PASSWORD: &str = "bench-password";

/// The database under test; a private cluster is stopped when this is dropped.
pub struct BenchDatabase {
    /// Connection URL (trust auth).
    pub url: String,
    cluster: Option<Cluster>,
}

impl BenchDatabase {
    /// Uses `url` if given (creating its database if the server lacks it), else starts
    /// (initializing on first use) a private cluster in `dir`.
    pub async fn open(url: Option<String>, dir: &Path) -> Result<BenchDatabase> {
        if let Some(url) = url {
            create_database(&url).await?;
            return Ok(BenchDatabase { url, cluster: None });
        }
        let mut options = ClusterOptions::new(dir);
        options.database = "bench".into();
        options.max_connections = MAX_CONNECTIONS;
        options.extra_settings = vec![("shared_buffers".into(), "128MB".into())];
        let cluster = Cluster::start(options)
            .with_context(|| format!("start a private PostgreSQL cluster in {}", dir.display()))?;
        Ok(BenchDatabase {
            url: cluster.url(),
            cluster: Some(cluster),
        })
    }

    /// A URL of the same database for a role that must log in with a password over
    /// SCRAM-SHA-256, as managed databases require (a new connection then costs the SASL
    /// exchange and its key derivation on both sides). Creates the role (a superuser, so it
    /// needs no grants) and requires the password from it on TCP; the private cluster only.
    pub async fn scram_url(&self) -> Result<String> {
        let cluster = self.cluster.as_ref().context(
            "password authentication needs the suite's private cluster (no --database-url)",
        )?;
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await?;
        let driver = tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SCRAM_ROLE}') \
                 THEN CREATE ROLE {SCRAM_ROLE} SUPERUSER LOGIN; END IF; END $$; \
                 SET password_encryption = 'scram-sha-256'; \
                 ALTER ROLE {SCRAM_ROLE} PASSWORD '{SCRAM_PASSWORD}'"
            ))
            .await
            .context("create the password role")?;
        std::fs::write(
            cluster.data_dir().join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 host all {SCRAM_ROLE} 127.0.0.1/32 scram-sha-256\n\
                 host all all 127.0.0.1/32 trust\n"
            ),
        )
        .context("write pg_hba.conf")?;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .context("reload the configuration")?;
        drop(client);
        let _ = driver.await;
        let superuser = "postgres://postgres@";
        anyhow::ensure!(
            self.url.starts_with(superuser),
            "unexpected URL {}",
            self.url
        );
        Ok(self.url.replacen(
            superuser,
            &format!("postgres://{SCRAM_ROLE}:{SCRAM_PASSWORD}@"),
            1,
        ))
    }

    /// The postmaster's process id, when the suite runs its own cluster.
    pub fn postmaster(&self) -> Option<u32> {
        self.cluster.as_ref().and_then(Cluster::pid)
    }

    /// The server's version string.
    pub async fn version(&self) -> Result<String> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(conn);
        let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
        drop(client);
        let _ = driver.await;
        Ok(version)
    }
}

/// Creates the database `url` names unless it exists, through the server's `postgres`
/// database.
async fn create_database(url: &str) -> Result<()> {
    let pg: tokio_postgres::Config = url.parse().context("parse the database URL")?;
    match pg.connect(NoTls).await {
        Ok(_) => return Ok(()),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(e).with_context(|| format!("connect to {url}")),
    }
    let name = pg
        .get_dbname()
        .context("the database URL names no database")?
        .to_owned();
    let mut admin = pg.clone();
    admin.dbname("postgres");
    let (client, conn) = admin
        .connect(NoTls)
        .await
        .context("connect to the server's `postgres` database")?;
    let driver = tokio::spawn(conn);
    let created = client
        .batch_execute(&format!(
            "CREATE DATABASE \"{}\"",
            name.replace('"', "\"\"")
        ))
        .await;
    drop(client);
    let _ = driver.await;
    match created {
        // Someone else created it meanwhile.
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        other => other.with_context(|| format!("create database {name}")),
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            let _ = cluster.stop();
        }
    }
}
