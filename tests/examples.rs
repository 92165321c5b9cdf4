//! The examples run as their documentation says.

use std::path::PathBuf;
use std::process::Command;

use tmpshm_testkit::support::*;

/// `target/<profile>/examples/<name>`, which `cargo test` builds with the tests.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.ancestors().nth(2).unwrap();
    profile_dir.join("examples").join(name)
}

#[test]
fn the_two_process_example_counts_to_twenty_thousand_and_cleans_up() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(example("two_processes"))
        .env("TMPSHM_DIR", d.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("20000 in "), "{text}");
    assert!(entries(d.path()).is_empty(), "{:?}", entries(d.path()));
}
