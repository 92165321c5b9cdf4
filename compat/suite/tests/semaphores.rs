//! The differential matrix for named semaphores: glibc's own `sem_open`, `sem_close` and
//! `sem_unlink` against tmpshm's C entry points (illumos names) and the preload library's
//! (glibc names), as root and as uid 65534, against `compat/divergences-sem.txt`.

mod support;

use std::process::Command;

use support::{library, Lib};
use tmpshm_compat::sem::{SemFns, SemSide, TABLE};

/// Runs the `divergences` binary with `--sem` and `args`; `(exit 0, stdout + stderr)`.
fn divergences(args: &[&str], env: &[(&str, &std::path::Path)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_divergences"));
    cmd.args(args).arg("--sem");
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

/// `check --sem --preload` with the built library, and `more` arguments.
fn check_preload(more: &[&str]) -> (bool, String) {
    let lib = library(Lib::Preload);
    let mut args = vec!["check", "--preload", "--lib", lib.to_str().unwrap()];
    args.extend_from_slice(more);
    divergences(&args, &[])
}

fn as_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    println!("SKIPPED {test}: dropping to uid 65534 needs root (the check as this user ran)");
    false
}

#[test]
fn strict_matrix_matches_the_table_as_this_user() {
    let (ok, out) = divergences(&["check"], &[]);
    println!("{out}");
    assert!(ok, "semaphore matrix failed:\n{out}");
    assert!(
        out.contains("(sem strict): ") && out.contains(" cases"),
        "{out}"
    );
}

#[test]
fn strict_matrix_matches_the_table_as_another_user() {
    if !as_root("strict_matrix_matches_the_table_as_another_user") {
        return;
    }
    let (ok, out) = divergences(&["check", "--as-user", "65534"], &[]);
    println!("{out}");
    assert!(ok, "semaphore matrix as uid 65534 failed:\n{out}");
    assert!(out.contains("pass user (sem strict)"), "{out}");
}

#[test]
fn preload_matrix_matches_the_table_as_this_user() {
    let (ok, out) = check_preload(&[]);
    println!("{out}");
    assert!(ok, "semaphore matrix of the preload library failed:\n{out}");
    assert!(
        out.contains("(sem preload): ") && out.contains("libtmpshm_preload.so"),
        "{out}"
    );
    // Its names are glibc's: the strict name rules do not apply to it.
    assert!(!out.contains("[strict-"), "{out}");
}

#[test]
fn preload_matrix_matches_the_table_as_another_user() {
    if !as_root("preload_matrix_matches_the_table_as_another_user") {
        return;
    }
    let (ok, out) = check_preload(&["--as-user", "65534"]);
    println!("{out}");
    assert!(ok, "preload semaphore matrix as uid 65534 failed:\n{out}");
    assert!(out.contains("pass user (sem preload)"), "{out}");
}

/// With the preload library preloaded into the suite, a plain `sem_open` would be tmpshm's;
/// the oracle still reaches glibc's, so the table still holds (were the oracle the interposer,
/// the sides would agree and every entry would go stale).
#[test]
fn the_oracle_holds_under_ld_preload() {
    let lib = library(Lib::Preload);
    let env = [("LD_PRELOAD", lib.as_path())];
    let (ok, out) = divergences(&["check"], &env);
    assert!(ok, "semaphore matrix under LD_PRELOAD:\n{out}");
}

fn write_table(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("table.txt");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_missing_entry_and_a_stale_entry_fail_the_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let src = TABLE.source;
    let start = src.find("[trunc]").unwrap();
    let end = start + 1 + src[start + 1..].find("\n[").unwrap() + 1;
    let without = format!("{}{}", &src[..start], &src[end..]);
    let (ok, out) = divergences(&["check", "--table", &write_table(&dir, &without)], &[]);
    assert!(!ok, "a missing entry must fail:\n{out}");
    assert!(
        out.contains("UNEXPLAINED ordinary / open|TRUNC mode=600 value=1 / present"),
        "{out}"
    );

    let extra = "\n[not-a-divergence]\nnames = ordinary\nops = open\nstates = valued\nuser = *\n\
                 native = ok\ntmpshm = ok\ncategory = glibc quirk\nreason = both agree here\n";
    let path = write_table(&dir, &format!("{src}{extra}"));
    let (ok, out) = divergences(&["check", "--table", &path], &[]);
    assert!(!ok, "a stale entry must fail:\n{out}");
    assert!(out.contains("STALE [not-a-divergence]"), "{out}");
}

#[test]
fn the_table_prints_as_markdown() {
    let (ok, printed) = divergences(&[], &[]);
    assert!(ok, "{printed}");
    assert_eq!(printed, TABLE.table().unwrap().markdown(TABLE.column));
    assert!(printed.contains("| `trunc` |"), "{printed}");
}

#[test]
fn the_oracle_is_glibc_and_the_preload_side_is_the_library_file() {
    let glibc = SemFns::glibc().unwrap();
    let obj = glibc.defining_object().unwrap();
    assert!(
        obj.file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("libc.so")),
        "sem_open comes from {}",
        obj.display()
    );
    // What glibc does and tmpshm never does: /dev/shm/sem.<name>.
    let side = SemSide::Glibc(glibc);
    let name = std::ffi::CString::new(support::unique("sem-oracle")).unwrap();
    let p = side.open(&name, libc::O_CREAT | libc::O_EXCL, 0o600, 1);
    let path = side.path_of(&name).unwrap();
    let created = path.is_file();
    if let Ok(p) = p {
        // SAFETY: opened once above, on this side.
        unsafe { side.close(p) }.unwrap();
    }
    side.unlink(&name).unwrap();
    assert!(
        p.is_ok() && created,
        "{p:?}, {} exists: {created}",
        path.display()
    );
    assert!(!path.exists());

    let so = library(Lib::Preload);
    SemFns::preload(&so).unwrap();
    // A library that does not define them is refused, even though dlsym finds libc's behind
    // it.
    let err = SemFns::preload(&library(Lib::C)).unwrap_err();
    assert!(err.contains("does not define sem_open"), "{err}");
}
