//! Interop for real: tmpshm in the glibc layout (`/dev/shm`, no prefix, no lock) and a C
//! program on the system's own `shm_open`, in separate processes, share objects both ways.

mod support;

use std::path::PathBuf;
use std::process::Command;

use tmpshm::{Access, Layout, Mapping, Mode, OFlag, ShmDir};

use support::{compile, unique};

struct Native {
    exe: PathBuf,
    _dir: tempfile::TempDir,
}

impl Native {
    fn new() -> Native {
        let dir = tempfile::tempdir().unwrap();
        let exe = compile("native", dir.path(), &[]);
        Native { exe, _dir: dir }
    }

    /// Runs the native program; stdout, trimmed, whatever the exit status.
    fn run(&self, args: &[&str]) -> String {
        let o = Command::new(&self.exe)
            .args(args)
            .env_remove("LD_PRELOAD")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

fn glibc() -> ShmDir {
    ShmDir::new("/dev/shm").with_layout(Layout::Glibc)
}

/// Removes the object even when a test fails half-way.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm{}", self.0));
    }
}

fn read_all(fd: &std::os::fd::OwnedFd, len: usize) -> Vec<u8> {
    let map = Mapping::new(fd, len, Access::ReadOnly).unwrap();
    let mut buf = vec![0u8; len];
    map.read_at(0, &mut buf).unwrap();
    buf
}

/// Creates `name` in /dev/shm with tmpshm (`O_CREAT|O_RDWR|extra`), 4096 bytes, mapped.
fn create_mapped(name: &str, extra: OFlag) -> Mapping {
    let fd = glibc()
        .open(
            name,
            OFlag::O_CREAT | OFlag::O_RDWR | extra,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .unwrap();
    nix::unistd::ftruncate(&fd, 4096).unwrap();
    Mapping::new(&fd, 4096, Access::ReadWrite).unwrap()
}

#[test]
fn native_writes_tmpshm_reads_and_tmpshm_unlink_is_seen_natively() {
    let native = Native::new();
    let name = unique("io-n2t");
    let _c = Cleanup(name.clone());
    assert_eq!(native.run(&["write", &name, "from-native"]), "ok");
    let fd = glibc()
        .open(name.as_str(), OFlag::O_RDONLY, Mode::empty())
        .unwrap();
    assert!(read_all(&fd, 4096).starts_with(b"from-native\0"));
    glibc().unlink(name.as_str()).unwrap();
    assert_eq!(
        native.run(&["read", &name]),
        format!("ERR {}", libc::ENOENT)
    );
}

#[test]
fn tmpshm_writes_native_reads_and_native_unlink_is_seen_by_tmpshm() {
    let native = Native::new();
    let name = unique("io-t2n");
    let _c = Cleanup(name.clone());
    create_mapped(&name, OFlag::O_EXCL)
        .write_at(0, b"from-tmpshm\0")
        .unwrap();
    assert!(PathBuf::from(format!("/dev/shm{name}")).is_file());
    assert_eq!(native.run(&["read", &name]), "from-tmpshm");
    assert_eq!(native.run(&["unlink", &name]), "ok");
    let err = glibc()
        .open(name.as_str(), OFlag::O_RDONLY, Mode::empty())
        .unwrap_err();
    assert_eq!(err.raw_os_error(), libc::ENOENT);
    assert_eq!(
        glibc().unlink(name.as_str()).unwrap_err().raw_os_error(),
        libc::ENOENT
    );
}

#[test]
fn one_live_mapping_shared_between_a_native_process_and_tmpshm() {
    let native = Native::new();
    let name = unique("io-live");
    let _c = Cleanup(name.clone());
    let map = create_mapped(&name, OFlag::empty());
    map.write_at(0, b"tmpshm-was-here\0").unwrap();
    // The native process changes the memory this process has mapped, and reads ours.
    assert_eq!(native.run(&["poke", &name, "100", "native-poked"]), "ok");
    let mut back = [0u8; 12];
    map.read_at(100, &mut back).unwrap();
    assert_eq!(&back, b"native-poked");
    assert_eq!(native.run(&["read", &name]), "tmpshm-was-here");
    glibc().unlink(name.as_str()).unwrap();
}

#[test]
fn the_glibc_layout_refuses_dot_names_that_would_name_dev_shm_itself() {
    for n in ["/.", "/.."] {
        let e = glibc().open(n, OFlag::O_RDONLY, Mode::empty()).unwrap_err();
        assert_eq!(e.raw_os_error(), libc::EINVAL, "{n}");
    }
}
