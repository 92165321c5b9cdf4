//! Property tests: no name maps outside the directory, and no input panics.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use proptest::prelude::*;
use tmpshm::{Layout, OFlag, ShmDir};

fn name_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Mostly names with the leading slash, including dots, slashes, NULs and high bytes.
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
        for layout in [Layout::ILLUMOS, Layout::GLIBC] {
            let shm = ShmDir::new(dir).layout(layout);
            match shm.data_path(name.as_slice()) {
                Ok(p) => {
                    stays_inside(dir, &p, layout.data_prefix());
                    let lock = shm.lock_path(name.as_slice()).unwrap();
                    match (lock, layout.lock_prefix()) {
                        (Some(l), Some(prefix)) => stays_inside(dir, &l, prefix),
                        (None, None) => {}
                        other => panic!("lock path and layout disagree: {other:?}"),
                    }
                    // The mapping is the name after its slash, byte for byte.
                    let file = p.file_name().unwrap().as_bytes();
                    prop_assert_eq!(&file[layout.data_prefix().len()..], &name[1..]);
                }
                Err(e) => {
                    prop_assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
                    prop_assert!(e.reason().is_some());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn open_and_unlink_never_panic_and_only_touch_the_directory(
        name in name_bytes(),
        flags in any::<i32>(),
        mode in any::<u32>(),
        common_flags in prop_oneof![
            Just(libc::O_RDWR | libc::O_CREAT),
            Just(libc::O_RDONLY),
            Just(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC),
        ],
        use_common in any::<bool>(),
    ) {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("objects");
        std::fs::create_dir(&dir).unwrap();
        let shm = ShmDir::new(&dir);
        let flags = if use_common { common_flags } else { flags };
        let r = shm.open(name.as_slice(), OFlag::from_bits_retain(flags), mode & 0o777);
        if let Err(e) = &r {
            let errno = e.raw_os_error().unwrap();
            prop_assert!(
                [libc::EINVAL, libc::ENAMETOOLONG, libc::ENOENT, libc::EEXIST].contains(&errno),
                "unexpected {}", e
            );
        }
        let _ = shm.unlink(name.as_slice());
        // Nothing was made beside the directory, and nothing is left in it.
        let outside: Vec<_> = std::fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(outside, vec![OsStr::new("objects").to_os_string()]);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert!(left.is_empty(), "left behind: {:?}", left);
    }
}
