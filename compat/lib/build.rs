//! Gives the shared library the SONAME it is installed under: `libtmpshm.so.0`.
//!
//! Cargo names the file after the crate (`libtmpshm_c.so`: a crate named `tmpshm` would clash
//! with the library it wraps); programs record the SONAME, so they look for `libtmpshm.so.0`
//! at run time wherever the file was linked from.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtmpshm.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
