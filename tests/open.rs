//! Open semantics through the public API, in a private directory: flags, create, exclusive
//! create and truncation, modes, FD_CLOEXEC and status flags, data shared between real
//! processes, errors that name the path, the environment's directory and the nix drop-in, and
//! the real /tmp default.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::stat::fstat;
use nix::unistd::ftruncate;
use tmpshm::{Access, Mapping, Mode, OFlag, ShmDir};
use tmpshm_testkit::support::*;

const RW: OFlag = OFlag::O_RDWR;
const CREAT: OFlag = OFlag::O_CREAT;
const EXCL: OFlag = OFlag::O_EXCL;

fn errno<T: std::fmt::Debug>(r: tmpshm::Result<T>) -> i32 {
    r.unwrap_err().raw_os_error()
}

#[test]
fn flag_decisions() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    drop(shm.open("/f", CREAT | RW, perm(0o600)).unwrap());
    let bad: &[(OFlag, u32, &str)] = &[
        (OFlag::O_WRONLY, 0, "O_WRONLY"),
        (OFlag::O_WRONLY | CREAT, 0o600, "O_WRONLY|O_CREAT"),
        (OFlag::O_ACCMODE, 0, "access mode 3"),
        (RW | OFlag::O_APPEND, 0, "O_APPEND"),
        (RW | OFlag::O_NONBLOCK, 0, "O_NONBLOCK"),
        (RW | OFlag::O_SYNC, 0, "O_SYNC"),
        (RW | EXCL, 0, "O_EXCL without O_CREAT"),
        (OFlag::O_RDONLY | OFlag::O_TRUNC, 0, "O_TRUNC with O_RDONLY"),
        (RW | CREAT, 0o4600, "setuid bit in mode"),
        (RW | CREAT, 0o10600, "file type bits in mode"),
    ];
    for (flags, mode, what) in bad {
        let e = shm.open("/f", *flags, perm(*mode)).unwrap_err();
        assert_eq!(e.raw_os_error(), libc::EINVAL, "{what}: {e}");
        assert!(e.reason().is_some(), "{what}: the error says why");
    }
    // Implied flags are accepted.
    drop(
        shm.open(
            "/f",
            RW | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .unwrap(),
    );
    // Mode is ignored without O_CREAT.
    drop(shm.open("/f", RW, perm(0o7777)).unwrap());
    // A refused flag touched nothing: no file for a name that did not exist.
    let e = shm
        .open("/nothing", OFlag::O_WRONLY | CREAT, perm(0o600))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), libc::EINVAL);
    assert!(!d.path().join(".SHMDnothing").exists());
}

#[test]
fn create_excl_trunc_enoent() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    assert_eq!(errno(shm.open("/x", RW, Mode::empty())), libc::ENOENT);
    let fd = shm.open("/x", CREAT | EXCL | RW, perm(0o600)).unwrap();
    assert_eq!(
        fstat(fd.as_fd()).unwrap().st_size,
        0,
        "new objects have size 0"
    );
    ftruncate(&fd, 8192).unwrap();
    assert_eq!(
        errno(shm.open("/x", CREAT | EXCL | RW, perm(0o600))),
        libc::EEXIST
    );
    // O_CREAT of an existing object opens it, untouched.
    let again = shm.open("/x", CREAT | RW, perm(0o600)).unwrap();
    assert_eq!(fstat(again.as_fd()).unwrap().st_size, 8192);
    // O_TRUNC empties it.
    let t = shm.open("/x", RW | OFlag::O_TRUNC, Mode::empty()).unwrap();
    assert_eq!(fstat(t.as_fd()).unwrap().st_size, 0);
    ftruncate(&fd, 100).unwrap();
    let t = shm
        .open("/x", CREAT | RW | OFlag::O_TRUNC, perm(0o600))
        .unwrap();
    assert_eq!(fstat(t.as_fd()).unwrap().st_size, 0);
    shm.unlink("/x").unwrap();
    assert_eq!(errno(shm.unlink("/x")), libc::ENOENT);
    assert!(entries(d.path()).is_empty(), "no lock file left");
}

#[test]
fn mode_of_new_objects_is_mode_minus_umask() {
    // umask is per process: change it only in a child.
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let code = run_in_child(Duration::from_secs(20), move || {
        nix::sys::stat::umask(Mode::from_bits_truncate(0o027));
        let fd = shm.open("/m", CREAT | EXCL | RW, perm(0o666)).unwrap();
        let mode = fstat(fd.as_fd()).unwrap().st_mode & 0o7777;
        i32::from(mode != 0o640)
    });
    assert_eq!(code, 0);
}

#[test]
fn cloexec_and_status_flags_are_exactly_what_was_asked() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    std::fs::File::create(d.path().join("plain")).unwrap();
    // The baseline for "nothing stray": what glibc's own shm_open does to a regular file,
    // open(O_NOFOLLOW|O_CLOEXEC). Linux keeps O_NOFOLLOW (and O_LARGEFILE on 64-bit) in the
    // status flags, and F_SETFL cannot clear them.
    let plain = nix::fcntl::open(
        &d.path().join("plain"),
        RW | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let base = fcntl(plain.as_fd(), FcntlArg::F_GETFL).unwrap() & !libc::O_ACCMODE;
    assert_eq!(base & libc::O_NONBLOCK, 0);
    for (flags, acc) in [
        (CREAT | RW, RW),
        (RW, RW),
        (OFlag::O_RDONLY, OFlag::O_RDONLY),
        (CREAT | OFlag::O_RDONLY, OFlag::O_RDONLY),
        (RW | OFlag::O_TRUNC, RW),
    ] {
        let fd = shm.open("/fl", flags, perm(0o600)).unwrap();
        let fdflags = FdFlag::from_bits_retain(fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap());
        assert!(fdflags.contains(FdFlag::FD_CLOEXEC), "{flags:?}");
        let st = fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap();
        assert_eq!(st, acc.bits() | base, "{flags:?}: status flags {st:#o}");
    }
}

#[test]
fn data_written_by_one_process_is_read_by_another() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let fd = shm.open("/shared", CREAT | EXCL | RW, perm(0o600)).unwrap();
    ftruncate(&fd, 4096).unwrap();
    let map = Mapping::new(&fd, 4096, Access::ReadWrite).unwrap();
    let ready = Ready::new();
    let shm2 = shm.clone();
    // The child opens the object by name (not the inherited fd), maps it, and writes.
    let child = fork_child(|| {
        let fd = shm2.open("/shared", RW, Mode::empty()).unwrap();
        let m = Mapping::new(&fd, 4096, Access::ReadWrite).unwrap();
        m.write_at(100, b"written by the child").unwrap();
        ready.notify();
        0
    });
    ready.wait(Duration::from_secs(30));
    assert_eq!(child.code(Duration::from_secs(30)), 0);
    let mut buf = [0u8; 20];
    map.read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"written by the child");
    // And the other way round, through a fresh process that only reads.
    map.write_at(0, b"parent").unwrap();
    let code = run_in_child(Duration::from_secs(30), || {
        let fd = shm2
            .open("/shared", OFlag::O_RDONLY, Mode::empty())
            .unwrap();
        let m = Mapping::new(&fd, 4096, Access::ReadOnly).unwrap();
        let mut b = [0u8; 6];
        m.read_at(0, &mut b).unwrap();
        if &b == b"parent" {
            0
        } else {
            1
        }
    });
    assert_eq!(code, 0);
    shm.unlink("/shared").unwrap();
}

#[test]
fn exclusive_create_race_has_exactly_one_winner() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    for round in 0..10 {
        let name = format!("/race{round}");
        let go = Ready::new();
        let children: Vec<_> = (0..8)
            .map(|_| {
                let shm = shm.clone();
                let name = name.clone();
                let go = &go;
                fork_child(move || {
                    // Start together: block until the parent writes.
                    let mut b = [0u8; 1];
                    let _ = nix::unistd::read(go.read_fd(), &mut b);
                    match shm.open(name.as_str(), CREAT | EXCL | RW, perm(0o600)) {
                        Ok(_) => 0,
                        Err(e) if e.raw_os_error() == libc::EEXIST => 1,
                        Err(_) => 2,
                    }
                })
            })
            .collect();
        for _ in 0..8 {
            go.notify();
        }
        let codes: Vec<i32> = children
            .into_iter()
            .map(|c| c.code(Duration::from_secs(60)))
            .collect();
        assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "{codes:?}");
        assert_eq!(codes.iter().filter(|&&c| c == 1).count(), 7, "{codes:?}");
        shm.unlink(name.as_str()).unwrap();
    }
    assert!(lock_files(d.path()).is_empty());
}

#[test]
fn errors_name_the_path_and_keep_the_errno() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let e = shm.open("/missing", RW, Mode::empty()).unwrap_err();
    assert_eq!(e.raw_os_error(), libc::ENOENT);
    assert_eq!(e.path(), Some(d.path().join(".SHMDmissing").as_path()));
    let line = e.to_string();
    assert!(
        line.contains("ENOENT") && line.contains(".SHMDmissing"),
        "{line}"
    );
    let io: std::io::Error = e.into();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(tmpshm::errno_of(&io), Some(libc::ENOENT));
    let n = shm.open("bad", RW, Mode::empty()).unwrap_err();
    assert_eq!(n.path(), Some(std::path::Path::new("bad")));
    assert!(n.to_string().contains("must start with '/'"), "{n}");
    // The nix drop-in keeps the errno.
    let nx: nix::errno::Errno = shm.open("/missing", RW, Mode::empty()).unwrap_err().into();
    assert_eq!(nx, nix::errno::Errno::ENOENT);
}

#[test]
fn tmpshm_dir_env_and_nix_drop_in() {
    // Run in a child so the environment change cannot reach other tests' threads.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_child", "--nocapture", "--include-ignored"])
        .env("TMPSHM_DIR", &dir)
        .env("TMPSHM_TEST_ENV_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[test]
#[ignore = "run by tmpshm_dir_env_and_nix_drop_in in a child with TMPSHM_DIR set"]
fn env_child() {
    if std::env::var_os("TMPSHM_TEST_ENV_CHILD").is_none() {
        skip(
            "env_child",
            "run by tmpshm_dir_env_and_nix_drop_in, with TMPSHM_DIR set",
        );
        return;
    }
    let dir = std::path::PathBuf::from(std::env::var_os("TMPSHM_DIR").unwrap());
    let fd = tmpshm::shm_open("/envobj", CREAT | RW, Mode::from_bits_truncate(0o600)).unwrap();
    assert!(dir.join(".SHMDenvobj").is_file());
    assert!(fd.as_raw_fd() >= 0);
    let fd2 = ShmDir::from_env()
        .unwrap()
        .open("/envobj", RW, Mode::empty())
        .unwrap();
    drop((fd, fd2));
    ShmDir::from_env().unwrap().unlink("/envobj").unwrap();
    assert_eq!(
        tmpshm::shm_unlink("/envobj"),
        Err(nix::errno::Errno::ENOENT)
    );
    // A relative TMPSHM_DIR is refused rather than resolved against each cwd.
    std::env::set_var("TMPSHM_DIR", "relative/dir");
    assert_eq!(ShmDir::from_env().unwrap_err().raw_os_error(), libc::EINVAL);
    std::env::set_var("TMPSHM_DIR", "");
    assert_eq!(
        tmpshm::ShmDir::from_env().unwrap().dir(),
        std::path::Path::new("/tmp")
    );
}

#[test]
fn real_tmp_default_directory() {
    // A few tests exercise the real /tmp, with unique names, and clean up.
    let shm = ShmDir::new("/tmp");
    let name = format!("/tmpshm-test-{}-{}", std::process::id(), line!());
    let fd = shm
        .open(name.as_str(), CREAT | EXCL | RW, perm(0o600))
        .unwrap();
    let path = std::path::PathBuf::from(format!("/tmp/.SHMD{}", &name[1..]));
    assert!(path.is_file());
    assert!(!std::path::Path::new(&format!("/tmp/.SHML{}", &name[1..])).exists());
    drop(fd);
    shm.unlink(name.as_str()).unwrap();
    assert!(!path.exists());
}

#[test]
fn the_lowest_free_descriptor_is_returned_on_every_path() {
    // POSIX: shm_open returns the lowest free descriptor. A create opens the lock file first;
    // the object's fd must not stay above it. In a child, so that no other test's fds move.
    let code = run_in_child(Duration::from_secs(30), || -> Result<String, String> {
        let d = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::env::set_var("TMPSHM_DIR", d.path());
        // The lowest free descriptor now (taken by a dup, and given back).
        let hole = || -> Result<i32, String> {
            let fd = nix::unistd::dup(std::io::stdin()).map_err(|e| e.to_string())?;
            Ok(fd.as_raw_fd())
        };
        let c_open = |name: &std::ffi::CStr, oflag: i32| {
            // SAFETY: a NUL-terminated name.
            unsafe {
                tmpshm::capi::shm_open(name.as_ptr(), oflag, 0o600, tmpshm::capi::Names::Strict)
            }
        };
        let shm = ShmDir::new(d.path());
        let mut seen = Vec::new();
        for (what, oflag) in [
            ("create", libc::O_CREAT | libc::O_RDWR),
            ("open", libc::O_RDWR),
            (
                "open O_CREAT of an existing object",
                libc::O_CREAT | libc::O_RDWR,
            ),
        ] {
            let want = hole()?;
            let fd = c_open(c"/low", oflag);
            seen.push(format!("{what}: {fd} (lowest free {want})"));
            if fd != want {
                return Err(seen.join("; "));
            }
            // SAFETY: the fd the call returned, ours to close.
            unsafe { libc::close(fd) };
        }
        let want = hole()?;
        let fd = c_open(c"/low-excl", libc::O_CREAT | libc::O_EXCL | libc::O_RDWR);
        seen.push(format!("exclusive create: {fd} (lowest free {want})"));
        if fd != want {
            return Err(seen.join("; "));
        }
        let want = hole()?;
        let owned = shm
            .open(
                "/low-rust",
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
                perm(0o600),
            )
            .map_err(|e| e.to_string())?;
        seen.push(format!(
            "ShmDir::open create: {} (lowest free {want})",
            owned.as_raw_fd()
        ));
        if owned.as_raw_fd() != want {
            return Err(seen.join("; "));
        }
        Ok(seen.join("; "))
    });
    assert_eq!(code, 0, "see the child's report above");
}

#[test]
fn an_exclusive_create_of_an_existing_object_touches_no_lock_file() {
    // Even a busy lock file that others may open (which a creator refuses to wait on) is not
    // looked at: the object is there, so the answer is EEXIST, at once.
    let d = tempfile::tempdir().unwrap();
    let steps = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = steps.clone();
    let shm = ShmDir::new(d.path()).with_trace(move |s| sink.lock().unwrap().push(s.to_string()));
    drop(
        shm.open("/there", OFlag::O_CREAT | OFlag::O_RDWR, perm(0o600))
            .unwrap(),
    );
    let lock = d.path().join(".SHMLthere");
    std::fs::write(&lock, b"").unwrap();
    std::fs::set_permissions(&lock, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let _held = nix::fcntl::Flock::lock(
        std::fs::File::open(&lock).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    steps.lock().unwrap().clear();
    let e = shm
        .open(
            "/there",
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            perm(0o600),
        )
        .unwrap_err();
    assert_eq!(e.raw_os_error(), libc::EEXIST, "{e}");
    let steps = steps.lock().unwrap();
    assert!(
        !steps.iter().any(|s| s.starts_with("lock")),
        "the lock was looked at: {steps:?}"
    );
}
