//! The name rules through the public API, in a private directory, and every kind of name
//! the API takes.

use std::ffi::{CString, OsStr, OsString};
use std::path::{Path, PathBuf};

use tmpshm::{Mode, OFlag, ShmDir};
use tmpshm_testkit::support::*;

const RW: OFlag = OFlag::O_RDWR;
const CREAT: OFlag = OFlag::O_CREAT;

#[test]
fn name_rules_through_the_api() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let long_ok = format!("/{}", "a".repeat(250)); // ".SHMD" + 250 = 255 = NAME_MAX
    let too_long = format!("/{}", "a".repeat(251));
    let way_too_long = format!("/{}", "a".repeat(5000));
    let cases: &[(&[u8], Result<(), i32>)] = &[
        (b"/ok", Ok(())),
        (b"/.", Ok(())),
        (b"/..", Ok(())),
        (b"/\xff\xfe non-utf8", Ok(())),
        (long_ok.as_bytes(), Ok(())),
        (b"", Err(libc::EINVAL)),
        (b"noslash", Err(libc::EINVAL)),
        (b"/", Err(libc::EINVAL)),
        (b"//a", Err(libc::EINVAL)),
        (b"/a/b", Err(libc::EINVAL)),
        (b"/a\0b", Err(libc::EINVAL)),
        (too_long.as_bytes(), Err(libc::ENAMETOOLONG)),
        (way_too_long.as_bytes(), Err(libc::ENAMETOOLONG)),
    ];
    for (name, want) in cases {
        let got = shm
            .open(*name, CREAT | RW, perm(0o600))
            .map(drop)
            .map_err(|e| e.raw_os_error());
        assert_eq!(got, *want, "open {:?}", String::from_utf8_lossy(name));
        // shm_unlink agrees with shm_open on every name (POSIX: never ENAMETOOLONG for a
        // name that shm_open accepted).
        let unl = shm.unlink(*name).map_err(|e| e.raw_os_error());
        assert_eq!(unl, *want, "unlink {:?}", String::from_utf8_lossy(name));
    }
    assert!(
        entries(d.path()).is_empty(),
        "left: {:?}",
        entries(d.path())
    );
    // "/." and "/.." are ordinary files in the illumos layout, never the directory.
    let fd = shm.open("/..", CREAT | RW, perm(0o600)).unwrap();
    assert!(d.path().join(".SHMD..").is_file());
    drop(fd);
}

#[test]
fn names_accept_every_kind_of_string_path_and_bytes() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    drop(shm.open("/kinds", CREAT | RW, perm(0o600)).unwrap());
    let s = String::from("/kinds");
    let none = Mode::empty();
    drop(shm.open(b"/kinds".as_slice(), RW, none).unwrap());
    drop(shm.open(b"/kinds", RW, none).unwrap());
    drop(shm.open(b"/kinds".to_vec(), RW, none).unwrap());
    drop(shm.open(OsStr::new("/kinds"), RW, none).unwrap());
    drop(shm.open(OsString::from("/kinds"), RW, none).unwrap());
    drop(shm.open(c"/kinds", RW, none).unwrap());
    drop(shm.open(CString::new("/kinds").unwrap(), RW, none).unwrap());
    drop(shm.open(Path::new("/kinds"), RW, none).unwrap());
    drop(shm.open(PathBuf::from("/kinds"), RW, none).unwrap());
    drop(shm.open(&s, RW, none).unwrap());
    drop(shm.open(s.as_str(), RW, none).unwrap());
    drop(shm.open(s, RW, none).unwrap());
    shm.unlink("/kinds").unwrap();
}
