//! The creation lock with real processes: a live holder is waited for in the kernel, a dead
//! or absent holder never blocks, threads exclude each other, opening an existing object takes
//! no lock, a busy lock file others can open is refused at once, and where `flock` fails a
//! handle still unlinks its object. (Signals during a lock wait: tests/crash.rs.)

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use tmpshm::{OFlag, ShmDir, Step};
use tmpshm_testkit::support::*;

const RW: OFlag = OFlag::O_RDWR;
const CREAT: OFlag = OFlag::O_CREAT;
const EXCL: OFlag = OFlag::O_EXCL;

/// A ShmDir whose process, once it holds the lock, says so on `ready` and then either sleeps
/// for `hold` or kills itself with SIGKILL (`hold == None`).
fn holding(dir: &std::path::Path, ready: &Ready, hold: Option<Duration>) -> ShmDir {
    let w = nix::unistd::dup(ready_write_end(ready)).unwrap();
    ShmDir::new(dir).with_trace(move |step| {
        if let Step::LockAcquired { .. } = step {
            nix::unistd::write(&w, b"!").unwrap();
            match hold {
                Some(d) => std::thread::sleep(d),
                None => {
                    let _ = kill(nix::unistd::getpid(), Signal::SIGKILL);
                }
            }
        }
    })
}

fn ready_write_end(r: &Ready) -> std::os::fd::BorrowedFd<'_> {
    r.write_fd()
}

/// What the process `pid` is blocked in, from /proc/PID/syscall (the syscall number first).
fn blocked_in(pid: nix::unistd::Pid) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[test]
fn a_live_holder_is_waited_for_in_the_kernel() {
    let d = tempfile::tempdir().unwrap();
    let ready = Ready::new();
    let holder_dir = holding(d.path(), &ready, Some(Duration::from_millis(1500)));
    let holder = fork_child(move || {
        holder_dir
            .open("/held", CREAT | EXCL | RW, perm(0o600))
            .map_or(1, |_| 0)
    });
    ready.wait(Duration::from_secs(30));
    let shm = ShmDir::new(d.path());
    let waiter = fork_child(
        move || match shm.open("/held", CREAT | EXCL | RW, perm(0o600)) {
            // The holder created it while we waited: exclusive creation correctly fails.
            Err(e) if e.raw_os_error() == libc::EEXIST => 0,
            _ => 1,
        },
    );
    // While the holder sleeps, the waiter must be asleep in flock(2), not polling.
    let mut seen_flock = false;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1200) {
        if blocked_in(waiter.pid()) == Some(libc::SYS_flock) {
            seen_flock = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen_flock, "the waiter was never seen blocked in flock(2)");
    assert_eq!(holder.code(Duration::from_secs(30)), 0);
    assert_eq!(waiter.code(Duration::from_secs(30)), 0);
    assert!(lock_files(d.path()).is_empty(), "{:?}", entries(d.path()));
}

#[test]
fn a_sigkilled_holder_never_blocks_the_next_caller() {
    let d = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let name = format!("/killed{round}");
        let ready = Ready::new();
        let dying = holding(d.path(), &ready, None);
        let n2 = name.clone();
        let holder = fork_child(move || {
            dying
                .open(n2.as_str(), CREAT | RW, perm(0o600))
                .map_or(1, |_| 0)
        });
        ready.wait(Duration::from_secs(30));
        assert_eq!(holder.code(Duration::from_secs(30)), 128 + libc::SIGKILL);
        // The dead holder left its lock file behind (illumos would now wait 64 s and fail).
        assert_eq!(lock_files(d.path()), vec![format!(".SHML{}", &name[1..])]);
        let shm = ShmDir::new(d.path());
        let t = Instant::now();
        let fd = shm
            .open(name.as_str(), CREAT | EXCL | RW, perm(0o600))
            .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
        drop(fd);
        assert!(
            lock_files(d.path()).is_empty(),
            "the leftover was cleaned up"
        );
        shm.unlink(name.as_str()).unwrap();
    }
}

#[test]
fn a_lock_file_with_no_holder_is_simply_taken() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(".SHMLleft"), b"").unwrap();
    let shm = ShmDir::new(d.path());
    let t = Instant::now();
    drop(shm.open("/left", CREAT | EXCL | RW, perm(0o600)).unwrap());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(lock_files(d.path()).is_empty());
}

#[test]
fn threads_of_one_process_exclude_each_other() {
    thread_local! {
        // This thread's lock acquisitions, to tell which calls took the lock.
        static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let d = tempfile::tempdir().unwrap();
    let inside = Arc::new(AtomicI32::new(0));
    let max_inside = Arc::new(AtomicI32::new(0));
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let (i2, m2, a2) = (inside.clone(), max_inside.clone(), acquisitions.clone());
    let shm = ShmDir::new(d.path()).with_trace(move |step| match step {
        Step::LockAcquired { .. } => {
            let now = i2.fetch_add(1, Ordering::SeqCst) + 1;
            m2.fetch_max(now, Ordering::SeqCst);
            a2.fetch_add(1, Ordering::SeqCst);
            MINE.with(|m| m.set(m.get() + 1));
            // Stay inside a little, so overlaps would show.
            std::thread::yield_now();
        }
        Step::LockReleased { .. } => {
            i2.fetch_sub(1, Ordering::SeqCst);
        }
        _ => {}
    });
    let without_lock = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let shm = shm.clone();
            let without_lock = without_lock.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let before = MINE.with(std::cell::Cell::get);
                    let r = shm.open("/threads", CREAT | EXCL | RW, perm(0o600));
                    let locked = MINE.with(std::cell::Cell::get) - before;
                    match r {
                        Ok(_) => {
                            assert_eq!(locked, 1, "a create took the lock once");
                            let _ = shm.unlink("/threads");
                        }
                        Err(e) => {
                            assert_eq!(e.raw_os_error(), libc::EEXIST, "{e}");
                            // EEXIST either under the lock, or at once when the object was
                            // already there.
                            assert!(locked <= 1);
                            if locked == 0 {
                                without_lock.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        max_inside.load(Ordering::SeqCst),
        1,
        "two threads held the lock at once"
    );
    assert_eq!(
        acquisitions.load(Ordering::SeqCst) + without_lock.load(Ordering::SeqCst),
        800
    );
    assert!(lock_files(d.path()).is_empty());
}

#[test]
fn opening_an_existing_object_takes_no_lock() {
    let d = tempfile::tempdir().unwrap();
    let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = steps.clone();
    let shm = ShmDir::new(d.path()).with_trace(move |s| s2.lock().unwrap().push(s.to_string()));
    drop(shm.open("/nolock", CREAT | RW, perm(0o600)).unwrap());
    let created: Vec<String> = std::mem::take(&mut *steps.lock().unwrap());
    assert_eq!(
        created
            .iter()
            .filter(|s| s.starts_with("lock acquired"))
            .count(),
        1
    );
    for flags in [RW, CREAT | RW, OFlag::O_RDONLY] {
        drop(shm.open("/nolock", flags, perm(0o600)).unwrap());
        let st: Vec<String> = std::mem::take(&mut *steps.lock().unwrap());
        assert!(
            st.iter().all(|s| !s.starts_with("lock")),
            "{flags:?}: {st:?}"
        );
        assert_eq!(
            st.iter().filter(|s| s.starts_with("open ")).count(),
            1,
            "{st:?}"
        );
    }
}

#[test]
fn a_busy_lock_file_open_to_others_is_refused_at_once_and_a_free_one_taken_over() {
    // A lock file others may open (as a cross-user process makes it) may be held by any of
    // them, for as long as they like: even when its holder is in fact one of our own
    // processes, a creator without cross-user sharing refuses at once rather than wait, and
    // nothing about the holder's pid is trusted.
    let d = tempfile::tempdir().unwrap();
    let lock = d.path().join(".SHMLloose");
    let ready = Ready::new();
    let ready_w = &ready;
    let lock2 = lock.clone();
    let holder = fork_child(move || {
        use std::os::unix::fs::PermissionsExt;
        let f = std::fs::File::create(&lock2).unwrap();
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).unwrap();
        ready_w.notify();
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
        0
    });
    ready.wait(Duration::from_secs(30));
    let shm = ShmDir::new(d.path());
    let t = Instant::now();
    let e = shm
        .open("/loose", CREAT | EXCL | RW, perm(0o600))
        .unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(e.raw_os_error(), libc::EPERM, "{e}");
    assert!(e.to_string().contains("open to other users"), "{e}");
    assert_eq!(holder.code(Duration::from_secs(30)), 0);
    // Free now: taken over (removed as a holder removes it on release) and replaced by a fresh
    // lock file of our own, which is gone again after the create.
    assert!(lock.exists());
    let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = steps.clone();
    let traced =
        ShmDir::new(d.path()).with_trace(move |s| sink.lock().unwrap().push(s.to_string()));
    drop(
        traced
            .open("/loose", CREAT | EXCL | RW, perm(0o600))
            .unwrap(),
    );
    let steps = steps.lock().unwrap();
    let takeover = steps
        .iter()
        .position(|s| s.contains("free but open to other users"));
    let acquired = steps.iter().position(|s| s.starts_with("lock acquired"));
    assert!(
        takeover.is_some() && takeover < acquired,
        "not taken over before acquiring: {steps:?}"
    );
    assert!(lock_files(d.path()).is_empty(), "{:?}", entries(d.path()));
}

#[test]
fn without_flock_a_handle_still_unlinks_its_object() {
    // A file system without flock: no tmpshm creator can take the lock there, so a handle's
    // unlink (and unlink-on-drop) compares and unlinks without it, as ShmDir::unlink does.
    let test = "without_flock_a_handle_still_unlinks_its_object";
    if let Err(why) = seccomp::supported() {
        return skip(test, why);
    }
    let d = tempfile::tempdir().unwrap();
    let opts = tmpshm::ShmOptions::new()
        .dir(ShmDir::new(d.path()))
        .size(4096);
    drop(opts.create("/a").unwrap());
    drop(opts.create("/b").unwrap());
    let dir = d.path().to_path_buf();
    let child = fork_child(move || -> Result<String, String> {
        seccomp::deny_flock(nix::errno::Errno::EOPNOTSUPP).map_err(|e| format!("seccomp: {e}"))?;
        let opts = tmpshm::ShmOptions::new().dir(ShmDir::new(&dir));
        // The filter works: a create needs the lock.
        match opts.clone().size(1).create("/c") {
            Err(e) if e.raw_os_error() == libc::ENOSYS => {}
            other => return Err(format!("create without flock: {other:?}")),
        }
        opts.open("/a")
            .and_then(|shm| shm.unlink())
            .map_err(|e| format!("unlink: {e}"))?;
        drop(
            opts.unlink_on_drop(true)
                .open("/b")
                .map_err(|e| e.to_string())?,
        );
        Ok(String::new())
    });
    child.wait(Duration::from_secs(30), "child").unwrap();
    assert_eq!(entries(d.path()), Vec::<String>::new());
}
