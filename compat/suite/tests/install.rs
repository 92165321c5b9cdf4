//! `compat/install` puts the C libraries, the header and a pkg-config file into a prefix, and a
//! C program builds against them with `pkg-config`, shared and static.

mod support;

use std::path::Path;
use std::process::Command;

use support::{library, run_ok, workspace, Lib};

fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    let out = run_ok(
        Command::new("pkg-config")
            .args(args)
            .arg("tmpshm")
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
    );
    out.trim().to_string()
}

#[test]
fn install_into_a_prefix_and_build_the_c_example_with_pkg_config() {
    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED install_into_a_prefix...: no pkg-config");
        eprintln!("SKIPPED install_into_a_prefix...: no pkg-config");
        return;
    }
    let (so, preload) = (library(Lib::C), library(Lib::Preload));
    let built = so.parent().unwrap();
    assert_eq!(
        preload.parent().unwrap(),
        built,
        "both libraries come from one build"
    );
    let prefix = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(workspace().join("compat/install"))
            .arg("--prefix")
            .arg(prefix.path())
            .arg("--from")
            .arg(built),
    );
    let lib = prefix.path().join("lib");
    for f in [
        "libtmpshm.so",
        "libtmpshm.so.0",
        "libtmpshm.a",
        "libtmpshm_preload.so",
        "pkgconfig/tmpshm.pc",
    ] {
        assert!(lib.join(f).exists(), "{f}");
    }
    assert!(prefix.path().join("include/tmpshm.h").exists());
    assert_eq!(
        pkg_config(prefix.path(), &["--variable=preload"]),
        lib.join("libtmpshm_preload.so").display().to_string()
    );
    let cflags = pkg_config(prefix.path(), &["--cflags"]);
    let libs = pkg_config(prefix.path(), &["--libs"]);
    let example = workspace().join("examples/c/counter.c");
    let tmp = tempfile::tempdir().unwrap();
    // Shared: the run-time loader finds libtmpshm.so.0 by the rpath.
    let shared = tmp.path().join("counter");
    let mut cc = Command::new("cc");
    cc.arg(&example)
        .args(cflags.split_whitespace())
        .args(libs.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&shared);
    run_ok(&mut cc);
    // Static: the archive, and what pkg-config --static says it needs.
    let fixed = tmp.path().join("counter-static");
    let private = pkg_config(prefix.path(), &["--static", "--libs-only-l"]);
    let mut cc = Command::new("cc");
    cc.arg(&example)
        .args(cflags.split_whitespace())
        .arg(lib.join("libtmpshm.a"))
        .args(private.split_whitespace().filter(|l| *l != "-ltmpshm"))
        .arg("-o")
        .arg(&fixed);
    run_ok(&mut cc);
    for exe in [&shared, &fixed] {
        let dir = tempfile::tempdir().unwrap();
        let out = run_ok(Command::new(exe).arg("3").env("TMPSHM_DIR", dir.path()));
        assert_eq!(out.trim(), "30000", "{}", exe.display());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left"
        );
    }
    // The shared one really uses the installed library.
    let ldd = run_ok(Command::new("ldd").arg(&shared));
    assert!(
        ldd.contains(&lib.join("libtmpshm.so.0").display().to_string()),
        "{ldd}"
    );
}
