//! The differential matrix for named semaphores: glibc's own `sem_open`, `sem_close` and
//! `sem_unlink` against tmpshm's C entry points (illumos names) and the preload library's
//! (glibc names), as root and as uid 65534, against `compat/divergences-sem.txt`.

mod support;

use std::path::Path;

use support::{as_root, check_preload, library, passes, table_without, write_table, Lib};
use tmpshm_compat::sem::{SemFns, SemSide, TABLE};

/// Runs the `divergences` binary with `args` and `--sem`; `(exit 0, stdout + stderr)`.
fn divergences(args: &[&str], env: &[(&str, &Path)]) -> (bool, String) {
    support::divergences(&[args, &["--sem"]].concat(), env)
}

#[test]
fn strict_matrix_matches_the_table_as_this_user() {
    if support::skip_without_glibc("strict_matrix_matches_the_table_as_this_user") {
        return;
    }
    passes(divergences(&["check"], &[]), &["(sem strict): ", " cases"]);
}

#[test]
fn strict_matrix_matches_the_table_as_another_user() {
    if support::skip_without_glibc("strict_matrix_matches_the_table_as_another_user") {
        return;
    }
    if !as_root("strict_matrix_matches_the_table_as_another_user") {
        return;
    }
    let run = divergences(&["check", "--as-user", "65534"], &[]);
    passes(run, &["pass user (sem strict)"]);
}

#[test]
fn preload_matrix_matches_the_table_as_this_user() {
    if support::skip_without_glibc("preload_matrix_matches_the_table_as_this_user") {
        return;
    }
    let shows = ["(sem preload): ", "libtmpshm_preload.so"];
    let out = passes(check_preload(&["--sem"]), &shows);
    // Its names are glibc's: the strict name rules do not apply to it.
    assert!(!out.contains("[strict-"), "{out}");
}

#[test]
fn preload_matrix_matches_the_table_as_another_user() {
    if support::skip_without_glibc("preload_matrix_matches_the_table_as_another_user") {
        return;
    }
    if !as_root("preload_matrix_matches_the_table_as_another_user") {
        return;
    }
    let run = check_preload(&["--sem", "--as-user", "65534"]);
    passes(run, &["pass user (sem preload)"]);
}

/// With the preload library preloaded into the suite, a plain `sem_open` would be tmpshm's;
/// the oracle still reaches glibc's, so the table still holds (were the oracle the interposer,
/// the sides would agree and every entry would go stale).
#[test]
fn the_oracle_holds_under_ld_preload() {
    if support::skip_without_glibc("the_oracle_holds_under_ld_preload") {
        return;
    }
    let lib = library(Lib::Preload);
    let env = [("LD_PRELOAD", lib.as_path())];
    let (ok, out) = divergences(&["check"], &env);
    assert!(ok, "semaphore matrix under LD_PRELOAD:\n{out}");
}

#[test]
fn a_missing_entry_and_a_stale_entry_fail_the_matrix() {
    if support::skip_without_glibc("a_missing_entry_and_a_stale_entry_fail_the_matrix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let without = table_without(TABLE, "trunc");
    let (ok, out) = divergences(&["check", "--table", &write_table(&dir, &without)], &[]);
    assert!(!ok, "a missing entry must fail:\n{out}");
    assert!(
        out.contains("UNEXPLAINED ordinary / open|TRUNC mode=600 value=1 / present"),
        "{out}"
    );

    let extra = "\n[not-a-divergence]\nnames = ordinary\nops = open\nstates = valued\nuser = *\n\
                 native = ok\ntmpshm = ok\ncategory = glibc quirk\nreason = both agree here\n";
    let path = write_table(&dir, &format!("{}{extra}", TABLE.source));
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
    if support::skip_without_glibc("the_oracle_is_glibc_and_the_preload_side_is_the_library_file") {
        return;
    }
    let glibc = SemFns::glibc().unwrap();
    support::assert_from_libc("sem_open", &glibc.defining_object().unwrap());
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
