//! The `tarn` binary: configuration and process lifecycle at the edges;
//! everything else lives in the `tarn` library.

mod cli;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tarn::config::{DEFAULT_DATABASE, DatabaseUrl, Settings};
use tarn::database::Databases;
use tarn::http::server::{App, serve};
use tarn::manifest::Manifest;
use tarn::metrics::RequestMetrics;
use tarn::route::Router;
use tarn::runtime::{ComponentConfig, GuestLimits, Runtime};
use tarn_pgctl::{Cluster, ClusterOptions};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use cli::{CheckArgs, Cli, Command, DatabaseArgs, UpArgs};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("TARN_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cli.workers(cpus);
    tracing::debug!(cpus, workers, "starting the async runtime");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up(args).await,
            Command::Build(args) => build(&args.manifest).await,
            Command::Check(args) => check(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn settings(db: &DatabaseArgs, up: Option<&UpArgs>) -> Result<Settings> {
    let mut overrides = db.overrides();
    if let Some(up) = up {
        overrides.listen = up.listen;
        overrides.admin_listen = up.admin_listen;
    }
    Ok(Settings::resolve(&overrides, db.runtime_config.as_deref())?)
}

async fn build(manifest: &Path) -> Result<()> {
    let manifest = Manifest::load(manifest)?;
    let n = tarn::build::build_manifest(&manifest, true).await?;
    eprintln!("built {n} component(s)");
    Ok(())
}

/// The private database `tarn up` starts when no URL is configured.
fn private_database(manifest: &Manifest) -> Result<(Cluster, DatabaseUrl)> {
    let data_dir = manifest.dir.join(".tarn").join("pgdata");
    let mut options = ClusterOptions::new(&data_dir);
    options.database = "tarn".into();
    let cluster = Cluster::start(options).with_context(|| {
        format!(
            "no database URL is configured (--database-url, TARN_DATABASE_URL, DATABASE_URL or \
             [database.default] url), and a private PostgreSQL could not be started in {}",
            data_dir.display()
        )
    })?;
    let url = DatabaseUrl::parse("private database", &cluster.url())?;
    eprintln!(
        "no database URL configured: started a private PostgreSQL at {} (data in {})",
        url,
        data_dir.display()
    );
    Ok((cluster, url))
}

/// Loads every component of the manifest into a runtime.
fn load_components(
    settings: &Settings,
    manifest: &Manifest,
    databases: Databases,
) -> Result<Runtime> {
    let defaults = GuestLimits::defaults(&settings.runtime);
    let limits: Vec<(String, GuestLimits)> = manifest
        .components
        .iter()
        .map(|(id, spec)| {
            let l = &spec.limits;
            let limits = GuestLimits {
                memory_bytes: l
                    .memory_mb
                    .map_or(defaults.memory_bytes, |mb| u64::from(mb) << 20),
                cpu: l.cpu_ms.map_or(defaults.cpu, |ms| {
                    std::time::Duration::from_millis(ms.into())
                }),
                timeout: l.timeout_ms.map_or(defaults.timeout, |ms| {
                    std::time::Duration::from_millis(ms.into())
                }),
                max_connections: l.max_connections.map(|n| n as usize),
            };
            (id.clone(), limits)
        })
        .collect();
    let max_memory = limits
        .iter()
        .map(|(_, l)| l.memory_bytes)
        .max()
        .unwrap_or(defaults.memory_bytes);
    let mut runtime = Runtime::new(&settings.runtime, databases, max_memory)
        .map_err(|e| anyhow::anyhow!("cannot start the Wasm runtime: {e:#}"))?;
    for (id, limits) in limits {
        let spec = &manifest.components[&id];
        for name in &spec.databases {
            if !settings.databases.contains_key(name) {
                bail!("component `{id}` is granted database `{name}`, which is not configured");
            }
        }
        let started = Instant::now();
        let origin = runtime.load(&ComponentConfig {
            id: id.clone(),
            source: spec.source.clone(),
            environment: spec.environment.clone().into_iter().collect(),
            databases: spec.databases.clone(),
            limits,
        })?;
        tracing::info!(component = %id, ?origin, elapsed_ms = started.elapsed().as_millis() as u64, "component loaded");
    }
    Ok(runtime)
}

async fn check(args: CheckArgs) -> Result<()> {
    let settings = settings(&args.database, None)?;
    let manifest = Manifest::load(&args.manifest.manifest)?;
    Router::new(&manifest.triggers)?;
    println!(
        "manifest {}: {} component(s), {} route(s)",
        args.manifest.manifest.display(),
        manifest.components.len(),
        manifest.triggers.len()
    );
    let databases = Databases::open(&settings.databases, None).await?;
    for db in databases.all() {
        db.pool
            .health_check()
            .await
            .with_context(|| format!("database `{}` ({})", db.name, db.redacted_url))?;
        println!(
            "database `{}` ({}): reachable, pool {:?}",
            db.name,
            db.redacted_url,
            db.pool.stats()
        );
    }
    if databases.get(DEFAULT_DATABASE).is_none() {
        println!(
            "database `default`: no URL configured (tarn up would start a private PostgreSQL)"
        );
    }
    load_components(&settings, &manifest, databases.clone())?;
    println!("all components load");
    databases.close(std::time::Duration::from_secs(1)).await;
    Ok(())
}

async fn up(args: UpArgs) -> Result<()> {
    let started = Instant::now();
    let settings = settings(&args.database, Some(&args))?;
    let manifest = Manifest::load(&args.manifest.manifest)?;
    let router = Router::new(&manifest.triggers)?;
    if !args.no_build {
        tarn::build::build_manifest(&manifest, false).await?;
    }
    let private = match settings.databases[DEFAULT_DATABASE].url {
        Some(_) => None,
        None => Some(private_database(&manifest)?),
    };
    let served = serve_app(
        &settings,
        &manifest,
        router,
        private.as_ref().map(|(_, url)| url),
        started,
    )
    .await;
    // The private PostgreSQL is stopped whether serving ended well or not.
    if let Some((mut cluster, _)) = private
        && let Err(e) = cluster.stop()
    {
        tracing::warn!("cannot stop the private PostgreSQL: {e}");
    }
    served?;
    eprintln!("tarn stopped");
    Ok(())
}

/// Opens the pools, loads the components and serves until a signal.
async fn serve_app(
    settings: &Settings,
    manifest: &Manifest,
    router: Router,
    private_url: Option<&DatabaseUrl>,
    started: Instant,
) -> Result<()> {
    let databases = Databases::open(&settings.databases, private_url).await?;
    let runtime = load_components(settings, manifest, databases.clone())?;
    let metrics = Arc::new(RequestMetrics::default());
    let app_listener = bind(settings.http.listen, "application").await?;
    let admin_listener = bind(settings.http.admin_listen, "admin").await?;
    let body_limits = manifest
        .components
        .iter()
        .filter_map(|(id, spec)| Some((id.clone(), (spec.limits.max_body_kb? as usize) << 10)))
        .collect();
    let app = Arc::new(App::new(
        runtime,
        router,
        metrics.clone(),
        settings.http.clone(),
        body_limits,
    ));
    eprintln!(
        "tarn is serving http://{} (admin http://{}), ready in {} ms",
        app_listener.local_addr()?,
        admin_listener.local_addr()?,
        started.elapsed().as_millis()
    );
    for trigger in &manifest.triggers {
        eprintln!("  {} -> {}", trigger.route, trigger.component);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin = {
        let databases = databases.clone();
        let metrics = metrics.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(serve(
            admin_listener,
            settings.http.header_read_timeout,
            std::time::Duration::from_secs(1),
            move |req| {
                let databases = databases.clone();
                let metrics = metrics.clone();
                async move { tarn::http::admin::handle(req, &databases, &metrics).await }
            },
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    };
    let handler = {
        let app = app.clone();
        move |req| {
            let app = app.clone();
            async move { app.handle(req).await }
        }
    };
    serve(
        app_listener,
        settings.http.header_read_timeout,
        settings.http.shutdown_grace,
        handler,
        shutdown_signal(),
    )
    .await;
    eprintln!("shutting down: in-flight requests done, closing pools");
    let _ = stop_tx.send(true);
    let _ = admin.await;
    databases.close(settings.http.shutdown_grace).await;
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what} listener)"))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
