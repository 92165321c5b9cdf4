//! The `tmpshm` binary: the seed's example for real, and no native shm_open inside.

use std::process::Command;

#[test]
fn demo_round_trips_through_a_second_process() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tmpshm"))
        .arg("--dir")
        .arg(d.path())
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = d.path().join(".SHMDblah");
    assert!(
        stdout.contains(&format!("plain file: {}", data.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("rw-s"),
        "a shared file mapping is shown: {stdout}"
    );
    let wrote = stdout.lines().find(|l| l.starts_with("wrote ")).unwrap();
    let msg = wrote.trim_start_matches("wrote ");
    assert!(
        stdout.contains("second process (pid") && stdout.contains(&format!("read {msg}")),
        "{stdout}"
    );
    assert!(stdout.contains("exists: false"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        0,
        "unlinked, no lock file"
    );
}

#[test]
fn demo_reports_an_existing_name_as_one_clear_line() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(".SHMDtaken"), b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tmpshm"))
        .arg("--dir")
        .arg(d.path())
        .args(["demo", "/taken"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("tmpshm: ") && err.contains("EEXIST") && err.contains(".SHMDtaken"),
        "{err}"
    );
}

#[test]
fn the_binary_does_not_import_the_native_shm_open() {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only", env!("CARGO_BIN_EXE_tmpshm")])
        .output()
        .expect("nm (binutils) is needed for this check");
    assert!(out.status.success());
    let syms = String::from_utf8_lossy(&out.stdout);
    assert!(syms.contains("open"), "nm listed the imports: {syms}");
    for bad in ["shm_open", "shm_unlink"] {
        assert!(
            !syms
                .split_whitespace()
                .any(|s| s.split('@').next() == Some(bad)),
            "the binary imports {bad}"
        );
    }
}
