//! Gives the preload library its SONAME, the name of its file: `libtmpshm_preload.so`.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtmpshm_preload.so");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
