//! The C programs and the two shipped C libraries: a program natively, under
//! `LD_PRELOAD=libtmpshm_preload.so`, and linked against `libtmpshm`; the C ABI; what each
//! library exports.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{compile, library, link_libtmpshm, run_ok, unique, Lib};

/// The lines of a `/proc/self/maps` dump that map `path`.
fn maps_of<'a>(out: &'a str, path: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.ends_with(path)).collect()
}

/// Compiles `tests/c/<name>.c` into `out` (as [`compile`]), linked against `libtmpshm` after
/// the linker options `first`.
fn compile_linked(name: &str, out: &Path, first: &[&str]) -> PathBuf {
    let link = link_libtmpshm(&out.join("rt"));
    let args: Vec<&str> = first
        .iter()
        .copied()
        .chain(link.iter().map(String::as_str))
        .collect();
    compile(name, out, &args)
}

/// How `sysv_posix_file` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// As built, on the system's `shm_open`.
    Natively,
    /// Under `LD_PRELOAD=libtmpshm_preload.so`, with `TMPSHM_DIR` set to the path.
    Preloaded,
    /// Linked against `libtmpshm` (which it never calls).
    Linked,
}

/// Compiles and runs `sysv_posix_file` with a unique name; checks what every run shares and
/// returns the object name and the output (its `/proc/self/maps`).
fn run_sysv_posix_file(tag: &str, how: How, dir: &Path) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let exe = match how {
        // --no-as-needed: the library is loaded although the program calls nothing in it.
        How::Linked => compile_linked("sysv_posix_file", tmp.path(), &["-Wl,--no-as-needed"]),
        _ => compile("sysv_posix_file", tmp.path(), &[]),
    };
    let name = unique(tag);
    let plain = tmp.path().join("plain");
    let mut cmd = Command::new(&exe);
    cmd.arg(&name)
        .arg(&plain)
        .env("TMPSHM_DIR", dir)
        .env_remove("TMPSHM_NAMES");
    match how {
        How::Preloaded => cmd.env("LD_PRELOAD", library(Lib::Preload)),
        _ => cmd.env_remove("LD_PRELOAD"),
    };
    let out = run_ok(&mut cmd);
    println!("{out}");
    assert!(out.lines().any(|l| l.contains("/SYSV")), "the SysV segment");
    assert_eq!(
        maps_of(&out, plain.to_str().unwrap()).len(),
        1,
        "the plain file"
    );
    assert!(out.contains("sysv_posix_file ok: sysv posix file"));
    (name, out)
}

/// What a run on the system's `shm_open` shows: the object in /dev/shm, nothing of tmpshm's.
fn assert_system_shm(name: &str, out: &str, dir: &Path) {
    let shm = format!("/dev/shm{name}");
    assert_eq!(maps_of(out, &shm).len(), 1, "one mapping of {shm}");
    assert!(!out.contains(".SHMD"), "no tmpshm file");
    assert!(!Path::new(&shm).exists(), "the program unlinked it");
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        0,
        "nothing in TMPSHM_DIR"
    );
}

#[test]
fn sysv_posix_file_natively_uses_dev_shm() {
    let dir = tempfile::tempdir().unwrap();
    let (name, out) = run_sysv_posix_file("blah-native", How::Natively, dir.path());
    assert_system_shm(&name, &out, dir.path());
    assert!(!out.contains("libtmpshm"), "no tmpshm library loaded");
}

#[test]
fn sysv_posix_file_under_ld_preload_uses_a_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let (name, out) = run_sysv_posix_file("blah-preload", How::Preloaded, dir.path());
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
    assert!(out.lines().any(|l| l.contains("libtmpshm_preload.so")));
    assert!(!Path::new(&file).exists(), "shm_unlink removed the file");
    let lock = format!("{}/.SHML{}", dir.path().display(), &name[1..]);
    assert!(!Path::new(&lock).exists(), "no lock file left behind");
}

#[test]
fn sysv_posix_file_linked_with_libtmpshm_still_uses_the_systems_shm_open() {
    let dir = tempfile::tempdir().unwrap();
    let (name, out) = run_sysv_posix_file("blah-linked", How::Linked, dir.path());
    assert!(
        out.lines().any(|l| l.contains("libtmpshm")),
        "libtmpshm is loaded"
    );
    assert_system_shm(&name, &out, dir.path());
}

#[test]
fn c_abi_linked_against_libtmpshm() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = compile_linked("abi", tmp.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(Command::new(&exe).env("TMPSHM_DIR", dir.path()));
    assert_eq!(out.trim(), "abi ok");
}

#[test]
fn a_program_linked_with_libtmpshm_keeps_the_systems_shm_open() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = compile_linked("abi_and_native", tmp.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let name = unique("both");
    let out = run_ok(
        Command::new(&exe)
            .arg(&name)
            .env("TMPSHM_DIR", dir.path())
            .env_remove("LD_PRELOAD"),
    );
    assert_eq!(out.trim(), "abi_and_native ok");
    assert!(!Path::new(&format!("/dev/shm{name}")).exists());
}

/// Runs `native ARGS` under the preload library in `dir`, with `TMPSHM_NAMES` as given.
fn preloaded_native(exe: &Path, dir: &Path, names: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("LD_PRELOAD", library(Lib::Preload))
        .env("TMPSHM_DIR", dir);
    match names {
        Some(v) => cmd.env("TMPSHM_NAMES", v),
        None => cmd.env_remove("TMPSHM_NAMES"),
    };
    let o = cmd.output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn the_preload_library_takes_glibc_names_unless_told_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = compile("native", tmp.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let base = &unique("names")[1..];
    let run = |names, args: &[&str]| preloaded_native(&exe, dir.path(), names, args);
    // "x", "/x" and "//x" are one object, the file .SHMDx.
    assert_eq!(run(None, &["write", base, "glibc-names"]), "ok");
    assert!(dir.path().join(format!(".SHMD{base}")).is_file());
    assert!(!Path::new(&format!("/dev/shm/{base}")).exists());
    for n in [format!("/{base}"), format!("//{base}")] {
        assert_eq!(run(None, &["read", &n]), "glibc-names", "{n}");
    }
    // A name glibc refuses: EINVAL to open, ENOENT to unlink (glibc's answers).
    let inner = format!("/{base}/x");
    assert_eq!(
        run(None, &["read", &inner]),
        format!("ERR {}", libc::EINVAL)
    );
    assert_eq!(
        run(None, &["unlink", &inner]),
        format!("ERR {}", libc::ENOENT)
    );
    // TMPSHM_NAMES=strict: illumos's rule, one leading '/' and no other.
    let strict = Some("strict");
    assert_eq!(
        run(strict, &["read", base]),
        format!("ERR {}", libc::EINVAL)
    );
    assert_eq!(
        run(strict, &["read", &format!("//{base}")]),
        format!("ERR {}", libc::EINVAL)
    );
    assert_eq!(
        run(strict, &["unlink", &inner]),
        format!("ERR {}", libc::EINVAL)
    );
    assert_eq!(run(strict, &["read", &format!("/{base}")]), "glibc-names");
    assert_eq!(run(None, &["unlink", &format!("//{base}")]), "ok");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left"
    );
}

/// The dynamic symbols `so` defines, without Rust's own (none is expected; a toolchain may
/// add some, which are not ours).
fn exports(so: &Path) -> BTreeSet<String> {
    let out = run_ok(Command::new("nm").args(["-D", "--defined-only"]).arg(so));
    println!("nm -D --defined-only {}:\n{out}", so.display());
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .filter(|s| !(s.starts_with("_ZN") || s.starts_with("_R") || s.contains("rust")))
        .collect()
}

fn soname(so: &Path) -> Option<String> {
    let out = run_ok(Command::new("objdump").arg("-p").arg(so));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("SONAME"))
        .map(|s| s.trim().to_string())
}

/// Asserts that `lib` exports exactly `symbols` (besides Rust's own) and records `soname`.
fn assert_exports(lib: Lib, symbols: &[&str], soname_is: &str) {
    let so = library(lib);
    let want: BTreeSet<String> = symbols.iter().map(|s| s.to_string()).collect();
    assert_eq!(exports(&so), want, "{}", so.display());
    assert_eq!(soname(&so).as_deref(), Some(soname_is));
}

#[test]
fn libtmpshm_exports_only_the_c_abi() {
    let abi = [
        "tmpshm_shm_open",
        "tmpshm_shm_unlink",
        "tmpshm_sem_open",
        "tmpshm_sem_close",
        "tmpshm_sem_unlink",
    ];
    assert_exports(Lib::C, &abi, "libtmpshm.so.0");
}

#[test]
fn the_preload_library_exports_only_the_interposers() {
    let interposers = [
        "shm_open",
        "shm_unlink",
        "sem_open",
        "sem_close",
        "sem_unlink",
    ];
    assert_exports(Lib::Preload, &interposers, "libtmpshm_preload.so");
}
