//! HTTP: the application listener (guest routes) and the admin listener.

pub mod admin;
pub mod reply;
pub mod server;
