//! No fd leaks, no lock files left: many operations, successes and every kind of failure.
//! Alone in its own test binary, so no other test's fds disturb the count.

mod common;

use std::os::unix::fs::symlink;

use common::*;
use tmpshm::{Access, Mapping, OFlag, ShmDir};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn no_fd_leak_and_no_lock_file_over_many_operations() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let p = d.path();
    symlink("/etc/passwd", p.join(".SHMDlink")).unwrap();
    symlink("/etc/passwd", p.join(".SHMLlocklink")).unwrap();
    std::fs::create_dir(p.join(".SHMDdir")).unwrap();
    nix::unistd::mkfifo(
        &p.join(".SHMDfifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::fs::write(p.join("target"), b"x").unwrap();
    std::fs::hard_link(p.join("target"), p.join(".SHMDhard")).unwrap();
    let rw = OFlag::O_RDWR;
    let c = OFlag::O_CREAT;
    let x = OFlag::O_EXCL;
    let before = open_fds();
    for i in 0..500 {
        let name = format!("/obj{}", i % 7);
        let fd = shm.open(name.as_str(), c | rw, 0o600).unwrap();
        nix::unistd::ftruncate(&fd, 4096).unwrap();
        let m = Mapping::new(&fd, 4096, Access::ReadWrite).unwrap();
        m.write_at(0, b"data").unwrap();
        assert!(Mapping::new(&fd, 8192, Access::ReadWrite).is_err());
        drop((m, fd));
        let _ = shm.open(name.as_str(), c | x | rw, 0o600).unwrap_err();
        drop(shm.open(name.as_str(), OFlag::O_RDONLY, 0).unwrap());
        drop(shm.open(name.as_str(), rw | OFlag::O_TRUNC, 0).unwrap());
        for bad in [
            "/link",
            "/dir",
            "/fifo",
            "/hard",
            "/locklink",
            "bad",
            "/a/b",
            "",
        ] {
            let _ = shm.open(bad, OFlag::O_RDONLY, 0).unwrap_err();
            let _ = shm.open(bad, c | rw, 0o600).unwrap_err();
            let _ = shm.open(bad, c | x | rw, 0o600).unwrap_err();
        }
        let _ = shm.open("/w", OFlag::O_WRONLY, 0).unwrap_err();
        let _ = shm.open("/missing", rw, 0).unwrap_err();
        if i % 3 == 0 {
            shm.unlink(name.as_str()).unwrap();
            let _ = shm.unlink(name.as_str()).unwrap_err();
        }
    }
    assert_eq!(open_fds(), before, "fds leaked");
    assert_eq!(
        lock_files(p),
        vec![".SHMLlocklink".to_string()],
        "only our plant is left"
    );
}
