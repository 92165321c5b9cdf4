//! Shared pieces of the tmpshm benchmark binaries: timing, statistics, the native calls
//! (the only place in the workspace besides compat tests that calls the system's `shm_open`),
//! and the machine description printed above every table.
#![deny(missing_docs)]

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Instant;

/// The system's own `shm_open(3)`: the oracle every ratio is measured against.
///
/// # Errors
/// The errno of the native call.
pub fn native_open(name: &CString, flags: libc::c_int, mode: libc::mode_t) -> Result<OwnedFd, i32> {
    // SAFETY: `name` is a valid NUL-terminated string; shm_open has no other preconditions.
    let fd = unsafe { libc::shm_open(name.as_ptr(), flags, mode) };
    if fd < 0 {
        Err(errno())
    } else {
        // SAFETY: shm_open returned a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// The system's own `shm_unlink(3)`.
///
/// # Errors
/// The errno of the native call.
pub fn native_unlink(name: &CString) -> Result<(), i32> {
    // SAFETY: `name` is a valid NUL-terminated string.
    if unsafe { libc::shm_unlink(name.as_ptr()) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs `f` `iters` times and returns the mean nanoseconds per call.
pub fn ns_per_op(iters: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

/// The median of `v` (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `q` quantile (0..=1) of sorted latencies.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// A small, fast pseudo-random generator (xorshift64*), so workers need no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator; a zero seed is replaced.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One line describing the machine and its load, printed above the tables.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {kernel}, load average {load}")
}

/// The file system type of `path` (from /proc/self/mounts, longest matching mount point).
pub fn fs_type(path: &std::path::Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let path = path.to_string_lossy();
    mounts
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (_, mp, ty) = (it.next()?, it.next()?, it.next()?);
            let under = path == mp || mp == "/" || path.starts_with(&format!("{mp}/"));
            under.then(|| (mp.len(), ty.to_string()))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, ty)| ty)
}

/// Bare syscalls that abort on failure, for timing the floor under tmpshm's operations.
pub mod sys {
    use std::ffi::CString;

    fn check(rc: libc::c_int, what: &str) -> libc::c_int {
        if rc < 0 {
            eprintln!("{what}: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
        rc
    }

    /// `open(2)`.
    pub fn open(path: &CString, flags: libc::c_int, mode: libc::mode_t) -> libc::c_int {
        // SAFETY: a valid NUL-terminated path.
        check(unsafe { libc::open(path.as_ptr(), flags, mode) }, "open")
    }

    /// `close(2)` of an fd from [`open`].
    pub fn close(fd: libc::c_int) {
        // SAFETY: closing an fd this module opened and nothing else owns.
        check(unsafe { libc::close(fd) }, "close");
    }

    /// `fstat(2)`.
    pub fn fstat(fd: libc::c_int) {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: st is writable memory of the right size.
        check(unsafe { libc::fstat(fd, st.as_mut_ptr()) }, "fstat");
    }

    /// `geteuid(2)`.
    pub fn geteuid() {
        // SAFETY: no preconditions.
        std::hint::black_box(unsafe { libc::geteuid() });
    }

    /// `flock(2)`.
    pub fn flock(fd: libc::c_int, op: libc::c_int) {
        // SAFETY: no memory is passed.
        check(unsafe { libc::flock(fd, op) }, "flock");
    }

    /// `fcntl(F_SETFL)`.
    pub fn setfl(fd: libc::c_int, flags: libc::c_int) {
        // SAFETY: no memory is passed.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }, "fcntl");
    }

    /// `lstat(2)` of a path that exists.
    pub fn lstat(path: &CString) {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid path; st is writable memory of the right size.
        check(
            unsafe { libc::lstat(path.as_ptr(), st.as_mut_ptr()) },
            "lstat",
        );
    }

    /// `lstat(2)` of a path that must not exist (`ENOENT`).
    pub fn lstat_absent(path: &CString) {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid path; st is writable memory of the right size.
        let rc = unsafe { libc::lstat(path.as_ptr(), st.as_mut_ptr()) };
        if rc == 0 {
            eprintln!("lstat: {path:?} exists");
            std::process::exit(1);
        }
    }

    /// `dup3(from, to, O_CLOEXEC)`.
    pub fn dup3(from: libc::c_int, to: libc::c_int) {
        // SAFETY: no memory is passed; both fds are the caller's.
        check(unsafe { libc::dup3(from, to, libc::O_CLOEXEC) }, "dup3");
    }

    /// `unlink(2)`.
    pub fn unlink(path: &CString) {
        // SAFETY: a valid NUL-terminated path.
        check(unsafe { libc::unlink(path.as_ptr()) }, "unlink");
    }
}
