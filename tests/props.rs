//! Property tests of the name and flag rules: no name maps outside the directory, and
//! arbitrary name bytes, flags and modes through `ShmDir::open`/`unlink` in both layouts
//! follow the reference model of the rules in `tmpshm-testkit` (which the cargo-fuzz target
//! in fuzz/ also checks), panic nowhere and touch nothing but the directory.
//! Short form here; `TMPSHM_LONG=1` runs more cases (see docs/hardening.md).

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use proptest::prelude::*;
use tmpshm::{Layout, OFlag, ObjectKind, ShmDir};
use tmpshm_testkit as model;
use tmpshm_testkit::support::*;

/// The model's name for a layout.
fn model_layout(layout: Layout) -> model::Layout {
    match layout {
        Layout::Illumos => model::Layout::Illumos,
        Layout::Glibc => model::Layout::Glibc,
        other => panic!("no model of the layout {other:?}"),
    }
}

#[test]
fn the_model_knows_the_file_names_of_each_layout() {
    for layout in [Layout::Illumos, Layout::Glibc] {
        let m = model_layout(layout);
        assert_eq!(ObjectKind::Shm.data_prefix(layout), m.data_prefix());
        assert_eq!(ObjectKind::Shm.lock_prefix(layout), m.lock_prefix());
    }
}

/// Names with the leading slash, including dots, slashes, NULs and high bytes; arbitrary
/// bytes; the dot names.
fn name_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(
            prop_oneof![Just(b'/'), Just(b'.'), Just(0u8), any::<u8>()],
            0..20
        )
        .prop_map(|mut v| {
            v.insert(0, b'/');
            v
        }),
        proptest::collection::vec(any::<u8>(), 0..300),
        Just(b"/.".to_vec()),
        Just(b"/..".to_vec()),
    ]
}

/// Mostly near-valid names (a slash and a few interesting bytes), some arbitrary, and those
/// of [`name_bytes`].
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
        2 => name_bytes(),
    ]
}

/// Any subset of the accepted flags, the common combinations, and arbitrary bits.
fn flags() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => proptest::sample::subsequence(
            vec![libc::O_RDWR, libc::O_CREAT, libc::O_EXCL, libc::O_TRUNC, libc::O_CLOEXEC, libc::O_NOFOLLOW],
            0..6
        )
        .prop_map(|v| v.into_iter().fold(0, |a, f| a | f)),
        1 => prop_oneof![
            Just(libc::O_RDWR | libc::O_CREAT),
            Just(libc::O_RDONLY),
            Just(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC),
        ],
        2 => any::<i32>(),
    ]
}

fn stays_inside(dir: &Path, p: &Path, prefix: &str) {
    assert_eq!(
        p.parent(),
        Some(dir),
        "{} escapes {}",
        p.display(),
        dir.display()
    );
    let file = p.file_name().expect("a file name").as_bytes();
    assert!(file.starts_with(prefix.as_bytes()));
    assert!(file != b"." && file != b"..");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_name_maps_outside_the_directory(name in name_bytes()) {
        let dir = Path::new("/some/dir");
        for layout in [Layout::Illumos, Layout::Glibc] {
            let shm = ShmDir::new(dir).with_layout(layout);
            let data_prefix = ObjectKind::Shm.data_prefix(layout);
            match shm.data_path(name.as_slice()) {
                Ok(p) => {
                    stays_inside(dir, &p, data_prefix);
                    let lock = shm.lock_path(name.as_slice()).unwrap();
                    match (lock, ObjectKind::Shm.lock_prefix(layout)) {
                        (Some(l), Some(prefix)) => stays_inside(dir, &l, prefix),
                        (None, None) => {}
                        other => panic!("lock path and layout disagree: {other:?}"),
                    }
                    // The mapping is the name after its slash, byte for byte.
                    let file = p.file_name().unwrap().as_bytes();
                    prop_assert_eq!(&file[data_prefix.len()..], &name[1..]);
                }
                Err(e) => {
                    prop_assert_eq!(e.raw_os_error(), libc::EINVAL);
                    prop_assert!(e.reason().is_some());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(pick(900, 20_000)))]

    #[test]
    fn open_and_unlink_follow_the_rules_and_only_touch_the_directory(
        name in names(),
        flags in flags(),
        mode in prop_oneof![Just(0o600u32), 0u32..0o1000, any::<u32>()],
        glibc in any::<bool>(),
    ) {
        let layout = if glibc { Layout::Glibc } else { Layout::Illumos };
        let m = model_layout(layout);
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("objects");
        std::fs::create_dir(&dir).unwrap();
        let shm = ShmDir::new(&dir).with_layout(layout);
        let os = OsStr::from_bytes(&name);
        let r = shm.open(os, OFlag::from_bits_retain(flags), perm(mode));
        if let Err(e) = &r {
            prop_assert!(
                [libc::EINVAL, libc::ENAMETOOLONG, libc::ENOENT, libc::EEXIST]
                    .contains(&e.raw_os_error()),
                "unexpected {}", e
            );
        }
        let outcome = r.as_ref().map(|fd| fd.as_fd()).map_err(|e| e.raw_os_error());
        let verdict = model::check_open_fd(&name, flags, mode, m, outcome);
        prop_assert!(verdict.is_ok(), "open: {:?}: {:?}", verdict, r);
        let u = shm.unlink(os).map_err(|e| e.raw_os_error());
        let verdict = model::check_unlink(&name, m, r.is_ok(), u);
        prop_assert!(verdict.is_ok(), "{:?}", verdict);
        // Nothing was made beside the directory, and nothing is left in it.
        let outside: Vec<_> = std::fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(outside, vec![OsStr::new("objects").to_os_string()]);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert!(left.is_empty(), "left behind: {:?}", left);
    }
}
