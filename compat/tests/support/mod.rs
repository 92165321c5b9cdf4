//! Shared by the integration tests: compiling the C programs, finding (or building) the cdylib.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The workspace root (holds Cargo.lock and README.md).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compat/ has a parent")
        .to_path_buf()
}

/// The cargo target directory of this test binary (<target>/debug/deps/<test>).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

fn newest_source(dir: &Path, newest: &mut SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            newest_source(&p, newest);
        } else if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
            *newest = (*newest).max(m);
        }
    }
}

/// `libtmpshm_compat.so`, up to date with the sources.
///
/// `$TMPSHM_COMPAT_SO` wins; else `<target>/release/libtmpshm_compat.so` when it is newer than
/// every source (`.ci/run` builds it first); else a release build into `<target>/compat-so`,
/// a separate target directory because the running `cargo test` holds the lock of its own.
pub fn cdylib() -> PathBuf {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        if let Some(p) = std::env::var_os("TMPSHM_COMPAT_SO") {
            return PathBuf::from(p);
        }
        let ws = workspace();
        let mut newest = SystemTime::UNIX_EPOCH;
        for d in [
            "src",
            "compat/src",
            "Cargo.toml",
            "Cargo.lock",
            "compat/Cargo.toml",
        ] {
            let p = ws.join(d);
            if p.is_dir() {
                newest_source(&p, &mut newest);
            } else if let Ok(m) = p.metadata().and_then(|m| m.modified()) {
                newest = newest.max(m);
            }
        }
        let target = target_dir();
        let ci = target.join("release/libtmpshm_compat.so");
        if ci
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= newest)
        {
            return ci;
        }
        let own = target.join("compat-so");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!(
            "building the cdylib into {} ({} is missing or older than the sources)",
            own.display(),
            ci.display()
        );
        let st = Command::new(cargo)
            .current_dir(&ws)
            .args(["build", "--release", "-p", "tmpshm-compat", "--lib"])
            .arg("--target-dir")
            .arg(&own)
            .status()
            .expect("run cargo");
        assert!(st.success(), "cargo build of the cdylib failed");
        own.join("release/libtmpshm_compat.so")
    })
    .clone()
}

/// Compiles `compat/tests/c/<name>.c` with the system C compiler into `out`, with `extra`
/// arguments after the source (libraries), and returns the executable.
pub fn compile(name: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let exe = out.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let o = Command::new(&cc)
        .args([
            "-std=c11",
            "-D_GNU_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
        ])
        .arg("-I")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("include"))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            panic!("run {cc}: {e} (install a C compiler, e.g. apt-get install gcc)")
        });
    assert!(
        o.status.success(),
        "{cc} {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    exe
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

/// A name unique to this process and `what`.
pub fn unique(what: &str) -> String {
    format!("/tsc-{what}-{}", std::process::id())
}
