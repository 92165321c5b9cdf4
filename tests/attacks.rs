//! Attacks by another local user that go past planting files: hard links that re-bind a name,
//! lock files held through a setuid program, PID namespaces that hide holders, file leases,
//! running programs, and a full file system. Each test runs the attack for real, as root with
//! a uid-65534 attacker where one is needed.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::Mode;
use tmpshm::{Access, Mapping, OFlag, ShmDir, ShmOptions};
use tmpshm_testkit::support::*;

const RW: OFlag = OFlag::O_RDWR;
const RO: OFlag = OFlag::O_RDONLY;
const CREAT: OFlag = OFlag::O_CREAT;
const EXCL: OFlag = OFlag::O_EXCL;
const TRUNC: OFlag = OFlag::O_TRUNC;

/// Runs `f` and fails unless it answered within two seconds (an attack that makes a call wait
/// is a failure even when the call eventually gives the right answer).
fn prompt<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "{what} took {:?}",
        t.elapsed()
    );
    r
}

fn errno<T: std::fmt::Debug>(r: tmpshm::Result<T>) -> i32 {
    r.unwrap_err().raw_os_error()
}

/// Starts a child running as uid 65534 in its own process group, which runs `f` (to plant,
/// link, lease...), says ready, and then sleeps until killed. Dropping the child kills the
/// group.
fn attacker(f: impl FnOnce() -> Result<(), String>) -> Child {
    let ready = Ready::new();
    let ready_w = &ready;
    let child = fork_child(move || {
        let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
        become_nobody()?;
        f()?;
        ready_w.notify();
        std::thread::sleep(Duration::from_secs(120));
        Ok::<_, String>("")
    });
    ready.wait(Duration::from_secs(20));
    child
}

fn open_as_attacker(path: &Path, flags: OFlag) -> Result<OwnedFd, String> {
    nix::fcntl::open(
        path,
        flags | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(|e| format!("open {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Hard links re-bind names.

#[test]
fn a_world_writable_object_linked_under_a_new_name_is_never_handed_out() {
    if skip_unless_root("a_world_writable_object_linked_under_a_new_name_is_never_handed_out") {
        return;
    }
    let d = shared_tempdir();
    let shm = ShmDir::new(d.path());
    // Root publishes an object every user may read and write.
    let public = ShmOptions::new()
        .dir(shm.clone())
        .size(4096)
        .mode(perm(0o666))
        .create("/pub")
        .unwrap();
    // The neighbour links it under the name root will use next (allowed: it can read and
    // write the file), and keeps an fd to read what root writes there.
    let (from, to) = (d.path().join(".SHMDpub"), d.path().join(".SHMDtarget"));
    let attacker = attacker(move || {
        std::fs::hard_link(&from, &to).map_err(|e| format!("link: {e}"))?;
        let fd = open_as_attacker(&to, RW)?;
        std::mem::forget(fd);
        Ok(())
    });
    drop(public);
    shm.unlink("/pub").unwrap();
    let st = std::fs::symlink_metadata(d.path().join(".SHMDtarget")).unwrap();
    // Every check but one passes: root's own, one link, regular.
    assert_eq!((st.uid(), st.nlink(), st.mode() & 0o777), (0, 1, 0o666));
    let opts = ShmOptions::new().dir(shm.clone()).size(4096);
    for (what, e) in [
        (
            "open O_CREAT",
            errno(shm.open("/target", CREAT | RW, perm(0o600))),
        ),
        ("open", errno(shm.open("/target", RW, Mode::empty()))),
        (
            "open O_RDONLY",
            errno(shm.open("/target", RO, Mode::empty())),
        ),
        ("ShmOptions::open", errno(opts.open("/target"))),
        ("open_or_create", errno(opts.open_or_create("/target"))),
    ] {
        assert_eq!(e, libc::EPERM, "{what}");
    }
    let e = shm.open("/target", CREAT | RW, perm(0o600)).unwrap_err();
    assert!(e.to_string().contains("hard-linked"), "{e}");
    // Whoever shares objects across users on purpose opts in, and gets it.
    drop(
        shm.clone()
            .with_cross_user(true)
            .open("/target", RW, Mode::empty())
            .unwrap(),
    );
    drop(attacker);
}

#[test]
fn objects_that_others_can_read_and_write_need_cross_user_sharing() {
    // The rule behind the test above, mode by mode, for objects of our own: a read+write pair
    // for group or other is what protected_hardlinks=1 asks of a user who links a file they
    // do not own. Read-only or write-only access for others is fine (Boost's 0644, OpenMP's
    // 0666 minus the usual umask 022).
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    for (mode, refused) in [
        (0o600, false),
        (0o640, false),
        (0o644, false),
        (0o622, false),
        (0o604, false),
        (0o660, true),
        (0o664, true),
        (0o606, true),
        (0o666, true),
    ] {
        let name = format!("/m{mode:o}");
        drop(
            ShmOptions::new()
                .dir(shm.clone())
                .size(1)
                .mode(perm(mode))
                .create(name.as_str())
                .unwrap(),
        );
        let r = shm.open(name.as_str(), RW, Mode::empty());
        assert_eq!(r.is_err(), refused, "mode {mode:o}: {r:?}");
        if refused {
            assert_eq!(errno(r), libc::EPERM, "mode {mode:o}");
            assert!(shm
                .clone()
                .with_cross_user(true)
                .open(name.as_str(), RW, Mode::empty())
                .is_ok());
        }
    }
}

#[test]
fn a_world_writable_file_linked_as_a_lock_file_never_makes_a_creator_wait() {
    if skip_unless_root("a_world_writable_file_linked_as_a_lock_file_never_makes_a_creator_wait") {
        return;
    }
    let d = shared_tempdir();
    let shm = ShmDir::new(d.path());
    drop(
        ShmOptions::new()
            .dir(shm.clone())
            .size(1)
            .mode(perm(0o666))
            .create("/pub")
            .unwrap(),
    );
    let (from, to) = (d.path().join(".SHMDpub"), d.path().join(".SHMLtarget"));
    let attacker = attacker(move || {
        std::fs::hard_link(&from, &to).map_err(|e| format!("link: {e}"))?;
        let fd = open_as_attacker(&to, RO)?;
        let held = Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| e.to_string())?;
        std::mem::forget(held);
        Ok(())
    });
    shm.unlink("/pub").unwrap();
    let e = prompt("create under a held re-bound lock", || {
        shm.open("/target", CREAT | EXCL | RW, perm(0o600))
            .unwrap_err()
    });
    assert_eq!(e.raw_os_error(), libc::EPERM, "{e}");
    drop(attacker);
    // Free now (the attacker is gone): taken over, and the object is created fresh.
    let fd = prompt("create after the attacker left", || {
        shm.open("/target", CREAT | EXCL | RW, perm(0o600)).unwrap()
    });
    let st = nix::sys::stat::fstat(fd.as_fd()).unwrap();
    assert_eq!((st.st_mode & 0o777, st.st_nlink), (0o600, 1));
    assert!(lock_files(d.path()).is_empty(), "{:?}", entries(d.path()));
}

// ---------------------------------------------------------------------------------------------
// Lock files held in ways /proc/locks cannot tell.

/// A set-user-ID-root copy of `sleep`, or None (with the reason printed) where there is none
/// or the file system ignores set-user-ID bits.
fn setuid_sleep(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let Some(sleep) = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        skip(test, "no sleep program in /bin or /usr/bin");
        return None;
    };
    setuid_copy(test, &sleep)
}

#[test]
fn a_lock_held_through_a_setuid_program_never_makes_a_creator_wait() {
    let test = "a_lock_held_through_a_setuid_program_never_makes_a_creator_wait";
    if skip_unless_root(test) {
        return;
    }
    let Some((_bin, sleep)) = setuid_sleep(test) else {
        return;
    };
    let d = shared_tempdir();
    // A stale lock file of root's that others can open (a cross-user process left it).
    let lock = d.path().join(".SHMLvictim");
    std::fs::write(&lock, b"").unwrap();
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The attacker takes the flock, forks a child that keeps the open file description, and
    // execs a set-user-ID program: /proc/<taker> now belongs to root, and the lock outlives
    // that program.
    let ready = Ready::new();
    let ready_w = &ready;
    let taker = fork_child(move || {
        let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
        become_nobody().unwrap();
        let fd = nix::fcntl::open(&lock, RO, Mode::empty()).unwrap();
        let held = Flock::lock(fd, FlockArg::LockExclusive).unwrap();
        std::mem::forget(held); // inherited by the fork and across exec
                                // SAFETY: the child only sleeps and exits.
        if let nix::unistd::ForkResult::Child = unsafe { nix::unistd::fork() }.unwrap() {
            std::thread::sleep(Duration::from_secs(120));
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(0) };
        }
        ready_w.notify();
        let prog = std::ffi::CString::new(sleep.as_os_str().as_encoded_bytes()).unwrap();
        let _ = nix::unistd::execv(&prog, &[prog.clone(), c"120".into()]);
        1
    });
    ready.wait(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(200)); // let the exec happen
    let shm = ShmDir::new(d.path());
    let code = run_in_child(Duration::from_secs(10), move || {
        let t = Instant::now();
        match shm.open("/victim", CREAT | EXCL | RW, perm(0o600)) {
            Err(e) if e.raw_os_error() == libc::EPERM && t.elapsed() < Duration::from_secs(2) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
            Ok(_) => 2,
        }
    });
    taker.kill();
    assert_eq!(
        code, 0,
        "the creator waited on (or took) a lock another user holds"
    );
}

/// Runs `f` as pid 1 of a new PID namespace whose /proc shows only that namespace, so that
/// /proc/locks hides every lock holder outside it.
fn in_pid_namespace(f: impl FnOnce() -> i32) -> i32 {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    run_in_child(Duration::from_secs(20), move || {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID) {
            eprintln!("unshare: {e}");
            return 90;
        }
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        // The first child forked after unshare(CLONE_NEWPID) is pid 1 of the namespace.
        run_in_child(Duration::from_secs(20), move || {
            mount(
                Some("proc"),
                "/proc",
                Some("proc"),
                MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            f()
        })
    })
}

/// CPU time (user + system, in clock ticks) this process has used.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_holder_hidden_by_a_pid_namespace_never_makes_a_creator_spin() {
    if skip_unless_root("a_holder_hidden_by_a_pid_namespace_never_makes_a_creator_spin") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // Two busy lock files, held here, outside the namespace: one open to others (as a
    // cross-user process leaves it), one ours alone.
    let hold = |name: &str, mode: u32| {
        let p = d.path().join(name);
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let fd = nix::fcntl::open(&p, RO | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        Flock::lock(fd, FlockArg::LockExclusive).unwrap()
    };
    let loose = hold(".SHMLloose", 0o644);
    let private = hold(".SHMLprivate", 0o600);
    let shm = ShmDir::new(d.path());
    let shm2 = shm.clone();
    // Open to others and busy: refused at once, whoever /proc/locks shows (nobody, here).
    let code = in_pid_namespace(move || {
        let holders = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        if !holders.is_empty() {
            eprintln!("/proc/locks is not empty in the namespace: {holders}");
        }
        let t = Instant::now();
        match shm.open("/loose", CREAT | EXCL | RW, perm(0o600)) {
            Err(e) if e.raw_os_error() == libc::EPERM && t.elapsed() < Duration::from_secs(2) => 0,
            other => {
                eprintln!("{other:?} after {:?}", t.elapsed());
                1
            }
        }
    });
    assert_eq!(code, 0, "refused promptly inside the namespace");
    // Ours alone: waited for in the kernel, using no CPU, until the holder lets go.
    let path = d.path().join(".SHMLprivate");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::remove_file(&path).unwrap();
        drop(private);
    });
    let code = in_pid_namespace(move || {
        let before = cpu_ticks();
        let r = shm2.open("/private", CREAT | EXCL | RW, perm(0o600));
        let used = cpu_ticks() - before;
        match r {
            Ok(_) if used < 20 => 0,
            other => {
                eprintln!("{other:?}, {used} ticks of CPU while waiting");
                1
            }
        }
    });
    releaser.join().unwrap();
    drop(loose);
    assert_eq!(code, 0, "waited without spinning");
}

// ---------------------------------------------------------------------------------------------
// File leases and running programs: the opener must never wait, and the errno is documented.

/// Takes a lease of `kind` on `fd`, ignoring the SIGIO that announces a break.
fn lease(fd: &OwnedFd, kind: libc::c_int) -> Result<(), String> {
    // SAFETY: ignoring a signal installs no handler code.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    // SAFETY: F_SETLEASE takes an integer argument.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, kind) };
    Errno::result(r)
        .map(drop)
        .map_err(|e| format!("F_SETLEASE: {e}"))
}

fn leases_enabled(test: &str) -> bool {
    let on = std::fs::read_to_string("/proc/sys/fs/leases-enable").is_ok_and(|s| s.trim() == "1");
    if !on {
        skip(test, "fs.leases-enable is not 1");
    }
    on
}

#[test]
fn a_leased_file_at_the_data_or_lock_path_answers_at_once() {
    let test = "a_leased_file_at_the_data_or_lock_path_answers_at_once";
    if skip_unless_root(test) || !leases_enabled(test) {
        return;
    }
    let d = shared_tempdir();
    let (data, lock, wdata) = (
        d.path().join(".SHMDleased"),
        d.path().join(".SHMLlocked"),
        d.path().join(".SHMDwleased"),
    );
    // The attacker plants its own files and holds leases on them: read leases (broken by any
    // open for writing) and a write lease (broken by any open at all).
    let attacker = attacker(move || {
        for p in [&data, &lock] {
            std::fs::write(p, b"").map_err(|e| e.to_string())?;
            let fd = open_as_attacker(p, RO)?;
            lease(&fd, libc::F_RDLCK)?;
            std::mem::forget(fd);
        }
        std::fs::write(&wdata, b"").map_err(|e| e.to_string())?;
        let fd = open_as_attacker(&wdata, RW)?;
        lease(&fd, libc::F_WRLCK)?;
        std::mem::forget(fd);
        Ok(())
    });
    let shm = ShmDir::new(d.path());
    let opts = ShmOptions::new().dir(shm.clone()).size(4096);
    for (what, r) in [
        (
            "open O_RDWR",
            prompt("open", || errno(shm.open("/leased", RW, Mode::empty()))),
        ),
        (
            "open O_CREAT",
            prompt("open", || {
                errno(shm.open("/leased", CREAT | RW, perm(0o600)))
            }),
        ),
        (
            "open O_TRUNC",
            prompt("open", || {
                errno(shm.open("/leased", RW | TRUNC, Mode::empty()))
            }),
        ),
        (
            "ShmOptions::open",
            prompt("open", || errno(opts.open("/leased"))),
        ),
        (
            "open_or_create",
            prompt("open", || errno(opts.open_or_create("/leased"))),
        ),
        (
            "open O_RDONLY, write lease",
            prompt("open", || errno(shm.open("/wleased", RO, Mode::empty()))),
        ),
        (
            "create, leased lock",
            prompt("create", || {
                errno(shm.open("/locked", CREAT | RW, perm(0o600)))
            }),
        ),
        (
            "sized create, leased lock",
            prompt("create", || errno(opts.create("/locked"))),
        ),
    ] {
        // The documented refusal of a file planted by another user.
        assert_eq!(r, libc::EPERM, "{what}");
    }
    // Opted into cross-user sharing the file's owner passes, and the lease still never makes
    // us wait: EACCES, with the reason.
    let shared = ShmDir::new(d.path()).with_cross_user(true);
    let e = prompt("cross-user open", || {
        shared.open("/leased", RW, Mode::empty()).unwrap_err()
    });
    assert_eq!(e.raw_os_error(), libc::EACCES, "{e}");
    assert!(e.to_string().contains("lease"), "{e}");
    drop(attacker);
}

#[test]
fn a_running_program_at_the_data_path_gives_a_documented_errno() {
    let test = "a_running_program_at_the_data_path_gives_a_documented_errno";
    if skip_unless_root(test) {
        return;
    }
    let Some(sleep) = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        skip(test, "no sleep program");
        return;
    };
    let d = shared_tempdir();
    let prog = d.path().join(".SHMDbusy");
    let prog2 = prog.clone();
    let ready = Ready::new();
    let ready_w = &ready;
    let runner = fork_child(move || {
        become_nobody().unwrap();
        // In this child alone: no other test's fork can inherit the file being written.
        std::fs::copy(&sleep, &prog2).unwrap();
        std::fs::set_permissions(&prog2, std::fs::Permissions::from_mode(0o755)).unwrap();
        ready_w.notify();
        let p = std::ffi::CString::new(prog2.as_os_str().as_encoded_bytes()).unwrap();
        let _ = nix::unistd::execv(&p, &[p.clone(), c"60".into()]);
        1
    });
    ready.wait(Duration::from_secs(20));
    // Wait until the program runs from that file.
    let t = Instant::now();
    while std::fs::read_link(format!("/proc/{}/exe", runner.pid())).map_or(true, |p| p != prog) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the program never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let shm = ShmDir::new(d.path());
    for flags in [RW, CREAT | RW, RW | TRUNC] {
        assert_eq!(
            errno(shm.open("/busy", flags, perm(0o600))),
            libc::EPERM,
            "{flags:?}"
        );
    }
    let e = shm
        .clone()
        .with_cross_user(true)
        .open("/busy", RW, Mode::empty())
        .unwrap_err();
    assert_eq!(e.raw_os_error(), libc::EACCES, "{e}");
    assert!(e.to_string().contains("program"), "{e}");
    runner.kill();
}

// ---------------------------------------------------------------------------------------------
// A full file system: sized objects reserve their space, so SIGBUS can never come of it.

/// Runs `f` with a fresh 1 MiB tmpfs mounted at a private directory, in a mount namespace of
/// its own (the machine's mounts are never touched).
fn with_small_tmpfs(test: &str, f: impl FnOnce(&Path) -> i32) -> Option<i32> {
    if skip_unless_root(test) {
        return None;
    }
    let d = tempfile::tempdir().unwrap();
    let at = d.path().to_path_buf();
    Some(run_in_child(Duration::from_secs(30), move || {
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
            eprintln!("unshare: {e}");
            return 90;
        }
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m,mode=0700"),
        )
        .unwrap();
        f(&at)
    }))
}

#[test]
fn a_full_file_system_gives_enospc_at_create_and_grow_never_sigbus() {
    let code = with_small_tmpfs(
        "a_full_file_system_gives_enospc_at_create_and_grow_never_sigbus",
        |dir| {
            let shm = ShmDir::new(dir);
            let opts = |size| ShmOptions::new().dir(shm.clone()).size(size);
            let fail = |what: &str| {
                eprintln!("{what}; left: {:?}", entries(dir));
                1
            };
            // Larger than the file system: refused now, and nothing left behind.
            match opts(4 << 20).create("/big") {
                Err(e) if e.raw_os_error() == libc::ENOSPC => {}
                other => return fail(&format!("create 4 MiB: {other:?}")),
            }
            if !entries(dir).is_empty() {
                return fail("files left after ENOSPC");
            }
            // What fits is created, and can be written through a mapping from end to end.
            let mut half = match opts(512 << 10).create("/half") {
                Ok(s) => s,
                Err(e) => return fail(&format!("create 512 KiB: {e}")),
            };
            let map = half.map(Access::ReadWrite).unwrap();
            for off in (0..map.len()).step_by(4096) {
                map.write_at(off, b"x").unwrap();
            }
            drop(map);
            // Growing past the room left: ENOSPC, and the size is what it was.
            match half.grow_to(2 << 20) {
                Err(e) if e.raw_os_error() == libc::ENOSPC => {}
                other => return fail(&format!("grow to 2 MiB: {other:?}")),
            }
            let size = std::fs::metadata(dir.join(".SHMDhalf")).unwrap().len();
            if size != 512 << 10 || half.len() != 512 << 10 {
                return fail(&format!("size after a failed grow: {size}"));
            }
            // A sparse object made the classic way (ftruncate): mapping it read-write
            // reserves the range first.
            let fd = shm.open("/sparse", CREAT | RW, perm(0o600)).unwrap();
            nix::unistd::ftruncate(&fd, 4 << 20).unwrap();
            match Mapping::new(&fd, 4 << 20, Access::ReadWrite) {
                Err(e) if e.raw_os_error() == libc::ENOSPC => {}
                other => return fail(&format!("map a sparse 4 MiB object: {other:?}")),
            }
            // Read-only mappings read holes as zeros and need no room.
            if Mapping::new(&fd, 4 << 20, Access::ReadOnly).is_err() {
                return fail("read-only map of the sparse object");
            }
            0
        },
    );
    if let Some(code) = code {
        assert_eq!(code, 0, "see the child's output above");
    }
}
