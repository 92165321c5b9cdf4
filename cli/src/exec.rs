//! `tmpshm exec`: run an unmodified program with its `shm_open` calls on tmpshm.
//!
//! It finds the preload library, makes sure the directory can work (absolute, present, a
//! directory we may write; created if missing), says what `doctor` would warn about, puts the
//! library in `LD_PRELOAD` (after whatever is there), exports the settings and execs the
//! program, whose exit status and signals are then simply its own.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::audit;
use crate::doctor;
use crate::fmt::{show, show_path, Shown};
use crate::CliError;

/// The preload library's file name.
pub const PRELOAD: &str = "libtmpshm_preload.so";
/// The environment variable that names the preload library explicitly.
pub const ENV_PRELOAD: &str = "TMPSHM_PRELOAD";

/// What `exec` was asked for.
pub struct Exec {
    /// `--dir`, or the environment's directory.
    pub dir: PathBuf,
    /// `--cross-user`.
    pub cross_user: bool,
    /// `--names`.
    pub names: Option<&'static str>,
    /// `--trace[=FILE]`: `Some(None)` for standard error.
    pub trace: Option<Option<PathBuf>>,
    /// The program and its arguments.
    pub command: Vec<OsString>,
}

fn warn(msg: impl std::fmt::Display) {
    eprintln!("tmpshm exec: WARNING: {msg}");
}

/// Where the preload library may be, in order: `$TMPSHM_PRELOAD`, next to this executable,
/// and in the `lib` directory of its install prefix.
fn candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os(ENV_PRELOAD).filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p));
        return v;
    }
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        v.push(bin.join(PRELOAD));
        if let Some(prefix) = bin.parent() {
            v.push(prefix.join("lib").join(PRELOAD));
            v.push(prefix.join("lib/tmpshm").join(PRELOAD));
        }
    }
    v
}

/// The preload library, as an absolute path (the loader resolves a relative `LD_PRELOAD`
/// entry against each program's own working directory).
pub fn find_preload() -> Result<PathBuf, CliError> {
    let tried = candidates();
    for p in &tried {
        if std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
            return std::path::absolute(p).map_err(|e| format!("{}: {e}", show_path(p)).into());
        }
    }
    let list: Vec<String> = tried.iter().map(|p| show_path(p).to_string()).collect();
    Err(Shown(format!(
        "cannot find {PRELOAD} (looked at: {}); build it with `cargo build --release -p \
         tmpshm-preload` and set {ENV_PRELOAD} to its path, or install the C libraries into \
         this program's prefix",
        list.join(", ")
    ))
    .into())
}

/// Makes `dir` absolute and usable: created if missing (`0700`, or `1777` when users share
/// it), and a directory we may write. Warns (on stderr) where `doctor` would.
pub fn prepare_dir(dir: &Path, cross_user: bool) -> Result<PathBuf, CliError> {
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", show_path(dir)))?;
    let mode = if cross_user { 0o1777 } else { 0o700 };
    match std::fs::symlink_metadata(&dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("create {}: {e}", show_path(parent)))?;
            }
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(&dir)
                .map_err(|e| format!("create {}: {e}", show_path(&dir)))?;
            // The umask may have taken bits away.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {}: {e}", show_path(&dir)))?;
            eprintln!("tmpshm exec: created {} (mode {mode:04o})", show_path(&dir));
        }
        Err(e) => return Err(format!("{}: {e}", show_path(&dir)).into()),
    }
    let meta = std::fs::metadata(&dir).map_err(|e| format!("{}: {e}", show_path(&dir)))?;
    if !meta.is_dir() {
        return Err(Shown(format!("{} is not a directory", show_path(&dir))).into());
    }
    if let Err(e) = nix::unistd::access(
        &dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    ) {
        return Err(Shown(format!(
            "{} is not writable for this user ({e}); choose another --dir",
            show_path(&dir)
        ))
        .into());
    }
    if cross_user && meta.mode() & 0o1002 != 0o1002 {
        warn(format_args!(
            "{} is not world-writable and sticky (mode {:04o}): other users may not be able to \
             create objects there",
            show_path(&dir),
            meta.mode() & 0o7777
        ));
    }
    for f in audit::audit_dir(&dir) {
        warn(f);
    }
    if let Ok(fs) = doctor::file_system(&dir) {
        if !fs.in_memory {
            warn(format_args!(
                "{} is on {}: {}",
                show_path(&dir),
                fs.name,
                doctor::NOT_IN_MEMORY
            ));
        }
    }
    Ok(dir)
}

/// `LD_PRELOAD` with `lib` appended (unless it is there already).
fn ld_preload(lib: &Path) -> OsString {
    let lib = lib.as_os_str();
    match std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        None => lib.to_os_string(),
        Some(old) => {
            let present = old
                .as_encoded_bytes()
                .split(|&b| b == b' ' || b == b':')
                .any(|part| part == lib.as_encoded_bytes());
            if present {
                old
            } else {
                let mut v = old;
                v.push(":");
                v.push(lib);
                v
            }
        }
    }
}

/// The program file `prog` names, searched in `$PATH` as `execvp` does.
fn resolve(prog: &OsStr) -> Option<PathBuf> {
    let p = Path::new(prog);
    if p.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Some(p.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(p))
        .find(|c| std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// Whether `file` carries file capabilities (`security.capability`), which make its run a
/// secure execution, as set-user-ID does.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn has_file_capabilities(file: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(file.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated; a NULL buffer of size 0 asks only for the size.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    n > 0
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn has_file_capabilities(_file: &Path) -> bool {
    false
}

/// Runs the program: never returns unless the exec failed.
pub fn run(args: Exec) -> Result<(), CliError> {
    let Some(prog) = args.command.first() else {
        return Err(
            "exec needs a program to run: tmpshm exec [OPTIONS] -- PROGRAM [ARGS...]".into(),
        );
    };
    let lib = find_preload()?;
    let dir = prepare_dir(&args.dir, args.cross_user)?;
    if let Some(file) = resolve(prog) {
        if std::fs::metadata(&file).is_ok_and(|m| m.mode() & 0o6000 != 0) {
            warn(format_args!(
                "{} is set-user-ID or set-group-ID: the loader ignores LD_PRELOAD for it, so its \
                 shm_open and sem_open calls are the system's",
                show_path(&file)
            ));
        } else if has_file_capabilities(&file) {
            warn(format_args!(
                "{} has file capabilities: the loader ignores LD_PRELOAD for it, so its \
                 shm_open and sem_open calls are the system's",
                show_path(&file)
            ));
        }
    }
    let mut cmd = std::process::Command::new(prog);
    cmd.args(&args.command[1..])
        .env("LD_PRELOAD", ld_preload(&lib))
        .env(tmpshm::ENV_DIR, &dir);
    if args.cross_user {
        cmd.env(tmpshm::ENV_CROSS_USER, "1");
    }
    if let Some(names) = args.names {
        cmd.env("TMPSHM_NAMES", names);
    }
    match &args.trace {
        Some(None) => {
            cmd.env(tmpshm::capi::ENV_TRACE, "stderr");
        }
        Some(Some(file)) => {
            let file =
                std::path::absolute(file).map_err(|e| format!("{}: {e}", show_path(file)))?;
            cmd.env(tmpshm::capi::ENV_TRACE, file);
        }
        None => {}
    }
    let e = cmd.exec();
    Err(Shown(format!("cannot run {}: {e}", show(prog))).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_is_appended_once() {
        let lib = Path::new("/x/libtmpshm_preload.so");
        // Each case runs with its own LD_PRELOAD; this test is alone in touching it.
        std::env::remove_var("LD_PRELOAD");
        assert_eq!(ld_preload(lib), OsString::from("/x/libtmpshm_preload.so"));
        std::env::set_var("LD_PRELOAD", "/a.so /b.so");
        assert_eq!(
            ld_preload(lib),
            OsString::from("/a.so /b.so:/x/libtmpshm_preload.so")
        );
        std::env::set_var("LD_PRELOAD", "/a.so:/x/libtmpshm_preload.so");
        assert_eq!(
            ld_preload(lib),
            OsString::from("/a.so:/x/libtmpshm_preload.so")
        );
        std::env::remove_var("LD_PRELOAD");
    }

    #[test]
    fn programs_are_found_like_execvp_finds_them() {
        assert_eq!(resolve(OsStr::new("./x")), Some(PathBuf::from("./x")));
        let sh = resolve(OsStr::new("sh")).expect("sh in PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"));
        assert_eq!(resolve(OsStr::new("no-such-program-tmpshm")), None);
    }
}
