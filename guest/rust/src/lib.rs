//! tarn's sample guest: the seed application's endpoints (`/query`, `/health`,
//! `/health/db`, `/config`, `/pool/stats`) plus a small notes example, on the
//! `tarn:postgres/http-guest` world.
//!
//! The request logic lives in [`app`] and talks to the database only through
//! the [`backend::Backend`] trait, so it is unit-tested natively with a fake
//! backend; [`backend::Wit`] is the real one (the host's `database` imports).

wit_bindgen::generate!({
    world: "http-guest",
    path: "../../wit",
    additional_derives: [PartialEq],
});

pub mod app;
pub mod backend;
pub mod convert;

#[cfg(test)]
mod tests;

pub use exports::tarn::postgres::handler::{Request, Response};

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Component;

impl exports::tarn::postgres::handler::Guest for Component {
    fn handle(req: Request) -> Response {
        let settings = app::Settings::from_env(|key| std::env::var(key).ok());
        app::handle(&backend::Wit, &settings, &req)
    }
}

// The export glue only links on wasm32 (its symbol names are not valid in a
// native shared object's version script).
#[cfg(target_arch = "wasm32")]
export!(Component);
