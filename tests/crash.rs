//! Crashes and signals.
//!
//! Crash: a child creating and unlinking one name in a tight loop is SIGKILLed at a random
//! moment, over and over; after each kill the next operations on that name complete promptly,
//! and once a creator has run, no lock file and nothing half-made is left.
//! Signals: a storm of signals (handlers installed without `SA_RESTART`, so every blocking
//! call sees `EINTR`) while a process waits for a held lock, and while several processes
//! contend for one name, causes no failure.
//! Short form here; `TMPSHM_LONG=1` runs longer (see docs/hardening.md).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{open, Flock, FlockArg, OFlag as NixOFlag};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::stat::Mode;
use tmpshm::{OFlag, ShmDir};
use tmpshm_testkit::support::*;

/// Hang detector for one operation after a crash: generous, as the machine is shared.
const PROMPT: Duration = Duration::from_secs(5);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    assert!(t.elapsed() < PROMPT, "{what} took {:?} (hang)", t.elapsed());
    out
}

/// The victim of the crash test: every operation that touches the lock or the data file.
fn churn(dir: &Path) -> Result<String, String> {
    let shm = ShmDir::new(dir);
    let rw = OFlag::O_RDWR;
    loop {
        let _ = shm.open("/crash", rw | OFlag::O_CREAT | OFlag::O_EXCL, perm(0o600));
        let _ = shm.unlink("/crash");
        if let Ok(fd) = shm.open("/crash", rw | OFlag::O_CREAT | OFlag::O_TRUNC, perm(0o600)) {
            let _ = nix::unistd::ftruncate(fd, 4096);
        }
        let _ = shm.unlink("/crash");
    }
}

#[test]
fn crash_at_random_points_leaves_nothing_inconsistent() {
    let rounds = pick(40, 2000);
    let seed = seed();
    println!("crash: {rounds} rounds, TMPSHM_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(dir.path());
    let rw = OFlag::O_RDWR;
    let mut leftover_locks = 0;
    for round in 0..rounds {
        let path = dir.path().to_path_buf();
        let child = fork_child(move || churn(&path));
        std::thread::sleep(Duration::from_micros(200 + rng.below(3000)));
        child.kill();
        if !lock_files(dir.path()).is_empty() {
            leftover_locks += 1;
        }
        // Whatever the child was doing, every operation now completes at once.
        let fd = timed("open O_CREAT after a crash", || {
            shm.open("/crash", rw | OFlag::O_CREAT, perm(0o600))
        })
        .unwrap_or_else(|e| panic!("round {round}: open O_CREAT after a crash: {e}"));
        let st = nix::sys::stat::fstat(&fd).unwrap();
        assert_eq!(st.st_nlink, 1, "round {round}");
        drop(fd);
        timed("unlink after a crash", || shm.unlink("/crash"))
            .unwrap_or_else(|e| panic!("round {round}: unlink: {e}"));
        // An exclusive create takes the lock: a lock file left by the dead child is reused
        // and removed.
        let fd = timed("create O_EXCL after a crash", || {
            shm.open("/crash", rw | OFlag::O_CREAT | OFlag::O_EXCL, perm(0o600))
        })
        .unwrap_or_else(|e| panic!("round {round}: create O_EXCL after a crash: {e}"));
        drop(fd);
        shm.unlink("/crash").unwrap();
        let left = entries(dir.path());
        assert!(left.is_empty(), "round {round}: left behind: {left:?}");
    }
    println!(
        "crash: {leftover_locks} of {rounds} kills left a lock file behind; each was reclaimed"
    );
}

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// Installs a counting handler for `sig` without `SA_RESTART`: interrupted calls fail with
/// `EINTR` instead of restarting, which is what the library must cope with.
fn interrupting_handler(sig: Signal) {
    let act = SigAction::new(
        SigHandler::Handler(count_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only increments an atomic, which is async-signal-safe.
    unsafe { sigaction(sig, &act) }.expect("sigaction");
}

/// Holds the lock of `name` the way the protocol says a holder does: flock on the lock file.
fn hold_lock(dir: &Path, name: &str) -> Flock<OwnedFd> {
    let path = dir.join(format!(".SHML{}", &name[1..]));
    let fd = open(
        &path,
        NixOFlag::O_CREAT | NixOFlag::O_RDWR | NixOFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    Flock::lock(fd, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap()
}

/// Releases per the protocol: unlink while holding, then unlock and close.
fn release_lock(dir: &Path, name: &str, lock: Flock<OwnedFd>) {
    std::fs::remove_file(dir.join(format!(".SHML{}", &name[1..]))).unwrap();
    drop(lock);
}

#[test]
fn signal_storm_during_a_lock_wait_is_not_a_failure() {
    let storm = pick(Duration::from_millis(300), Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let lock = hold_lock(dir.path(), "/sig");
    let path = dir.path().to_path_buf();
    let ready = Ready::new();
    let victim = fork_child(|| {
        interrupting_handler(Signal::SIGUSR1);
        ready.notify();
        let shm = ShmDir::new(&path);
        // Blocks in flock(LOCK_EX) until the parent releases.
        let fd = shm
            .open(
                "/sig",
                OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
                perm(0o600),
            )
            .map_err(|e| format!("open during the storm: {e}"))?;
        drop(fd);
        Ok::<_, String>(SIGNALS.load(Ordering::Relaxed).to_string())
    });
    ready.wait(Duration::from_secs(30));
    let until = Instant::now() + storm;
    let mut sent = 0;
    while Instant::now() < until {
        kill(victim.pid(), Signal::SIGUSR1).unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(
        !dir.path().join(".SHMDsig").exists(),
        "the victim created the object while the lock was held"
    );
    release_lock(dir.path(), "/sig", lock);
    let handled: u64 = victim
        .wait(Duration::from_secs(30), "victim")
        .unwrap_or_else(|e| panic!("{e}"))
        .parse()
        .unwrap();
    println!("signals: sent {sent}, the waiting victim handled {handled}");
    assert!(
        handled > 0,
        "no signal reached the victim; the test proved nothing"
    );
    assert!(dir.path().join(".SHMDsig").exists());
    assert!(lock_files(dir.path()).is_empty());
}

#[test]
fn signal_storm_during_contention_is_not_a_failure() {
    let run = pick(Duration::from_millis(800), Duration::from_secs(20));
    let dir = tempfile::tempdir().unwrap();
    let until = Instant::now() + run;
    let children = (0..3)
        .map(|_| {
            let path = dir.path().to_path_buf();
            fork_child(move || {
                interrupting_handler(Signal::SIGALRM);
                // A SIGALRM every 50 µs of CPU-independent time, for the whole run.
                let every = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 50,
                };
                let timer = libc::itimerval {
                    it_interval: every,
                    it_value: every,
                };
                // SAFETY: plain syscall with a valid struct; no old value is asked for.
                if unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) } != 0
                {
                    return Err("setitimer failed".into());
                }
                let shm = ShmDir::new(&path);
                let rw = OFlag::O_RDWR;
                let mut ops = 0;
                while Instant::now() < until {
                    ops += 1;
                    match shm.open("/storm", rw | OFlag::O_CREAT | OFlag::O_EXCL, perm(0o600)) {
                        Ok(fd) => drop(fd),
                        Err(e) if e.raw_os_error() == libc::EEXIST => {}
                        Err(e) => return Err(format!("create: {e}")),
                    }
                    match shm.unlink("/storm") {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == libc::ENOENT => {}
                        Err(e) => return Err(format!("unlink: {e}")),
                    }
                }
                let off = libc::itimerval {
                    it_interval: libc::timeval {
                        tv_sec: 0,
                        tv_usec: 0,
                    },
                    it_value: libc::timeval {
                        tv_sec: 0,
                        tv_usec: 0,
                    },
                };
                // SAFETY: as above; stops the timer.
                unsafe { libc::setitimer(libc::ITIMER_REAL, &off, std::ptr::null_mut()) };
                let n = SIGNALS.load(Ordering::Relaxed);
                if n == 0 {
                    return Err(format!("no signal arrived during {ops} operations"));
                }
                Ok(format!("{ops} create/unlink pairs under {n} signals"))
            })
        })
        .collect();
    let summaries = wait_all(children, run + Duration::from_secs(60), "contender");
    println!("signals: {}", summaries.join("; "));
    assert!(lock_files(dir.path()).is_empty());
    let _ = std::fs::remove_file(dir.path().join(".SHMDstorm"));
}
