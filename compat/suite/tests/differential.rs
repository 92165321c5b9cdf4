//! The differential matrix against the system's native `shm_open`, for both subjects
//! (`ShmDir` and the preload library), their divergence tables, the copies in docs/divergences.md, and the
//! proof that the oracle really is libc's.

mod support;

use support::{
    as_root, check_preload, divergences, library, passes, table_without, write_table, Lib,
};
use tmpshm_compat::oracle::Native;
use tmpshm_compat::table::{TableFile, PRELOAD, SHMDIR};

#[test]
fn shmdir_matrix_matches_its_table_as_this_user() {
    if support::skip_without_glibc("shmdir_matrix_matches_its_table_as_this_user") {
        return;
    }
    passes(divergences(&["check"], &[]), &["(shmdir): ", " cases"]);
}

#[test]
fn shmdir_matrix_matches_its_table_as_another_user() {
    let test = "shmdir_matrix_matches_its_table_as_another_user";
    if support::skip_without_glibc(test) || !as_root(test) {
        return;
    }
    let run = divergences(&["check", "--as-user", "65534"], &[]);
    passes(run, &["pass user (shmdir)"]);
}

#[test]
fn preload_matrix_matches_its_table_as_this_user() {
    if support::skip_without_glibc("preload_matrix_matches_its_table_as_this_user") {
        return;
    }
    passes(check_preload(&[]), &["(preload): ", "libtmpshm_preload.so"]);
}

#[test]
fn preload_matrix_matches_its_table_as_another_user() {
    let test = "preload_matrix_matches_its_table_as_another_user";
    if support::skip_without_glibc(test) || !as_root(test) {
        return;
    }
    passes(
        check_preload(&["--as-user", "65534"]),
        &["pass user (preload)"],
    );
}

/// With the preload library preloaded into the suite itself, every plain `shm_open` in it
/// would be tmpshm's; the oracle still reaches libc's, so both tables still hold (were the
/// oracle the interposer, the sides would agree and every entry would go stale).
#[test]
fn the_oracle_holds_under_ld_preload() {
    if support::skip_without_glibc("the_oracle_holds_under_ld_preload") {
        return;
    }
    let lib = library(Lib::Preload);
    let env = [("LD_PRELOAD", lib.as_path())];
    let (ok, out) = divergences(&["check"], &env);
    assert!(ok, "shmdir matrix under LD_PRELOAD:\n{out}");
    let args = ["check", "--preload", "--lib", lib.to_str().unwrap()];
    let (ok, out) = divergences(&args, &env);
    assert!(ok, "preload matrix under LD_PRELOAD:\n{out}");
}

#[test]
fn a_divergence_missing_from_a_table_fails_the_suite() {
    if support::skip_without_glibc("a_divergence_missing_from_a_table_fails_the_suite") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(&dir, &table_without(SHMDIR, "rdonly-trunc"));
    let (ok, out) = divergences(&["check", "--table", &path], &[]);
    assert!(!ok, "a missing entry must fail:\n{out}");
    assert!(
        out.contains("UNEXPLAINED ordinary / RDONLY|TRUNC / data"),
        "{out}"
    );

    let path = write_table(&dir, &table_without(PRELOAD, "unlink-long-name"));
    let (ok, out) = check_preload(&["--table", &path]);
    assert!(!ok, "a missing entry must fail:\n{out}");
    assert!(
        out.contains("UNEXPLAINED len260 / unlink / absent"),
        "{out}"
    );
}

#[test]
fn an_entry_that_no_longer_diverges_fails_the_suite() {
    if support::skip_without_glibc("an_entry_that_no_longer_diverges_fails_the_suite") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let extra = "\n[not-a-divergence]\nnames = ordinary\nops = RDWR\nstates = data\nuser = *\n\
                 native = ok\ntmpshm = ok\ncategory = glibc quirk\nreason = both agree here\n";
    let path = write_table(&dir, &format!("{}{extra}", SHMDIR.source));
    let (ok, out) = divergences(&["check", "--table", &path], &[]);
    assert!(!ok, "a stale entry must fail:\n{out}");
    assert!(out.contains("STALE [not-a-divergence]"), "{out}");

    // The preload library takes glibc's names: the ShmDir table's name rule is stale there.
    let path = write_table(&dir, SHMDIR.source);
    let (ok, out) = check_preload(&["--table", &path]);
    assert!(
        !ok,
        "the ShmDir table must not fit the preload library:\n{out}"
    );
    assert!(out.contains("STALE [leading-slashes]"), "{out}");
    assert!(!out.contains("UNEXPLAINED"), "{out}");
}

/// `docs/divergences.md`'s copy of `file`'s table, between its markers.
fn doc_copy(doc: &str, file: TableFile) -> &str {
    let begin = format!("<!-- {}:begin -->\n", file.doc_marker);
    let end = format!("<!-- {}:end -->", file.doc_marker);
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("docs/divergences.md has the marker {begin:?}"))
        + begin.len();
    let stop = doc[start..].find(&end).expect("end marker") + start;
    &doc[start..stop]
}

#[test]
fn the_docs_show_the_current_tables() {
    let doc = std::fs::read_to_string(support::workspace().join("docs/divergences.md")).unwrap();
    for (file, args) in [
        (SHMDIR, &[][..]),
        (PRELOAD, &["--preload"][..]),
        (tmpshm_compat::sem::TABLE, &["--sem"][..]),
    ] {
        let (ok, printed) = divergences(args, &[]);
        assert!(ok, "{printed}");
        assert_eq!(
            doc_copy(&doc, file),
            printed,
            "docs/divergences.md's copy of {} is stale: paste `cargo run -p tmpshm-compat --bin divergences -- {}`",
            file.path,
            args.join(" ")
        );
        assert_eq!(printed, file.table().unwrap().markdown(file.column));
    }
}

#[test]
fn the_oracle_is_libc() {
    if support::skip_without_glibc("the_oracle_is_libc") {
        return;
    }
    let native = Native::get().unwrap();
    support::assert_from_libc("the oracle's shm_open", &native.defining_object().unwrap());
    // What libc does and tmpshm never does: a file named after the object in /dev/shm.
    let name = support::unique("oracle");
    let c = std::ffi::CString::new(name.clone()).unwrap();
    let fd = native.open(&c, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o600);
    let path = std::path::PathBuf::from(format!("/dev/shm{name}"));
    let created = path.is_file();
    let _ = native.unlink(&c);
    assert!(
        fd.is_ok() && created,
        "{fd:?}, {} exists: {created}",
        path.display()
    );
    assert!(!path.exists(), "the oracle's shm_unlink removed it");
}

#[test]
fn the_preload_side_is_the_library_file() {
    if support::skip_without_glibc("the_preload_side_is_the_library_file") {
        return;
    }
    let so = library(Lib::Preload);
    let lib = tmpshm_compat::preload::Interposers::load(&so).unwrap();
    assert_eq!(lib.path(), std::fs::canonicalize(&so).unwrap());
    // A library that does not define the interposers is refused, even though dlsym would
    // find libc's behind it.
    let err = tmpshm_compat::preload::Interposers::load(&library(Lib::C)).unwrap_err();
    assert!(err.contains("does not define shm_open"), "{err}");
}
