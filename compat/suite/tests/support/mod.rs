//! Shared by the integration tests: compiling the C programs of `tests/c`, running the
//! `divergences` binary; the C libraries are found (or built) by the test kit's finder.

#![allow(dead_code, unused_imports)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use tmpshm_testkit::support::clib::{library, link_libtmpshm, Lib};
pub use tmpshm_testkit::support::workspace_root as workspace;

/// Compiles `compat/suite/tests/c/<name>.c` with the test kit's compiler into `out`, with
/// `extra` arguments after the source (libraries), and returns the executable; a C compiler is
/// required.
pub fn compile(name: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    tmpshm_testkit::support::clib::compile_source(name, &src, out, &extra)
        .expect("a C compiler (apt-get install gcc)")
}

/// Runs `cmd`, returning stdout; panics with both streams unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> String {
    let o: Output = cmd.output().expect("spawn");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{out}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Asserts that the oracle's `function` comes from `object`, the system's libc (found by
/// `dladdr`), not from a library loaded in front of it.
pub fn assert_from_libc(function: &str, object: &Path) {
    assert!(
        object
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("libc.so")),
        "{function} comes from {}",
        object.display()
    );
}

/// A name unique to this process and `what`.
pub fn unique(what: &str) -> String {
    format!("/tsc-{what}-{}", std::process::id())
}

/// Returns true (after saying why, on stdout and stderr) if `test` must skip because this test
/// binary has no glibc: the oracle is glibc's `shm_open`, and the preload library, a glibc
/// library, is loaded with `dlopen` (see `tmpshm_compat::oracle::needs_glibc`).
pub fn skip_without_glibc(test: &str) -> bool {
    let Some(why) = tmpshm_compat::oracle::needs_glibc() else {
        return false;
    };
    println!("SKIPPED {test}: needs glibc ({why})");
    eprintln!("SKIPPED {test}: needs glibc ({why})");
    true
}

/// Runs the `divergences` binary with `args` and `env`; `(exit 0, stdout + stderr)`.
pub fn divergences(args: &[&str], env: &[(&str, &Path)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_divergences"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run divergences");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// `divergences check --preload` with the built preload library, and `more` arguments.
pub fn check_preload(more: &[&str]) -> (bool, String) {
    let lib = library(Lib::Preload);
    let mut args = vec!["check", "--preload", "--lib", lib.to_str().unwrap()];
    args.extend_from_slice(more);
    divergences(&args, &[])
}

/// Prints a `divergences` run's output and returns it, after asserting that the run passed
/// and that its output shows each of `shows`.
pub fn passes((ok, out): (bool, String), shows: &[&str]) -> String {
    println!("{out}");
    assert!(ok, "the matrix failed:\n{out}");
    for s in shows {
        assert!(out.contains(s), "no {s:?} in:\n{out}");
    }
    out
}

/// Returns false (after saying so) if `test` must skip because dropping to uid 65534 needs
/// root; the same check as this user runs in another test.
pub fn as_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    println!("SKIPPED {test}: dropping to uid 65534 needs root (the check as this user ran)");
    false
}

/// `file`'s table without the block `[id]`.
pub fn table_without(file: tmpshm_compat::table::TableFile, id: &str) -> String {
    let src = file.source;
    let start = src
        .find(&format!("[{id}]"))
        .unwrap_or_else(|| panic!("[{id}]"));
    let end = src[start + 1..]
        .find("\n[")
        .map_or(src.len(), |e| start + 1 + e + 1);
    format!("{}{}", &src[..start], &src[end..])
}

/// Writes `text` as `table.txt` in `dir`; its path, for `--table`.
pub fn write_table(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("table.txt");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}
