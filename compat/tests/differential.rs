//! The differential matrix against the system's native `shm_open`, its divergence table, and
//! the proof that the oracle really is libc's.

mod support;

use std::process::Command;

use tmpshm_compat::oracle::Native;
use tmpshm_compat::table::{Table, SOURCE};

fn divergences(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_divergences"))
        .args(args)
        .output()
        .expect("run divergences");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn matrix_matches_the_table_as_this_user() {
    let (ok, out) = divergences(&["check"]);
    println!("{out}");
    assert!(ok, "differential matrix failed:\n{out}");
    assert!(out.contains(" cases"));
}

#[test]
fn matrix_matches_the_table_as_another_user() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: dropping to uid 65534 needs root (the check as this user ran)");
        return;
    }
    let (ok, out) = divergences(&["check", "--as-user", "65534"]);
    println!("{out}");
    assert!(ok, "differential matrix as uid 65534 failed:\n{out}");
    assert!(out.contains("pass user"));
}

fn table_without(id: &str) -> String {
    let start = SOURCE
        .find(&format!("[{id}]"))
        .unwrap_or_else(|| panic!("[{id}]"));
    let end = SOURCE[start + 1..]
        .find("\n[")
        .map_or(SOURCE.len(), |e| start + 1 + e + 1);
    format!("{}{}", &SOURCE[..start], &SOURCE[end..])
}

#[test]
fn a_divergence_missing_from_the_table_fails_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.txt");
    std::fs::write(&path, table_without("rdonly-trunc")).unwrap();
    let (ok, out) = divergences(&["check", "--table", path.to_str().unwrap()]);
    assert!(!ok, "a missing entry must fail:\n{out}");
    assert!(
        out.contains("UNEXPLAINED ordinary / RDONLY|TRUNC / data"),
        "{out}"
    );
}

#[test]
fn an_entry_that_no_longer_diverges_fails_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.txt");
    let extra = "\n[not-a-divergence]\nnames = ordinary\nops = RDWR\nstates = data\nuser = *\n\
                 native = ok\ntmpshm = ok\ncategory = glibc quirk\nreason = both agree here\n";
    std::fs::write(&path, format!("{SOURCE}{extra}")).unwrap();
    let (ok, out) = divergences(&["check", "--table", path.to_str().unwrap()]);
    assert!(!ok, "a stale entry must fail:\n{out}");
    assert!(out.contains("STALE [not-a-divergence]"), "{out}");
}

#[test]
fn the_readme_shows_the_current_table() {
    let readme = std::fs::read_to_string(support::workspace().join("README.md")).unwrap();
    let (begin, end) = ("<!-- divergences:begin -->\n", "<!-- divergences:end -->");
    let start = readme
        .find(begin)
        .expect("README has the divergences markers")
        + begin.len();
    let stop = readme[start..].find(end).expect("end marker") + start;
    let (ok, printed) = divergences(&[]);
    assert!(ok);
    assert_eq!(
        &readme[start..stop],
        printed,
        "README.md's table is stale: paste `cargo run -p tmpshm-compat --bin divergences`"
    );
    assert_eq!(printed, Table::parse(SOURCE).unwrap().markdown());
}

#[test]
fn the_oracle_is_libc_not_our_own_export() {
    let native = Native::get().unwrap();
    let obj = native.defining_object().unwrap();
    assert!(
        obj.file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("libc.so")),
        "oracle shm_open comes from {}",
        obj.display()
    );
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
    // A name only glibc accepts tells the two apart: glibc strips the slashes and looks it
    // up (ENOENT), tmpshm refuses it (EINVAL).
    let probe = c"no-slash-never-created";
    assert_eq!(
        native.open(probe, libc::O_RDONLY, 0).unwrap_err(),
        nix::errno::Errno::ENOENT
    );
    // This binary links the crate, so its own `shm_open` symbol may be the interposer: show
    // which one a plain call reaches, to make the point of going through the loader.
    // SAFETY: a NUL-terminated name; no fd results (the object does not exist).
    let plain = unsafe { libc::shm_open(probe.as_ptr(), libc::O_RDONLY, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    println!(
        "a plain libc::shm_open call in this binary reaches {} (rc {plain}, errno {errno:?})",
        if errno == Some(libc::EINVAL) {
            "tmpshm's export"
        } else {
            "libc"
        }
    );
}
