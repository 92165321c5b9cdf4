//! The shipped C libraries (`libtmpshm` from `compat/lib`, `libtmpshm_preload.so` from
//! `compat/preload`) and C programs built against them, for tests that run real C code.
//!
//! The finder the compat suite uses too: `$TMPSHM_C_SO` / `$TMPSHM_PRELOAD_SO` win; else
//! `<target>/release/<file>` when it is newer than every source (`.ci/run` builds both first);
//! else a release build of both into `<target>/compat-so` (a target directory of its own: the
//! running `cargo test` holds the lock of the usual one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::{cargo_target_dir, fresh, programs_dir, workspace_root};

/// The two shipped C libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    /// `libtmpshm` (`tmpshm_shm_open`, `tmpshm_sem_open`...).
    C,
    /// `libtmpshm_preload.so` (`shm_open`, `sem_open`... interposers).
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

/// The shared library `lib`, up to date with the sources (see the module docs).
pub fn library(lib: Lib) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    static FOUND: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    FOUND[lib as usize]
        .get_or_init(|| {
            if let Some(p) = std::env::var_os(lib.env()).filter(|p| !p.is_empty()) {
                return std::path::absolute(p).expect("an absolute path");
            }
            let ws = workspace_root();
            let sources: Vec<_> = ["src", lib.source_dir(), "Cargo.toml", "Cargo.lock"]
                .iter()
                .map(|s| ws.join(s))
                .collect();
            let target = cargo_target_dir();
            let ci = target.join("release").join(lib.file());
            if fresh(&ci, &sources) {
                return ci;
            }
            let own = target.join("compat-so");
            let built = own.join("release").join(lib.file());
            let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
            if fresh(&built, &sources) {
                return built;
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            eprintln!(
                "building the C libraries into {} ({} is missing or older than the sources)",
                own.display(),
                ci.display()
            );
            let st = Command::new(cargo)
                .current_dir(&ws)
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

/// Compiles `<programs_dir>/<name>.c` with the system C compiler into `out`, with `extra`
/// arguments after the source (libraries), and returns the executable; `None` (after saying
/// why) when there is no C compiler.
pub fn compile(test: &str, name: &str, out: &Path, extra: &[String]) -> Option<PathBuf> {
    compile_source(test, &programs_dir().join(format!("{name}.c")), out, extra)
}

/// [`compile`] for the C source `src` anywhere (with `tmpshm.h` on the include path); the
/// executable is `out/<src's stem>`.
pub fn compile_source(test: &str, src: &Path, out: &Path, extra: &[String]) -> Option<PathBuf> {
    let exe = out.join(src.file_stem().expect("a source file"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let o = Command::new(&cc)
        .args(["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"])
        .args(["-O1", "-pthread"])
        .arg("-I")
        .arg(workspace_root().join("compat/include"))
        .arg("-o")
        .arg(&exe)
        .arg(src)
        .args(extra)
        .output();
    let o = match o {
        Ok(o) => o,
        Err(e) => {
            super::skip(test, format_args!("no C compiler ({cc}: {e})"));
            return None;
        }
    };
    assert!(
        o.status.success(),
        "{cc} {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Some(exe)
}
