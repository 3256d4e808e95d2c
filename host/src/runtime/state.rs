//! What a request's `Store` holds: WASI context, resource table, database
//! context, and the limits that end a misbehaving guest.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::database::{DbContext, DbView};

/// Store data of one request.
pub struct State {
    /// WASI: no files, no sockets; environment from the manifest.
    pub wasi: WasiCtx,
    /// Host resources the guest holds (database and transaction handles).
    pub table: ResourceTable,
    /// Database access of this request.
    pub db: DbContext,
    /// Memory limit.
    pub limiter: Limiter,
    /// Epoch ticks of guest execution left before the CPU limit.
    pub cpu_ticks_left: u64,
    /// Set when the CPU limit ended the guest.
    pub cpu_exhausted: bool,
}

impl State {
    /// The view the `database` host functions work on.
    pub fn db_view(&mut self) -> DbView<'_> {
        DbView {
            ctx: &mut self.db,
            table: &mut self.table,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and tables; remembers whether the cap was hit.
pub struct Limiter {
    max_memory: usize,
    /// Set when the guest tried to grow memory past the cap.
    pub memory_exceeded: bool,
}

/// Table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl Limiter {
    /// A limiter allowing `max_memory` bytes of linear memory.
    pub fn new(max_memory: u64) -> Limiter {
        Limiter {
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.memory_exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB exceeded (wanted {} MiB)",
                self.max_memory >> 20,
                desired >> 20
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
