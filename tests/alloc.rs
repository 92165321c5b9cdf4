//! The C entry points make no heap allocation on any path, success or error: a program may call
//! them from a signal handler that interrupted `malloc` (glibc's `shm_open` allocates nothing
//! either). A counting global allocator sees every Rust allocation of this test's thread while
//! each call runs; libc itself allocates nothing on these paths (open, fstat, flock, unlink,
//! mmap, getenv).
//!
//! One test in this binary, so that no other test thread allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{CStr, CString};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use tmpshm::capi::{self, Names};
use tmpshm_testkit::support::*;

struct Counting;

/// The thread whose allocations count (0: none).
static WATCHED: AtomicI64 = AtomicI64::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn tid() -> i64 {
    // SAFETY: gettid takes nothing and touches no memory.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

// SAFETY: every call is passed through to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if WATCHED.load(Ordering::Relaxed) == tid() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if WATCHED.load(Ordering::Relaxed) == tid() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded as received.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` with this thread's allocations counted; returns what it returned and the count.
fn counted<T>(f: impl FnOnce() -> T) -> (T, usize) {
    COUNT.store(0, Ordering::Relaxed);
    WATCHED.store(tid(), Ordering::Relaxed);
    let r = f();
    WATCHED.store(0, Ordering::Relaxed);
    (r, COUNT.load(Ordering::Relaxed))
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

const RW: i32 = libc::O_RDWR;
const CREAT: i32 = libc::O_CREAT;
const EXCL: i32 = libc::O_EXCL;

#[test]
fn no_c_entry_point_allocates_on_any_path() {
    let d = shared_tempdir();
    let dir = d.path();
    std::env::set_var("TMPSHM_DIR", dir);
    std::env::remove_var("TMPSHM_CROSS_USER");
    std::env::remove_var("TMPSHM_NAMES");
    std::env::remove_var("TMPSHM_TRACE");
    let mut report = Vec::new();
    let mut check = |what: &str, f: &mut dyn FnMut() -> (i64, i32)| {
        let ((rc, e), n) = counted(&mut *f);
        report.push(format!("{what}: rc {rc} errno {e}: {n} allocations"));
        (rc, e, n)
    };
    let open = |name: &CStr, oflag: i32, mode: u32, names: Names| {
        // SAFETY: a NUL-terminated name.
        let fd = unsafe { capi::shm_open(name.as_ptr(), oflag, mode, names) };
        let e = errno();
        if fd >= 0 {
            // SAFETY: the fd the call returned, ours to close.
            unsafe { libc::close(fd) };
        }
        (i64::from(fd), e)
    };
    let unlink = |name: &CStr, names: Names| {
        // SAFETY: a NUL-terminated name.
        let rc = unsafe { capi::shm_unlink(name.as_ptr(), names) };
        (i64::from(rc), errno())
    };
    // Warm up: whatever is set up once per process (std's random keys) happens here.
    open(c"/warm", CREAT | RW, 0o600, Names::Strict);
    unlink(c"/warm", Names::Strict);

    // Plants, made before counting.
    std::os::unix::fs::symlink("/etc/passwd", dir.join(".SHMDlink")).unwrap();
    nix::unistd::mkfifo(&dir.join(".SHMDfifo"), perm(0o600)).unwrap();
    std::fs::write(dir.join(".SHMDshared"), b"").unwrap();
    std::fs::set_permissions(dir.join(".SHMDshared"), PermissionsExt::from_mode(0o666)).unwrap();
    std::fs::write(dir.join(".SHMDtwice"), b"").unwrap();
    std::fs::hard_link(dir.join(".SHMDtwice"), dir.join("twice-elsewhere")).unwrap();
    // A busy lock file open to others, held here on another open file description.
    let lock = dir.join(".SHMLbusy");
    std::fs::write(&lock, b"").unwrap();
    std::fs::set_permissions(&lock, PermissionsExt::from_mode(0o644)).unwrap();
    let held = nix::fcntl::Flock::lock(
        std::fs::File::open(&lock).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    if is_root() {
        std::fs::write(dir.join(".SHMDforeign"), b"").unwrap();
        nix::unistd::chown(&dir.join(".SHMDforeign"), Some(NOBODY.into()), None).unwrap();
    } else {
        skip(
            "no_c_entry_point_allocates_on_any_path (the foreign file)",
            "needs root to chown",
        );
    }
    let long = CString::new(format!("/{}", "n".repeat(300))).unwrap();

    let s = Names::Strict;
    let g = Names::Glibc;
    type Case<'a> = (&'a str, Box<dyn FnMut() -> (i64, i32) + 'a>);
    let cases: Vec<Case> = vec![
        (
            "create",
            Box::new(|| open(c"/a", CREAT | EXCL | RW, 0o600, s)),
        ),
        ("open existing", Box::new(|| open(c"/a", RW, 0, s))),
        (
            "open read-only",
            Box::new(|| open(c"/a", libc::O_RDONLY, 0, s)),
        ),
        (
            "open O_TRUNC",
            Box::new(|| open(c"/a", RW | libc::O_TRUNC, 0, s)),
        ),
        (
            "exclusive create of an existing object",
            Box::new(|| open(c"/a", CREAT | EXCL | RW, 0o600, s)),
        ),
        ("ENOENT", Box::new(|| open(c"/none", RW, 0, s))),
        ("invalid name", Box::new(|| open(c"no-slash", RW, 0, s))),
        (
            "invalid flags",
            Box::new(|| open(c"/a", libc::O_WRONLY, 0, s)),
        ),
        (
            "name too long",
            Box::new(|| open(&long, CREAT | RW, 0o600, s)),
        ),
        ("symlink", Box::new(|| open(c"/link", RW, 0, s))),
        ("FIFO", Box::new(|| open(c"/fifo", libc::O_RDONLY, 0, s))),
        (
            "others can read and write",
            Box::new(|| open(c"/shared", RW, 0, s)),
        ),
        ("two links", Box::new(|| open(c"/twice", RW, 0, s))),
        (
            "busy lock open to others",
            Box::new(|| open(c"/busy", CREAT | RW, 0o600, s)),
        ),
        ("glibc names", Box::new(|| open(c"//a", RW, 0, g))),
        ("unlink", Box::new(|| unlink(c"/a", s))),
        ("unlink ENOENT", Box::new(|| unlink(c"/a", s))),
        (
            "unlink refused name, glibc rules",
            Box::new(|| unlink(c"/x/y", g)),
        ),
    ];
    let mut expect = vec![
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (-1, libc::EEXIST),
        (-1, libc::ENOENT),
        (-1, libc::EINVAL),
        (-1, libc::EINVAL),
        (-1, libc::ENAMETOOLONG),
        (-1, libc::ELOOP),
        (-1, libc::EINVAL),
        (-1, libc::EPERM),
        (-1, libc::EPERM),
        (-1, libc::EPERM),
        (0, 0),
        (0, 0),
        (-1, libc::ENOENT),
        (-1, libc::ENOENT),
    ]
    .into_iter();
    let mut total = 0;
    for (what, mut f) in cases {
        let (rc, e, n) = check(what, &mut *f);
        let (want_ok, want_e) = expect.next().unwrap();
        if want_ok == 0 {
            assert!(rc >= 0, "{what}: errno {e}");
        } else {
            assert_eq!((rc, e), (-1, want_e), "{what}");
        }
        total += n;
    }
    if is_root() {
        let (rc, e, n) = check("foreign owner", &mut || open(c"/foreign", RW, 0, s));
        assert_eq!((rc, e), (-1, libc::EPERM));
        total += n;
    }
    // The environment's own failure modes, and tracing to a file.
    std::env::set_var("TMPSHM_DIR", "relative");
    let (rc, e, n) = check("relative TMPSHM_DIR", &mut || open(c"/a", RW, 0, s));
    assert_eq!((rc, e), (-1, libc::EINVAL));
    total += n;
    std::env::set_var("TMPSHM_DIR", dir.join("missing"));
    let (rc, e, n) = check("missing directory, interposer", &mut || {
        // SAFETY: a NUL-terminated name.
        let fd = unsafe { capi::interposed_shm_open(c"/a".as_ptr(), CREAT | RW, 0o600) };
        (i64::from(fd), errno())
    });
    assert_eq!((rc, e), (-1, libc::ENOENT));
    total += n;
    std::env::set_var("TMPSHM_DIR", dir);
    std::env::set_var("TMPSHM_TRACE", dir.join("trace.log"));
    let (rc, _, n) = check("traced create", &mut || open(c"/t", CREAT | RW, 0o600, s));
    assert!(rc >= 0);
    total += n;
    std::env::remove_var("TMPSHM_TRACE");
    assert!(std::fs::read_to_string(dir.join("trace.log"))
        .unwrap()
        .contains("tmpshm_shm_open(\"/t\""));

    // Semaphores: create, open again (the same address), close twice, unlink, errors.
    let sem_open = |name: &CStr, oflag: i32, value: u32| {
        // SAFETY: a NUL-terminated name.
        let p = unsafe { capi::sem_open(name.as_ptr(), oflag, 0o600, value, s) };
        (p as i64, errno())
    };
    let (a, _, n1) = check("sem_open create", &mut || sem_open(c"/s", CREAT | EXCL, 1));
    let (b, _, n2) = check("sem_open existing", &mut || sem_open(c"/s", 0, 0));
    assert!(a != 0 && a == b, "the same address");
    let (_, e, n3) = check("sem_open EEXIST", &mut || sem_open(c"/s", CREAT | EXCL, 1));
    assert_eq!(e, libc::EEXIST);
    let (_, e, n4) = check("sem_open value too large", &mut || {
        sem_open(c"/big", CREAT, u32::MAX)
    });
    assert_eq!(e, libc::EINVAL);
    let close = |p: i64| {
        // SAFETY: an address sem_open returned (or not: then EINVAL).
        let rc = unsafe { capi::sem_close(p as *mut libc::sem_t) };
        (i64::from(rc), errno())
    };
    let (rc1, _, n5) = check("sem_close", &mut || close(a));
    let (rc2, _, n6) = check("sem_close, last", &mut || close(a));
    let (rc3, e, n7) = check("sem_close, not open", &mut || close(a));
    assert_eq!((rc1, rc2, rc3, e), (0, 0, -1, libc::EINVAL));
    let (rc, _, n8) = check("sem_unlink", &mut || {
        // SAFETY: a NUL-terminated name.
        (
            i64::from(unsafe { capi::sem_unlink(c"/s".as_ptr(), s) }),
            errno(),
        )
    });
    assert_eq!(rc, 0);
    total += n1 + n2 + n3 + n4 + n5 + n6 + n7 + n8;

    drop(held);
    std::env::remove_var("TMPSHM_DIR");
    assert_eq!(total, 0, "allocations:\n{}", report.join("\n"));
    println!("{}", report.join("\n"));
}
