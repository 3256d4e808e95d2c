//! Host bindings generated from `wit/` (package `tarn:postgres@0.1.0`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "http-guest",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "tarn:postgres/database.database": crate::database::DatabaseHandle,
        "tarn:postgres/database.transaction": crate::database::TransactionHandle,
    },
});
