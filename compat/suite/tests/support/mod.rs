//! Shared by the integration tests: compiling the C programs, finding (or building) the C
//! libraries.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// The workspace root (holds Cargo.lock and README.md).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("compat/suite is two levels down")
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

/// The two shipped C libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    /// `libtmpshm` (`tmpshm_shm_open`, `tmpshm_shm_unlink`), from `compat/lib`.
    C,
    /// `libtmpshm_preload.so` (`shm_open`, `shm_unlink`), from `compat/preload`.
    Preload,
}

impl Lib {
    fn package(self) -> &'static str {
        match self {
            Lib::C => "tmpshm-c",
            Lib::Preload => "tmpshm-preload",
        }
    }

    /// The file cargo builds.
    pub fn file(self) -> &'static str {
        match self {
            Lib::C => "libtmpshm_c.so",
            Lib::Preload => "libtmpshm_preload.so",
        }
    }

    /// The variable that names a library to use instead.
    fn env(self) -> &'static str {
        match self {
            Lib::C => "TMPSHM_C_SO",
            Lib::Preload => "TMPSHM_PRELOAD_SO",
        }
    }

    fn source_dir(self) -> &'static str {
        match self {
            Lib::C => "compat/lib",
            Lib::Preload => "compat/preload",
        }
    }
}

/// The modification time of the newest file `lib` is built from.
fn newest_source_of(lib: Lib) -> SystemTime {
    let ws = workspace();
    let mut newest = SystemTime::UNIX_EPOCH;
    for d in ["src", lib.source_dir(), "Cargo.toml", "Cargo.lock"] {
        let p = ws.join(d);
        if p.is_dir() {
            newest_source(&p, &mut newest);
        } else if let Ok(m) = p.metadata().and_then(|m| m.modified()) {
            newest = newest.max(m);
        }
    }
    newest
}

/// The shared library `lib`, up to date with the sources.
///
/// `$TMPSHM_C_SO` / `$TMPSHM_PRELOAD_SO` win; else `<target>/release/<file>` when it is newer
/// than every source (`.ci/run` builds both first); else a release build of both libraries
/// into `<target>/compat-so`, a separate target directory because the running `cargo test`
/// holds the lock of its own.
pub fn library(lib: Lib) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    static FOUND: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    FOUND[lib as usize]
        .get_or_init(|| {
            if let Some(p) = std::env::var_os(lib.env()) {
                return PathBuf::from(p);
            }
            let newest = newest_source_of(lib);
            let target = target_dir();
            let own = target.join("compat-so");
            let fresh = |p: &Path| {
                p.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m >= newest)
            };
            let ci = target.join("release").join(lib.file());
            if fresh(&ci) {
                return ci;
            }
            let built = own.join("release").join(lib.file());
            let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
            if fresh(&built) {
                return built;
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            eprintln!(
                "building the C libraries into {} ({} is missing or older than the sources)",
                own.display(),
                ci.display()
            );
            let st = Command::new(cargo)
                .current_dir(workspace())
                .args(["build", "--release", "--lib"])
                .args(["-p", Lib::C.package(), "-p", Lib::Preload.package()])
                .arg("--target-dir")
                .arg(&own)
                .status()
                .expect("run cargo");
            assert!(st.success(), "cargo build of the C libraries failed");
            built
        })
        .clone()
}

/// The arguments that link a program against `libtmpshm` as built in the tree: `-ltmpshm_c`
/// from its directory, and a run path to `rt`, where a `libtmpshm.so.0` link (the SONAME the
/// program records) points to the built file.
pub fn link_libtmpshm(rt: &Path) -> Vec<String> {
    let so = library(Lib::C);
    std::fs::create_dir_all(rt).unwrap();
    let soname = rt.join("libtmpshm.so.0");
    let _ = std::fs::remove_file(&soname);
    std::os::unix::fs::symlink(&so, &soname).unwrap();
    vec![
        format!("-L{}", so.parent().unwrap().display()),
        "-ltmpshm_c".to_string(),
        format!("-Wl,-rpath,{}", rt.display()),
    ]
}

/// Compiles `compat/suite/tests/c/<name>.c` with the system C compiler into `out`, with
/// `extra` arguments after the source (libraries), and returns the executable.
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
        .arg(workspace().join("compat/include"))
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
