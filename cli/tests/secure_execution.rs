//! A set-user-ID program that links tmpshm ignores `TMPSHM_DIR` and `TMPSHM_CROSS_USER`: the
//! user who starts it controls its environment. The programs here are set-user-ID-root copies
//! of the `tmpshm` command and of a C program linked against libtmpshm, started by uid 65534.
//!
//! With the environment ignored the program uses the default directory, `/tmp`, so these tests
//! create (and remove) objects with unpredictable names there.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tmpshm_testkit::support::*;

/// A set-user-ID-root copy of the `tmpshm` binary, or None (reason printed) where that cannot
/// work.
fn setuid_tmpshm(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    if skip_unless_root(test) {
        return None;
    }
    setuid_copy(test, Path::new(env!("CARGO_BIN_EXE_tmpshm")))
}

/// Runs the set-user-ID program as uid/gid 65534 with `env`.
fn run_as_nobody(prog: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(prog);
    without_tmpshm_env(&mut c).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.uid(NOBODY).gid(NOBODY).output().unwrap()
}

fn unique(tag: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("tmpshm-test-{tag}-{:016x}", h.finish())
}

/// Removes `/tmp/.SHMD<name>` when dropped.
struct InTmp(PathBuf);

impl Drop for InTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `prog` as uid 65534 with `args(name)` and TMPSHM_DIR pointing at a directory only root
/// may write to, standing for /etc (the invoking user wants root's files created there), for
/// an object `name` it creates; checks that nothing was made there, then `check`s the output,
/// then that the object went to the default directory instead, as root's.
fn pointed_at_a_protected_dir(
    prog: &Path,
    tag: &str,
    args: impl FnOnce(&str) -> Vec<&str>,
    check: impl FnOnce(&Output),
) {
    let protected = tempfile::tempdir().unwrap();
    std::fs::set_permissions(protected.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = unique(tag);
    let in_tmp = InTmp(Path::new("/tmp").join(format!(".SHMD{name}")));
    let object = format!("/{name}");
    let out = run_as_nobody(prog, &args(&object), &[("TMPSHM_DIR", protected.path())]);
    let entries = entries(protected.path());
    assert!(
        entries.is_empty(),
        "the set-user-ID program created {entries:?} where the invoker pointed it"
    );
    check(&out);
    assert_eq!(std::fs::metadata(&in_tmp.0).unwrap().uid(), 0);
}

#[test]
fn a_setuid_program_ignores_tmpshm_dir() {
    let test = "a_setuid_program_ignores_tmpshm_dir";
    let Some((_bin, prog)) = setuid_tmpshm(test) else {
        return;
    };
    pointed_at_a_protected_dir(
        &prog,
        "dir",
        |name| vec!["create", name, "--size", "1"],
        |out| {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
    );
}

#[test]
fn a_setuid_program_ignores_tmpshm_cross_user() {
    let test = "a_setuid_program_ignores_tmpshm_cross_user";
    let Some((_bin, prog)) = setuid_tmpshm(test) else {
        return;
    };
    // The invoking user's own object, planted where the program will look.
    let name = unique("cross");
    let planted = InTmp(Path::new("/tmp").join(format!(".SHMD{name}")));
    std::fs::write(&planted.0, b"the invoker's data").unwrap();
    nix::unistd::chown(&planted.0, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    let out = run_as_nobody(
        &prog,
        &["cat", &format!("/{name}")],
        &[("TMPSHM_CROSS_USER", Path::new("1"))],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "the set-user-ID program opened another user's object: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("EPERM"), "{err}");
}

#[test]
fn a_setuid_c_program_ignores_tmpshm_dir_at_every_call() {
    // The C library in a set-user-ID program, called twice: whether the process runs with
    // privileges is asked once and kept, so the second call must ignore TMPSHM_DIR as the
    // first one did.
    let test = "a_setuid_c_program_ignores_tmpshm_dir_at_every_call";
    if skip_unless_root(test) {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let link = clib::link_libtmpshm(&build.path().join("rt"));
    let Some(exe) = clib::compile(test, "setuid_twice", build.path(), &link) else {
        return;
    };
    let Some((_bin, prog)) = setuid_copy(test, &exe) else {
        return;
    };
    pointed_at_a_protected_dir(
        &prog,
        "twice",
        |name| vec![name],
        |out| {
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "ok\n",
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
    );
}
