//! The faster paths keep their answers: the C entry points read the environment in one pass
//! (and still at every call), names and directories are checked in one pass, the fds handed
//! out are blocking, and a creator that waited for a holder who then released the lock opens
//! what the holder made without a lock file of its own.

use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tmpshm::capi::{self, Names};
use tmpshm::{Mode, OFlag, ShmDir};
use tmpshm_testkit::support::in_fresh_process;

const RW: OFlag = OFlag::O_RDWR;
const CREAT: OFlag = OFlag::O_CREAT;
const EXCL: OFlag = OFlag::O_EXCL;

/// The tests that set the environment run one at a time.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> std::sync::MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn capi_open(name: &str, flags: OFlag) -> Result<OwnedFd, i32> {
    // SAFETY: a valid C string.
    let fd = unsafe { capi::shm_open(c(name).as_ptr(), flags.bits(), 0o600, Names::Strict) };
    if fd < 0 {
        Err(errno())
    } else {
        // SAFETY: a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn flock(f: &File, op: libc::c_int) {
    // SAFETY: flock takes an fd and an integer.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), op) }, 0);
}

#[test]
fn the_c_entry_points_read_tmpshm_dir_at_every_call_and_no_variable_that_only_starts_alike() {
    let _env = env_lock();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Names that start like ours are other variables.
    std::env::set_var("TMPSHM_DIRECTORY", "/nonexistent-tmpshm-perf");
    std::env::set_var("TMPSHM_DI", "/nonexistent-tmpshm-perf");
    std::env::set_var("TMPSHM_CROSS_USERS", "1");
    std::env::set_var("TMPSHM_DIR", a.path());
    drop(capi_open("/env", RW | CREAT | EXCL).unwrap());
    assert!(a.path().join(".SHMDenv").exists());
    std::env::set_var("TMPSHM_DIR", b.path());
    drop(capi_open("/env", RW | CREAT | EXCL).unwrap());
    assert!(b.path().join(".SHMDenv").exists());
    // A relative directory is still refused, empty still means /tmp.
    std::env::set_var("TMPSHM_DIR", "relative");
    assert_eq!(capi_open("/env", RW).unwrap_err(), libc::EINVAL);
    for v in [
        "TMPSHM_DIRECTORY",
        "TMPSHM_DI",
        "TMPSHM_CROSS_USERS",
        "TMPSHM_DIR",
    ] {
        std::env::remove_var(v);
    }
}

#[test]
fn a_thread_unsetting_variables_never_makes_the_one_pass_read_fault() {
    // Each unsetenv shifts the later entries down a slot, under the reader's feet: a pass that
    // loaded a slot twice could find the array's end the second time and read through NULL.
    if !in_fresh_process("a_thread_unsetting_variables_never_makes_the_one_pass_read_fault") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::env::set_var("TMPSHM_DIR", d.path());
    drop(capi_open("/env-race", RW | CREAT | EXCL).unwrap());
    let names: Vec<CString> = (0..3000).map(|i| c(&format!("TMPSHM_PAD{i:05}"))).collect();
    // putenv's strings are ours and live for good (musl's unsetenv frees the strings setenv
    // made, under any reader, getenv's too). Only unsetenv runs under the reader: a putenv
    // that grows the array may free the one a reader walks (POSIX leaves both undefined).
    let entries: Vec<&'static CStr> = names
        .iter()
        .map(|n| {
            let e = c(&format!("{}=x", n.to_str().unwrap()));
            &*Box::leak(e.into_boxed_c_str())
        })
        .collect();
    let set_all = || {
        std::env::remove_var("TMPSHM_DIR");
        for e in &entries {
            // SAFETY: a string that lives for good; no other thread reads the environment now.
            unsafe { libc::putenv(e.as_ptr().cast_mut()) };
        }
        // After the padding, so that every unsetenv below shifts it.
        std::env::set_var("TMPSHM_DIR", d.path());
    };
    let (mut found, mut missed) = (0u32, 0u32);
    for _ in 0..25 {
        set_all();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = Arc::clone(&done);
        // Without O_CREAT: a pass that misses TMPSHM_DIR (allowed, as getenv may) looks in
        // /tmp, finds nothing and makes nothing there.
        let reader = std::thread::spawn(move || {
            let (mut found, mut missed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match capi_open("/env-race", RW) {
                    Ok(_) => found += 1,
                    Err(libc::ENOENT) => missed += 1,
                    Err(e) => panic!("errno {e}"),
                }
            }
            (found, missed)
        });
        for n in &names {
            // SAFETY: a valid C string; only this thread changes the environment.
            unsafe { libc::unsetenv(n.as_ptr()) };
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (f, m) = reader.join().unwrap();
        (found, missed) = (found + f, missed + m);
    }
    println!("opened in TMPSHM_DIR {found} times, missed it {missed} times");
    assert!(found > 0);
}

#[test]
fn the_interposers_still_take_their_name_rules_from_tmpshm_names() {
    let _env = env_lock();
    let d = tempfile::tempdir().unwrap();
    std::env::set_var("TMPSHM_DIR", d.path());
    let open = |name: &str| {
        // SAFETY: a valid C string.
        let fd = unsafe {
            capi::interposed_shm_open(c(name).as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600)
        };
        if fd < 0 {
            Err(errno())
        } else {
            // SAFETY: a new fd.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
            Ok(())
        }
    };
    std::env::set_var("TMPSHM_NAMESX", "strict");
    assert_eq!(
        open("noslash"),
        Ok(()),
        "glibc's rules unless TMPSHM_NAMES=strict"
    );
    std::env::set_var("TMPSHM_NAMES", "strict");
    assert_eq!(open("noslash2"), Err(libc::EINVAL));
    for v in ["TMPSHM_NAMES", "TMPSHM_NAMESX", "TMPSHM_DIR"] {
        std::env::remove_var(v);
    }
    assert!(d.path().join(".SHMDnoslash").exists());
}

#[test]
fn fds_handed_out_are_blocking_and_close_on_exec() {
    let _env = env_lock();
    let d = tempfile::tempdir().unwrap();
    std::env::set_var("TMPSHM_DIR", d.path());
    let shm = ShmDir::new(d.path());
    let fds = [
        capi_open("/fl", RW | CREAT | EXCL).unwrap(),
        capi_open("/fl", RW).unwrap(),
        capi_open("/fl", RW | CREAT).unwrap(),
        shm.open("/fl", RW, Mode::empty()).unwrap(),
        shm.open("/fl2", RW | CREAT | EXCL, Mode::S_IRWXU).unwrap(),
    ];
    std::env::remove_var("TMPSHM_DIR");
    for fd in &fds {
        // SAFETY: fcntl on our own open fds.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(fd.as_raw_fd(), libc::F_GETFL),
                libc::fcntl(fd.as_raw_fd(), libc::F_GETFD),
            )
        };
        assert_eq!(
            fl & libc::O_NONBLOCK,
            0,
            "O_NONBLOCK left on an fd handed out"
        );
        assert_ne!(fdfl & libc::FD_CLOEXEC, 0);
    }
}

#[test]
fn names_and_directories_are_checked_in_one_pass_with_the_same_answers() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    // A '/' is reported before a NUL, wherever each is.
    for name in [&b"/a\0b/c"[..], b"/a/b\0", b"/a/"] {
        let e = shm.open(name, RW | CREAT, Mode::S_IRWXU).unwrap_err();
        assert_eq!(e.raw_os_error(), libc::EINVAL);
        assert!(e.reason().unwrap().contains('/'), "{:?}", e.reason());
    }
    let e = shm
        .open(&b"/a\0b"[..], RW | CREAT, Mode::S_IRWXU)
        .unwrap_err();
    assert!(e.reason().unwrap().contains("NUL"), "{:?}", e.reason());
    // A directory with a NUL byte is refused by every call, as before.
    let mut bad = d.path().as_os_str().as_bytes().to_vec();
    bad.extend_from_slice(b"/x\0y");
    let bad = ShmDir::new(Path::new(std::ffi::OsStr::from_bytes(&bad)));
    assert_eq!(
        bad.open("/n", RW | CREAT, Mode::S_IRWXU)
            .unwrap_err()
            .raw_os_error(),
        libc::EINVAL
    );
    assert_eq!(bad.unlink("/n").unwrap_err().raw_os_error(), libc::EINVAL);
    // A directory path too long for PATH_MAX is ENAMETOOLONG, built in place.
    let long = ShmDir::new(format!("/{}", "d".repeat(5000)));
    assert_eq!(
        long.open("/n", RW, Mode::empty())
            .unwrap_err()
            .raw_os_error(),
        libc::ENAMETOOLONG
    );
}

/// Makes the lock file at `lock` as a holder by the protocol does (ours, 0600) and locks it.
fn hold_a_lock_file(lock: &Path) -> std::fs::File {
    let held = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(lock)
        .unwrap();
    flock(&held, libc::LOCK_EX);
    held
}

/// Returns once the trace shows the creator finding the lock busy (within 30 s).
fn until_the_creator_waits(steps: &Mutex<Vec<String>>) {
    let t0 = Instant::now();
    while !steps
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.starts_with("lock busy"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the creator never waited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A holder by the protocol (a lock file of ours, 0600, flocked), a creator of the same name
/// that waits for it, and the holder making the object and releasing: the waiter opens that
/// object without making a lock file of its own. Returns the waiter's result and trace.
fn wait_for_a_holder(flags: OFlag) -> (Result<OwnedFd, i32>, Vec<String>, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let (lock, data) = (d.path().join(".SHMLx"), d.path().join(".SHMDx"));
    let held = hold_a_lock_file(&lock);
    let steps = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&steps);
    let shm = ShmDir::new(d.path()).with_trace(move |s| log.lock().unwrap().push(s.to_string()));
    let waiter = std::thread::spawn(move || {
        shm.open("/x", flags, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|e| e.raw_os_error())
    });
    until_the_creator_waits(&steps);
    // The holder's work and release: create, unlink the lock file while held, unlock.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&data)
        .unwrap();
    std::fs::remove_file(&lock).unwrap();
    flock(&held, libc::LOCK_UN);
    drop(held);
    let r = waiter.join().unwrap();
    assert!(!lock.exists(), "a lock file was left behind");
    let steps = steps.lock().unwrap().clone();
    (r, steps, d)
}

/// The steps after the waiter learnt that the holder released the lock.
fn after_release(steps: &[String]) -> &[String] {
    let at = steps
        .iter()
        .position(|s| s.contains("was released and unlinked by its holder"))
        .unwrap_or_else(|| panic!("no release seen: {steps:#?}"));
    &steps[at + 1..]
}

#[test]
fn a_creator_released_by_the_holder_opens_its_object_without_a_lock_of_its_own() {
    let (r, steps, d) = wait_for_a_holder(RW | CREAT);
    let fd = r.unwrap();
    let st = nix::sys::stat::fstat(&fd).unwrap();
    let data = std::fs::metadata(d.path().join(".SHMDx")).unwrap();
    assert_eq!((st.st_dev, st.st_ino), (data.dev(), data.ino()));
    let after = after_release(&steps);
    assert!(
        !after.iter().any(|s| s.starts_with("lock open")),
        "a lock file was opened after the release: {after:#?}"
    );
    assert!(after.iter().any(|s| s.starts_with("fstat ")), "{after:#?}");
}

#[test]
fn an_exclusive_creator_released_by_the_holder_answers_eexist_without_a_lock_of_its_own() {
    let (r, steps, _d) = wait_for_a_holder(RW | CREAT | EXCL);
    assert_eq!(r.unwrap_err(), libc::EEXIST);
    let after = after_release(&steps);
    assert!(
        !after.iter().any(|s| s.starts_with("lock open")),
        "a lock file was opened after the release: {after:#?}"
    );
}

#[test]
fn a_creator_released_without_an_object_takes_the_lock_and_creates() {
    // The holder made nothing (it failed, or unlinked again): the waiter locks and creates.
    let d = tempfile::tempdir().unwrap();
    let lock = d.path().join(".SHMLy");
    let held = hold_a_lock_file(&lock);
    let steps = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&steps);
    let shm = ShmDir::new(d.path()).with_trace(move |s| log.lock().unwrap().push(s.to_string()));
    let waiter = std::thread::spawn(move || shm.open("/y", RW | CREAT, Mode::S_IRWXU));
    until_the_creator_waits(&steps);
    std::fs::remove_file(&lock).unwrap();
    flock(&held, libc::LOCK_UN);
    drop(held);
    let fd = waiter.join().unwrap().unwrap();
    let st = nix::sys::stat::fstat(&fd).unwrap();
    assert_eq!(st.st_nlink, 1);
    assert!(d.path().join(".SHMDy").exists());
    assert!(!lock.exists(), "a lock file was left behind");
    let steps = steps.lock().unwrap();
    let after = after_release(&steps);
    assert!(
        after.iter().any(|s| s.starts_with("lock acquired")),
        "{after:#?}"
    );
}
