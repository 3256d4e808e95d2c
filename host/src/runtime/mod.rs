//! The Wasm runtime: components compiled once (with an on-disk cache),
//! pre-instantiated, and instantiated afresh for every request in a `Store`
//! of its own with memory, CPU and wall-clock limits.

pub mod cache;
pub mod engine;
pub mod guest_log;
pub mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use crate::bindings::HttpGuestPre;
use crate::bindings::exports::tarn::postgres::handler::{Request, Response};
use crate::bindings::tarn::postgres::{database, types};
use crate::config::RuntimeSettings;
use crate::database::{Databases, DbContext, Grants, HasDb, ResultLimits};
use engine::{EPOCH_TICK, EpochTicker};
use guest_log::GuestLog;
use state::{Limiter, State};

/// Extra wall-clock time a guest gets to return after its deadline passed
/// inside a host call (which then reports `timeout` to it).
const DEADLINE_GRACE: Duration = Duration::from_millis(100);

/// What a component needs to be loaded.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// The component's id in the manifest.
    pub id: String,
    /// Its `.wasm` file.
    pub source: PathBuf,
    /// Environment variables it sees.
    pub environment: Vec<(String, String)>,
    /// Databases it may open.
    pub databases: Vec<String>,
    /// Its limits.
    pub limits: GuestLimits,
}

/// Limits of one component's instances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuestLimits {
    /// Linear memory per instance.
    pub memory_bytes: u64,
    /// Guest CPU time per request.
    pub cpu: Duration,
    /// Wall-clock deadline per request.
    pub timeout: Duration,
    /// Connections the component may hold at once, across its requests.
    pub max_connections: Option<usize>,
}

impl GuestLimits {
    /// The runtime-wide defaults.
    pub fn defaults(settings: &RuntimeSettings) -> GuestLimits {
        GuestLimits {
            memory_bytes: settings.memory_limit_bytes,
            cpu: settings.cpu_limit,
            timeout: settings.request_timeout,
            max_connections: None,
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is missing or unreadable.
    #[error("component `{id}`: cannot read {path}")]
    Read {
        /// Component id.
        id: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid component, or it needs imports tarn does not provide.
    #[error("component `{id}` ({path}): {message}")]
    Invalid {
        /// Component id.
        id: String,
        /// The file.
        path: PathBuf,
        /// What wasmtime said.
        message: String,
    },
}

/// Why a request's guest did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The route names a component that is not loaded.
    #[error("component `{0}` is not loaded")]
    UnknownComponent(String),
    /// The guest trapped (panic, unreachable, bad handle, ...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest used up its CPU time.
    #[error("guest exceeded its CPU limit of {0:?}")]
    CpuLimit(Duration),
    /// The guest tried to grow memory past its limit.
    #[error("guest exceeded its memory limit: {0}")]
    MemoryLimit(String),
    /// The request's wall-clock deadline passed.
    #[error("guest did not answer within {0:?}")]
    Deadline(Duration),
    /// No instance slot is free.
    #[error("no capacity for another instance: {0}")]
    Capacity(String),
    /// The guest answered something that is not an HTTP response.
    #[error("guest returned an invalid response: {0}")]
    BadResponse(String),
}

/// A loaded component, ready to be instantiated.
struct Guest {
    id: Arc<str>,
    pre: HttpGuestPre<State>,
    grants: Arc<Grants>,
    environment: Vec<(String, String)>,
    limits: GuestLimits,
}

/// Loads components and runs requests through them.
pub struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    guests: HashMap<String, Guest>,
    databases: Databases,
    settings: RuntimeSettings,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Creates the engine and links WASI and the `database` interface.
    pub fn new(
        settings: &RuntimeSettings,
        databases: Databases,
        max_memory: u64,
    ) -> wasmtime::Result<Runtime> {
        let engine = engine::engine(settings.max_instances, max_memory)?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        types::add_to_linker::<State, HasDb>(&mut linker, State::db_view)?;
        database::add_to_linker::<State, HasDb>(&mut linker, State::db_view)?;
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Runtime {
            engine,
            linker,
            guests: HashMap::new(),
            databases,
            settings: settings.clone(),
            _ticker: ticker,
        })
    }

    /// Compiles (or loads from cache), links and pre-instantiates a component.
    /// Returns whether it came from the cache.
    pub fn load(&mut self, config: &ComponentConfig) -> Result<cache::Origin, LoadError> {
        let invalid = |message: String| LoadError::Invalid {
            id: config.id.clone(),
            path: config.source.clone(),
            message,
        };
        let bytes = std::fs::read(&config.source).map_err(|source| LoadError::Read {
            id: config.id.clone(),
            path: config.source.clone(),
            source,
        })?;
        let (component, origin) = cache::load(&self.engine, &self.settings.cache_dir, &bytes)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = HttpGuestPre::new(instance_pre).map_err(|e| invalid(format!("{e:#}")))?;
        self.guests.insert(
            config.id.clone(),
            Guest {
                id: config.id.as_str().into(),
                pre,
                grants: Arc::new(Grants::new(
                    config.databases.clone(),
                    config.limits.max_connections,
                )),
                environment: config.environment.clone(),
                limits: config.limits,
            },
        );
        Ok(origin)
    }

    /// Runs one request through a fresh instance of `component`.
    pub async fn invoke(
        &self,
        component: &str,
        request_id: u64,
        request: Request,
    ) -> Result<Response, InvokeError> {
        let guest = self
            .guests
            .get(component)
            .ok_or_else(|| InvokeError::UnknownComponent(component.to_string()))?;
        let deadline = Instant::now() + guest.limits.timeout;
        let mut store = self.store(guest, request_id, deadline);
        let outcome = {
            let call = async {
                let bindings = guest.pre.instantiate_async(&mut store).await?;
                bindings
                    .tarn_postgres_handler()
                    .call_handle(&mut store, &request)
                    .await
            };
            tokio::time::timeout_at(deadline + DEADLINE_GRACE, call).await
        };
        let state = store.data();
        let result = match outcome {
            Err(_) => Err(InvokeError::Deadline(guest.limits.timeout)),
            Ok(Ok(response)) => validate(response),
            Ok(Err(_)) if state.cpu_exhausted => Err(InvokeError::CpuLimit(guest.limits.cpu)),
            Ok(Err(e)) if state.limiter.memory_exceeded => {
                Err(InvokeError::MemoryLimit(e.to_string()))
            }
            Ok(Err(e)) => {
                let text = format!("{e:#}");
                if text.contains("concurrent") && text.contains("limit") {
                    Err(InvokeError::Capacity(text))
                } else {
                    Err(InvokeError::Trap(text))
                }
            }
        };
        // Dropping the store drops every host resource the guest still holds:
        // leases go back to their pools, open transactions are rolled back.
        drop(store);
        result
    }

    fn store(&self, guest: &Guest, request_id: u64, deadline: Instant) -> Store<State> {
        let mut wasi = WasiCtx::builder();
        // Nothing beyond a handler's needs: no preopened directories (none
        // are added), no sockets, no name lookups.
        wasi.envs(&guest.environment)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(GuestLog::new(guest.id.clone(), request_id, "stdout"))
            .stderr(GuestLog::new(guest.id.clone(), request_id, "stderr"));
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.settings.max_handles);
        let limits = ResultLimits {
            max_rows: self.settings.max_result_rows,
            max_bytes: self.settings.max_result_bytes,
        };
        let cpu_ticks = (guest.limits.cpu.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64;
        let state = State {
            wasi: wasi.build(),
            table,
            db: DbContext::new(
                self.databases.clone(),
                guest.grants.clone(),
                deadline,
                limits,
                guest.id.clone(),
            ),
            limiter: Limiter::new(guest.limits.memory_bytes),
            cpu_ticks_left: cpu_ticks,
            cpu_exhausted: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Each tick that finds the guest running wasm costs it one tick of
        // CPU; it yields to other requests every tick.
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.cpu_ticks_left == 0 {
                state.cpu_exhausted = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            state.cpu_ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }
}

fn validate(response: Response) -> Result<Response, InvokeError> {
    if !(100..=599).contains(&response.status) {
        return Err(InvokeError::BadResponse(format!(
            "status {}",
            response.status
        )));
    }
    Ok(response)
}
