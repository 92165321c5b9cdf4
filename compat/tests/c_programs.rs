//! The C programs: the seed program natively and under `LD_PRELOAD`, and the C ABI linked in.

mod support;

use std::path::Path;
use std::process::Command;

use support::{cdylib, compile, run_ok, unique};

/// The lines of a `/proc/self/maps` dump that map `path`.
fn maps_of<'a>(out: &'a str, path: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.ends_with(path)).collect()
}

/// Compiles and runs the seed program with `NAME` and `preload` (`LD_PRELOAD`, `TMPSHM_DIR`)
/// or natively; checks what both runs share and returns the object name and the output.
fn run_seed(tag: &str, preload: Option<&Path>) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let exe = compile("seed", tmp.path(), &[]);
    let name = unique(tag);
    let plain = tmp.path().join("plain");
    let mut cmd = Command::new(&exe);
    cmd.arg(&name).arg(&plain);
    match preload {
        Some(dir) => cmd.env("LD_PRELOAD", cdylib()).env("TMPSHM_DIR", dir),
        None => cmd.env_remove("LD_PRELOAD"),
    };
    let out = run_ok(&mut cmd);
    println!("{out}");
    assert!(out.lines().any(|l| l.contains("/SYSV")), "the SysV segment");
    assert_eq!(
        maps_of(&out, plain.to_str().unwrap()).len(),
        1,
        "the plain file"
    );
    assert!(out.contains("seed ok: sysv posix file"));
    (name, out)
}

#[test]
fn seed_program_natively_uses_dev_shm() {
    let (name, out) = run_seed("blah-native", None);
    let shm = format!("/dev/shm{name}");
    assert_eq!(maps_of(&out, &shm).len(), 1, "one mapping of {shm}");
    assert!(!out.contains(".SHMD"), "no tmpshm file natively");
    assert!(!Path::new(&shm).exists(), "the program unlinked it");
}

#[test]
fn seed_program_under_ld_preload_uses_a_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let (name, out) = run_seed("blah-preload", Some(dir.path()));
    let file = format!("{}/.SHMD{}", dir.path().display(), &name[1..]);
    assert_eq!(
        maps_of(&out, &file).len(),
        1,
        "the object is the plain file {file}"
    );
    assert!(
        !out.contains(&format!("/dev/shm{name}")),
        "nothing in /dev/shm"
    );
    assert!(out.lines().any(|l| l.contains("libtmpshm_compat.so")));
    assert!(!Path::new(&file).exists(), "shm_unlink removed the file");
    let lock = format!("{}/.SHML{}", dir.path().display(), &name[1..]);
    assert!(!Path::new(&lock).exists(), "no lock file left behind");
}

#[test]
fn c_abi_linked_directly() {
    let so = cdylib();
    let libdir = so.parent().unwrap().to_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let exe = compile(
        "abi",
        tmp.path(),
        &[
            &format!("-L{libdir}"),
            "-ltmpshm_compat",
            &format!("-Wl,-rpath,{libdir}"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(Command::new(&exe).env("TMPSHM_DIR", dir.path()));
    assert_eq!(out.trim(), "abi ok");
}

#[test]
fn the_cdylib_exports_the_c_abi_and_the_interposers() {
    let so = cdylib();
    let c = std::ffi::CString::new(so.to_str().unwrap()).unwrap();
    // SAFETY: loading our own library, whose initialisers are Rust's std only.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen {}", so.display());
    for sym in [
        c"tmpshm_shm_open",
        c"tmpshm_shm_unlink",
        c"shm_open",
        c"shm_unlink",
    ] {
        // SAFETY: a live handle and a NUL-terminated symbol name.
        let p = unsafe { libc::dlsym(h, sym.as_ptr()) };
        assert!(!p.is_null(), "{sym:?} missing from {}", so.display());
        // SAFETY: Dl_info is plain data, valid when zeroed.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: p is an address inside a loaded object; info is writable.
        assert_ne!(unsafe { libc::dladdr(p, &mut info) }, 0);
        // SAFETY: dladdr filled dli_fname with a loader-owned C string.
        let file = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
        assert!(
            file.to_string_lossy().contains("libtmpshm_compat"),
            "{sym:?} resolves to {file:?}, not the cdylib"
        );
    }
}
