//! Hardening suite 5, the CI half: proptest over the same ground as the cargo-fuzz target
//! (fuzz/fuzz_targets/open_unlink.rs): arbitrary name bytes, flags and modes through
//! `ShmDir::open`/`unlink` in both layouts, checked against a model of the rules.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use proptest::prelude::*;
use tmpshm::{Layout, OFlag, ShmDir};

#[path = "hardening_util/model.rs"]
mod model;
use model::{check_open, check_unlink};

/// Names: mostly near-valid ones (a slash and a few interesting bytes), some arbitrary.
fn names() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        Just(b'a'),
        Just(b'.'),
        Just(b'/'),
        Just(0u8),
        Just(0xffu8),
        any::<u8>()
    ];
    prop_oneof![
        3 => proptest::collection::vec(byte, 0..12).prop_map(|mut v| {
            v.insert(0, b'/');
            v
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

fn flags() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => proptest::sample::subsequence(
            vec![libc::O_RDWR, libc::O_CREAT, libc::O_EXCL, libc::O_TRUNC, libc::O_CLOEXEC, libc::O_NOFOLLOW],
            0..6
        )
        .prop_map(|v| v.into_iter().fold(0, |a, f| a | f)),
        1 => any::<i32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        if std::env::var_os("TMPSHM_LONG").is_some_and(|v| v == "1") { 20_000 } else { 400 }
    ))]

    #[test]
    fn open_and_unlink_follow_the_rules(
        name in names(),
        flags in flags(),
        mode in prop_oneof![Just(0o600u32), 0u32..0o1000, any::<u32>()],
        glibc in any::<bool>(),
    ) {
        let layout = if glibc { Layout::GLIBC } else { Layout::ILLUMOS };
        let dir = tempfile::tempdir().unwrap();
        let shm = ShmDir::new(dir.path()).layout(layout);
        let os = OsStr::from_bytes(&name);
        let r = shm.open(os, OFlag::from_bits_retain(flags), mode);
        let outcome = r.as_ref().map(|fd| fd.as_fd()).map_err(|e| e.raw_os_error().unwrap());
        let verdict = check_open(&name, flags, mode, layout, outcome);
        prop_assert!(verdict.is_ok(), "open: {:?}: {:?}", verdict, r);
        let u = shm.unlink(os).map_err(|e| e.raw_os_error().unwrap());
        let verdict = check_unlink(&name, layout, r.is_ok(), u);
        prop_assert!(verdict.is_ok(), "{:?}", verdict);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        prop_assert!(left.is_empty(), "left behind: {:?}", left);
    }
}
