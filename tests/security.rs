//! The threat model (DESIGN.md section 3), one plant at a time: what another local user can put
//! at the data or lock path, and what we do about it.

use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::stat::{fstat, Mode};
use tmpshm::{OFlag, ShmDir};
use tmpshm_testkit::support::*;

const RW: OFlag = OFlag::O_RDWR;
const RO: OFlag = OFlag::O_RDONLY;
const CREAT: OFlag = OFlag::O_CREAT;
const EXCL: OFlag = OFlag::O_EXCL;
const TRUNC: OFlag = OFlag::O_TRUNC;

fn errno<T: std::fmt::Debug>(r: tmpshm::Result<T>) -> i32 {
    r.unwrap_err().raw_os_error()
}

fn victim(dir: &Path) -> std::path::PathBuf {
    let v = dir.join("victim");
    std::fs::write(&v, b"precious").unwrap();
    v
}

/// Puts a file at `path` with `mode`, owned by `owner` when given (needs root).
fn plant(path: &Path, contents: &[u8], mode: u32, owner: Option<u32>) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(uid) = owner {
        nix::unistd::chown(path, Some(uid.into()), Some(uid.into())).unwrap();
    }
}

fn assert_untouched(v: &Path) {
    assert_eq!(
        std::fs::read(v).unwrap(),
        b"precious",
        "{} was changed",
        v.display()
    );
}

#[test]
fn symlink_at_data_path_is_never_followed() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let v = victim(d.path());
    symlink(&v, d.path().join(".SHMDlink")).unwrap();
    for flags in [RW, RO, CREAT | RW, RW | TRUNC, CREAT | RW | TRUNC] {
        let e = shm.open("/link", flags, perm(0o600)).unwrap_err();
        assert_eq!(e.raw_os_error(), libc::ELOOP, "{flags:?}: {e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
    // O_EXCL sees the link as "exists", and still does not follow it.
    assert_eq!(
        errno(shm.open("/link", CREAT | EXCL | RW, perm(0o600))),
        libc::EEXIST
    );
    assert_untouched(&v);
    // A dangling link: O_CREAT must not create its target.
    let target = d.path().join("target-of-dangling");
    symlink(&target, d.path().join(".SHMDdangling")).unwrap();
    assert_eq!(
        errno(shm.open("/dangling", CREAT | RW, perm(0o600))),
        libc::ELOOP
    );
    assert_eq!(
        errno(shm.open("/dangling", CREAT | EXCL | RW, perm(0o600))),
        libc::EEXIST
    );
    assert!(!target.exists(), "followed the dangling link");
    assert!(lock_files(d.path()).is_empty());
}

#[test]
fn symlink_at_lock_path_is_never_followed() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let v = victim(d.path());
    symlink(&v, d.path().join(".SHMLlk")).unwrap();
    let e = shm.open("/lk", CREAT | RW, perm(0o600)).unwrap_err();
    assert_eq!(e.raw_os_error(), libc::ELOOP, "{e}");
    assert!(e.path().is_some_and(|p| p.ends_with(".SHMLlk")), "{e}");
    assert_untouched(&v);
    assert!(
        !d.path().join(".SHMDlk").exists(),
        "created without the lock"
    );
    // Our link plant stays; we did not remove someone else's file either.
    assert!(d.path().join(".SHMLlk").symlink_metadata().is_ok());
}

fn assert_prompt<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{what} took {:?}",
        t.elapsed()
    );
    r
}

#[test]
fn fifo_directory_socket_at_data_path_give_prompt_errors() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    nix::unistd::mkfifo(&d.path().join(".SHMDfifo"), Mode::from_bits_truncate(0o666)).unwrap();
    std::fs::create_dir(d.path().join(".SHMDdir")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(d.path().join(".SHMDsock")).unwrap();
    // Run the opens in a child, so a hang (a FIFO opened O_RDONLY without O_NONBLOCK blocks
    // until a writer comes) is caught by a deadline rather than hanging the suite.
    let shm2 = shm.clone();
    let child = fork_child(move || {
        for name in ["/fifo", "/dir", "/sock"] {
            for flags in [RO, RW, CREAT | RW, CREAT | RO, RW | TRUNC] {
                match shm2.open(name, flags, perm(0o600)) {
                    Err(e) if e.raw_os_error() == libc::EINVAL => {}
                    _ => return 1,
                }
            }
            if shm2
                .open(name, CREAT | EXCL | RW, perm(0o600))
                .err()
                .map(|e| e.raw_os_error())
                != Some(libc::EEXIST)
            {
                return 2;
            }
        }
        0
    });
    assert_eq!(child.code(Duration::from_secs(20)), 0);
    let e = assert_prompt("fifo", || shm.open("/fifo", RO, Mode::empty()).unwrap_err());
    assert!(e.to_string().contains("FIFO"), "{e}");
    let e = shm.open("/dir", RO, Mode::empty()).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
    assert!(lock_files(d.path()).is_empty());
}

#[test]
fn fifo_and_directory_at_lock_path_give_prompt_errors() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    nix::unistd::mkfifo(&d.path().join(".SHMLf"), Mode::from_bits_truncate(0o666)).unwrap();
    std::fs::create_dir(d.path().join(".SHMLdd")).unwrap();
    let shm2 = shm.clone();
    let child = fork_child(move || {
        let a = shm2
            .open("/f", CREAT | RW, perm(0o600))
            .err()
            .map(|e| e.raw_os_error());
        let b = shm2
            .open("/dd", CREAT | RW, perm(0o600))
            .err()
            .map(|e| e.raw_os_error());
        i32::from(!(a == Some(libc::EINVAL) && b == Some(libc::EINVAL)))
    });
    assert_eq!(child.code(Duration::from_secs(20)), 0);
    assert!(!d.path().join(".SHMDf").exists() && !d.path().join(".SHMDdd").exists());
}

#[test]
fn hard_linked_file_is_never_truncated_or_handed_out() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let v = victim(d.path());
    std::fs::hard_link(&v, d.path().join(".SHMDhl")).unwrap();
    for flags in [RO, RW, RW | TRUNC, CREAT | RW | TRUNC, CREAT | RW] {
        let e = shm.open("/hl", flags, perm(0o600)).unwrap_err();
        assert_eq!(e.raw_os_error(), libc::EPERM, "{flags:?}: {e}");
        assert!(e.to_string().contains("hard links"), "{e}");
    }
    assert_untouched(&v);
}

#[test]
fn object_of_another_user_is_refused_unless_cross_user() {
    if skip_unless_root("object_of_another_user_is_refused_unless_cross_user") {
        return;
    }
    let d = shared_tempdir();
    let shm = ShmDir::new(d.path());
    let p = d.path().join(".SHMDforeign");
    plant(&p, b"squatter's data", 0o666, Some(NOBODY));
    for flags in [RO, RW, RW | TRUNC, CREAT | RW] {
        let e = shm.open("/foreign", flags, perm(0o600)).unwrap_err();
        assert_eq!(e.raw_os_error(), libc::EPERM, "{flags:?}: {e}");
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    }
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b"squatter's data",
        "truncated a foreign file"
    );
    // Opted in: it opens.
    let shared = shm.clone().with_cross_user(true);
    let fd = shared.open("/foreign", RW, Mode::empty()).unwrap();
    assert_eq!(fstat(fd.as_fd()).unwrap().st_uid, NOBODY);
    // The environment variable opts in too, for programs that cannot change code: the
    // `tmpshm` command shows it (cli/tests/cli.rs, cross_user_variable_opens_an_object_of_another_user).
}

/// A child running as uid 65534 that opens `path` with `flags` and holds `flock(LOCK_EX)` on it
/// until killed. Returns once it holds the lock.
fn nobody_holding(path: &Path, flags: OFlag) -> Child {
    let ready = Ready::new();
    let ready_w = &ready;
    let path = path.to_path_buf();
    let holder = fork_child(move || {
        become_nobody().unwrap();
        let fd = nix::fcntl::open(&path, flags, Mode::from_bits_truncate(0o666)).unwrap();
        let _held = nix::fcntl::Flock::lock(fd, nix::fcntl::FlockArg::LockExclusive).unwrap();
        ready_w.notify();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    ready.wait(Duration::from_secs(20));
    holder
}

#[test]
fn foreign_lock_file_is_refused_promptly_even_when_held() {
    if skip_unless_root("foreign_lock_file_is_refused_promptly_even_when_held") {
        return;
    }
    let d = shared_tempdir();
    let shm = ShmDir::new(d.path());
    // A squatter (uid 65534) plants the lock file and holds flock on it forever.
    let squatter = nobody_holding(&d.path().join(".SHMLsq"), OFlag::O_CREAT | RW);
    let e = assert_prompt("foreign held lock", || {
        shm.open("/sq", CREAT | RW, perm(0o600)).unwrap_err()
    });
    assert_eq!(e.raw_os_error(), libc::EPERM, "{e}");
    assert!(e.path().is_some_and(|p| p.ends_with(".SHMLsq")), "{e}");
    squatter.kill();
    // Abandoned now, still foreign: still a prompt EPERM; opening an existing object needs no
    // lock, so the squatter cannot block that.
    let e = assert_prompt("foreign abandoned lock", || {
        shm.open("/sq", CREAT | RW, perm(0o600)).unwrap_err()
    });
    assert_eq!(e.raw_os_error(), libc::EPERM);
}

#[test]
fn unreadable_lock_file_gives_prompt_eacces() {
    if skip_unless_root("unreadable_lock_file_gives_prompt_eacces") {
        return;
    }
    let d = shared_tempdir();
    let lock = d.path().join(".SHMLnoperm");
    plant(&lock, b"", 0o000, None);
    let shm = ShmDir::new(d.path()).with_cross_user(true);
    let child = fork_child(move || {
        become_nobody().unwrap();
        let t = Instant::now();
        let r = shm.open("/noperm", CREAT | RW, perm(0o600));
        let ok = matches!(&r, Err(e) if e.raw_os_error() == libc::EACCES
            && e.op() == tmpshm::Op::Lock);
        // illumos retries this for 64 s; we answer at once.
        i32::from(!(ok && t.elapsed() < Duration::from_secs(5)))
    });
    assert_eq!(child.code(Duration::from_secs(30)), 0);
}

#[test]
fn nobody_cannot_open_roots_private_object() {
    if skip_unless_root("nobody_cannot_open_roots_private_object") {
        return;
    }
    let d = shared_tempdir();
    let shm = ShmDir::new(d.path());
    let fd = shm
        .open("/private", CREAT | EXCL | RW, perm(0o600))
        .unwrap();
    nix::unistd::ftruncate(&fd, 4096).unwrap();
    let shm2 = shm.clone().with_cross_user(true); // even opted in, the mode decides
    let child = fork_child(move || {
        become_nobody().unwrap();
        let codes: Vec<_> = [RO, RW, CREAT | RW]
            .into_iter()
            .map(|f| {
                shm2.open("/private", f, perm(0o600))
                    .err()
                    .map(|e| e.raw_os_error())
            })
            .collect();
        let unl = shm2.unlink("/private").err().map(|e| e.raw_os_error());
        i32::from(!(codes.iter().all(|c| *c == Some(libc::EACCES)) && unl == Some(libc::EACCES)))
    });
    assert_eq!(child.code(Duration::from_secs(30)), 0);
    assert_eq!(
        d.path().join(".SHMDprivate").metadata().unwrap().size(),
        4096
    );
    shm.unlink("/private").unwrap();
}

#[test]
fn our_own_lock_file_held_by_another_user_never_makes_us_wait() {
    if skip_unless_root("our_own_lock_file_held_by_another_user_never_makes_us_wait") {
        return;
    }
    let d = shared_tempdir();
    let shm = ShmDir::new(d.path());
    // A leftover lock file of ours that others may open (as a cross-user process, or an older
    // tool, would leave it): flock needs no write access, so anyone can hold it.
    let lock = d.path().join(".SHMLours");
    plant(&lock, b"", 0o644, None);
    let holder = nobody_holding(&lock, RO);
    let e = assert_prompt("our lock held by nobody", || {
        shm.open("/ours", CREAT | RW, perm(0o600)).unwrap_err()
    });
    assert_eq!(e.raw_os_error(), libc::EPERM, "{e}");
    assert!(e.to_string().contains("open to other users"), "{e}");
    holder.kill();
    // Nobody holds it now: it is simply taken, and removed.
    drop(shm.open("/ours", CREAT | RW, perm(0o600)).unwrap());
    assert!(!lock.exists());
}

/// A child that creates `name` through `shm` under `umask` and stops while it holds the lock,
/// until the returned `Ready` is notified (or 30 s pass, so a failing test never leaves it
/// behind).
fn paused_in_lock(shm: ShmDir, name: &'static str, umask: u32) -> (Child, Ready) {
    let ready = Ready::new();
    let w = nix::unistd::dup(ready.write_fd()).unwrap();
    let release = Ready::new();
    let r = nix::unistd::dup(release.read_fd()).unwrap();
    let paused = shm.with_trace(move |step| {
        if let tmpshm::Step::LockAcquired { .. } = step {
            use std::os::fd::AsFd;
            nix::unistd::write(&w, b"!").unwrap();
            let mut fds = [nix::poll::PollFd::new(
                r.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(30_000).unwrap());
        }
    });
    let holder = fork_child(move || {
        nix::sys::stat::umask(Mode::from_bits_truncate(umask));
        paused.open(name, CREAT | RW, perm(0o600)).map_or(1, |_| 0)
    });
    ready.wait(Duration::from_secs(20));
    (holder, release)
}

#[test]
fn lock_files_we_create_are_ours_alone() {
    if skip_unless_root("lock_files_we_create_are_ours_alone") {
        return;
    }
    let d = shared_tempdir();
    // A permissive umask, so only tmpshm's own choice of mode can keep others out.
    let (holder, release) = paused_in_lock(ShmDir::new(d.path()), "/alone", 0o022);
    let lock = d.path().join(".SHMLalone");
    let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "lock file mode {mode:o}");
    let lock2 = lock.clone();
    let probe = fork_child(move || {
        become_nobody().unwrap();
        match nix::fcntl::open(&lock2, RO, Mode::empty()) {
            Err(nix::errno::Errno::EACCES) => 0,
            _ => 1,
        }
    });
    assert_eq!(
        probe.code(Duration::from_secs(20)),
        0,
        "another user opened our lock"
    );
    release.notify();
    assert_eq!(holder.code(Duration::from_secs(20)), 0);
    assert!(!lock.exists());
}

#[test]
fn unwritable_directory_is_named_as_the_cause() {
    if skip_unless_root("unwritable_directory_is_named_as_the_cause") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shm = ShmDir::new(d.path());
    let child = fork_child(move || {
        become_nobody().unwrap();
        match shm.open("/x", CREAT | RW, perm(0o600)) {
            Err(e)
                if e.raw_os_error() == libc::EACCES
                    && e.to_string().contains("directory writable") =>
            {
                0
            }
            _ => 1,
        }
    });
    assert_eq!(child.code(Duration::from_secs(20)), 0);
}

#[test]
fn cross_user_lock_files_are_open_to_others_whatever_the_umask() {
    // Shared objects need lock files the other users can open (read-only is enough for flock);
    // a strict umask must not lock them out.
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path()).with_cross_user(true);
    let (holder, release) = paused_in_lock(shm, "/shared", 0o077);
    let mode = std::fs::metadata(d.path().join(".SHMLshared"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644, "cross-user lock file mode {mode:o}");
    release.notify();
    assert_eq!(holder.code(Duration::from_secs(20)), 0);
    assert!(lock_files(d.path()).is_empty());
}
