//! The workspace's release profile keeps line tables (`debug =
//! "line-tables-only"`), which would also link the standard library's DWARF
//! into the component (3.4 MB instead of ~250 KB). The guest is compiled per
//! deployment and instantiated per request, so drop the DWARF at link time on
//! wasm32; the `name` section stays, so traps still show function names.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--strip-debug");
    }
}
