//! The few raw system calls tmpshm needs beyond nix's wrappers, and the small types that make
//! them safe to use: `EINTR` retry, a path on the stack, a `flock` guard whose drop never
//! panics, `renameat2`, `fallocate`, the auxiliary vector, the environment, `/proc/locks`.
//!
//! Everything here works without the heap (but for the `/proc/locks` reader, which only
//! listings use), so that the C entry points can promise no allocation on any path.
#![allow(unsafe_code)]

use std::ffi::{CStr, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// Calls `f` until it answers something other than `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// The longest path, with its NUL, that `open(2)` takes.
pub(crate) const PATH_CAP: usize = libc::PATH_MAX as usize;

/// A NUL-terminated path built on the stack (no allocation, no zeroing).
pub(crate) struct StackPath {
    buf: [MaybeUninit<u8>; PATH_CAP],
    /// Bytes before the NUL.
    len: usize,
}

impl StackPath {
    /// An empty path (`""`), to be filled in place with [`StackPath::set`]. Nothing but its
    /// first byte is written: the buffer is never zeroed, and built where it lives (a
    /// 4 KiB value returned or moved is a 4 KiB copy).
    #[inline(always)]
    pub(crate) fn new() -> StackPath {
        let mut p = StackPath {
            buf: [const { MaybeUninit::uninit() }; PATH_CAP],
            len: 0,
        };
        p.buf[0].write(0);
        p
    }

    /// Makes this the concatenation of `parts`, in place; `false` (and `""`) if it does not
    /// fit `PATH_MAX` (the kernel would answer `ENAMETOOLONG`). No part may contain a NUL
    /// byte; the callers check names and directories for NUL before building paths.
    pub(crate) fn set(&mut self, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.len = 0;
        self.buf[0].write(0);
        if len >= PATH_CAP {
            return false;
        }
        let mut at = 0;
        for part in parts {
            debug_assert!(!part.contains(&0), "NUL inside a path part");
            // SAFETY: `at + part.len() <= len < PATH_CAP`, so the destination range is inside
            // `buf`; `part` is a distinct, initialised slice (no overlap with our buffer).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr(),
                    self.buf.as_mut_ptr().add(at).cast::<u8>(),
                    part.len(),
                );
            }
            at += part.len();
        }
        self.buf[len].write(0);
        self.len = len;
        true
    }

    /// The concatenation of `parts`, or `None` if it does not fit `PATH_MAX`: [`StackPath::set`]
    /// on a new value, for paths off the hot paths (the value is moved on return).
    pub(crate) fn join(parts: &[&[u8]]) -> Option<StackPath> {
        let mut p = StackPath::new();
        p.set(parts).then_some(p)
    }

    /// The path as a C string.
    pub(crate) fn as_cstr(&self) -> &CStr {
        // SAFETY: `new` and `set` initialise bytes 0..=len, with a NUL at `len` and none before
        // it (the parts hold no NUL).
        unsafe {
            let bytes = std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.len + 1);
            CStr::from_bytes_with_nul_unchecked(bytes)
        }
    }

    /// The path, for messages and traces.
    pub(crate) fn as_path(&self) -> &Path {
        as_path(self.as_cstr())
    }
}

/// Views a C path as a `Path`.
pub(crate) fn as_path(c: &CStr) -> &Path {
    Path::new(OsStr::from_bytes(c.to_bytes()))
}

/// `flock(LOCK_EX)` held on an open file; dropping it unlocks and closes, and never panics.
///
/// The explicit `LOCK_UN` matters when a forked child shares the open file description: a
/// close alone would leave the lock held for as long as the child keeps its copy. An unlock
/// that fails (possible only on exotic file systems) is ignored: the close still releases the
/// lock unless a child shares the file, and a release path must not panic (nor unwind into C).
#[derive(Debug)]
pub(crate) struct Locked(OwnedFd);

impl Locked {
    /// `flock(fd, LOCK_EX)` (`LOCK_EX|LOCK_NB` when `wait` is false), retried on `EINTR`; the
    /// fd comes back with the error.
    pub(crate) fn lock(fd: OwnedFd, wait: bool) -> Result<Locked, (OwnedFd, Errno)> {
        let op = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        match retry(|| flock(fd.as_fd(), op)) {
            Ok(()) => Ok(Locked(fd)),
            Err(e) => Err((fd, e)),
        }
    }

    /// The locked file.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.0
    }

    /// Unlocks and hands back the fd (which closes at once if unlocking fails: that releases
    /// the lock as well).
    pub(crate) fn unlock(self) -> Result<OwnedFd, Errno> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the fd is moved out exactly once.
        let fd = unsafe { std::ptr::read(&this.0) };
        flock(fd.as_fd(), libc::LOCK_UN).map(|()| fd)
    }
}

impl AsFd for Locked {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = flock(self.0.as_fd(), libc::LOCK_UN);
    }
}

impl Locked {
    /// Unlocks and closes, putting `fd` in the lock's descriptor number when that is lower:
    /// `dup3(fd, lock, O_CLOEXEC)` closes the lock file and copies `fd` into its place in one
    /// call, so that an fd opened after the lock file (a create's object) ends up at the lowest
    /// free number, as POSIX wants of `shm_open`, for one call more than a plain close.
    pub(crate) fn unlock_moving(self, fd: OwnedFd) -> OwnedFd {
        let low = self.0.as_raw_fd();
        if low > fd.as_raw_fd() {
            drop(self);
            return fd;
        }
        let _ = flock(self.0.as_fd(), libc::LOCK_UN);
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the lock's fd is taken out exactly once.
        let lock = unsafe { std::ptr::read(&this.0) }.into_raw_fd();
        match dup_into(fd.as_raw_fd(), lock) {
            // SAFETY: `n` is our new copy of `fd`, owned by nothing else; `fd` itself closes
            // when it goes out of scope.
            Ok(n) if n < fd.as_raw_fd() => unsafe {
                <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n)
            },
            // Without dup3, another thread can take the lock's number first, and the copy
            // lands higher: keep `fd`, the lower one.
            Ok(n) => {
                // SAFETY: `n` is our copy, owned by nothing else.
                drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) });
                fd
            }
            Err(_) => fd,
        }
    }
}

/// Closes `lock` and makes a close-on-exec copy of `fd` at its number: `dup3(fd, lock,
/// O_CLOEXEC)`, one call. The copy's number, or the error (`lock` is closed either way).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "illumos"
))]
fn dup_into(fd: libc::c_int, lock: libc::c_int) -> nix::Result<libc::c_int> {
    match retry(|| dup3_cloexec(fd, lock)) {
        Ok(()) => Ok(lock),
        Err(e) => {
            // SAFETY: `lock` is still the lock file's fd, ours to close.
            unsafe { libc::close(lock) };
            Err(e)
        }
    }
}

/// `dup3(fd, to, O_CLOEXEC)`.
#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "illumos"))]
fn dup3_cloexec(fd: libc::c_int, to: libc::c_int) -> nix::Result<()> {
    // SAFETY: both fds are open and ours; dup3 closes `to` and makes it a copy of `fd`.
    Errno::result(unsafe { libc::dup3(fd, to, libc::O_CLOEXEC) }).map(drop)
}

/// `dup3(fd, to, O_CLOEXEC)` on Android: bionic has `dup3` (API level 21), the `libc` crate
/// binds it only elsewhere, so it is called through `syscall(2)`.
#[cfg(target_os = "android")]
fn dup3_cloexec(fd: libc::c_int, to: libc::c_int) -> nix::Result<()> {
    // SAFETY: both fds are open and ours; dup3 closes `to` and makes it a copy of `fd`;
    // every argument is passed as the `long` the kernel reads.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_dup3,
            libc::c_long::from(fd),
            libc::c_long::from(to),
            libc::c_long::from(libc::O_CLOEXEC),
        )
    })
    .map(drop)
}

/// [`dup_into`] where there is no `dup3` (Apple's systems, ...): [`dup_into_fcntl`].
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "illumos"
)))]
fn dup_into(fd: libc::c_int, lock: libc::c_int) -> nix::Result<libc::c_int> {
    dup_into_fcntl(fd, lock)
}

/// Close `lock`, then copy `fd` to the lowest free number from `lock` up with
/// `F_DUPFD_CLOEXEC` (normally `lock` itself; another thread may take it in between). Two
/// calls where `dup3` makes one; compiled everywhere so that its test runs on Linux too.
#[cfg_attr(
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "illumos"
    ),
    allow(dead_code)
)]
fn dup_into_fcntl(fd: libc::c_int, lock: libc::c_int) -> nix::Result<libc::c_int> {
    // SAFETY: `lock` is ours to close; fcntl(F_DUPFD_CLOEXEC) takes an fd and an integer.
    unsafe { libc::close(lock) };
    // SAFETY: as above.
    retry(|| Errno::result(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lock) }))
}

/// `fstat(2)`, inlined so that the `stat` is filled where the caller keeps it (nix's wrapper
/// returns it by value: a 144-byte copy, twice over on the way up).
#[inline(always)]
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> nix::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable memory of the size fstat fills; it is read only on success.
    Errno::result(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// `fcntl(fd, F_SETFL, 0)`: clears the file status flags (`O_NONBLOCK`, `O_APPEND`, ...) that
/// `F_SETFL` can change; the access mode and creation flags stay. One raw call (nix's wrapper
/// costs twice the instructions of the call itself).
pub(crate) fn clear_status_flags(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: fcntl with F_SETFL takes an fd and an integer; no memory of ours is involved.
    Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) }).map(drop)
}

/// `flock(2)`.
pub(crate) fn flock(fd: BorrowedFd<'_>, op: libc::c_int) -> nix::Result<()> {
    // SAFETY: flock takes an fd and an integer; no memory of ours is involved.
    Errno::result(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(drop)
}

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)`: moves `from` to `to` unless
/// something is at `to`, in one step. Called through `syscall(2)`: nix wraps it only for
/// glibc, and Android's libc only from API level 30.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(clippy::unnecessary_cast)] // RENAME_NOREPLACE is c_uint on Linux, c_int on Android
pub(crate) fn rename_noreplace(from: &CStr, to: &CStr) -> nix::Result<()> {
    // SAFETY: both paths are NUL-terminated and outlive the call, which only reads them; every
    // argument is passed as the `long` that the kernel reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD as libc::c_long,
            from.as_ptr(),
            libc::AT_FDCWD as libc::c_long,
            to.as_ptr(),
            libc::RENAME_NOREPLACE as libc::c_long,
        )
    };
    Errno::result(r).map(drop)
}

/// No `renameat2` here: the caller links and unlinks instead.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn rename_noreplace(_from: &CStr, _to: &CStr) -> nix::Result<()> {
    Err(Errno::ENOSYS)
}

/// Whether [`reserve`] allocated the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// The file system allocated them: writes to the range cannot fail for want of space.
    #[cfg_attr(target_vendor = "apple", allow(dead_code))]
    Yes,
    /// The file system cannot reserve (`fallocate` unsupported): nothing was done.
    Unsupported,
}

/// `fallocate(2)`: reserves `len` bytes at `offset`, so that a later write to that range
/// through a mapping cannot raise `SIGBUS` because the file system is full (`ENOSPC` comes
/// now instead). `keep_size` leaves the file's size alone; otherwise it grows to cover the
/// range.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(clippy::unnecessary_cast)] // off_t differs between libcs
pub(crate) fn reserve(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: u64,
    keep_size: bool,
) -> nix::Result<Reserved> {
    if len == 0 {
        return Ok(Reserved::Yes);
    }
    let off = i64::try_from(offset).map_err(|_| Errno::EFBIG)?;
    let n = i64::try_from(len).map_err(|_| Errno::EFBIG)?;
    let mode = if keep_size {
        libc::FALLOC_FL_KEEP_SIZE
    } else {
        0
    };
    let r = retry(|| {
        // SAFETY: fallocate takes an fd and integers; no memory of ours is involved.
        Errno::result(unsafe {
            libc::fallocate(fd.as_raw_fd(), mode, off as libc::off_t, n as libc::off_t)
        })
    });
    match r {
        Ok(_) => Ok(Reserved::Yes),
        Err(Errno::EOPNOTSUPP | Errno::ENOSYS) => Ok(Reserved::Unsupported),
        Err(e) => Err(e),
    }
}

/// `posix_fallocate(3)`, which always grows the file to cover the range: a reservation that
/// must keep the size (a mapping's) is not possible here. ZFS answers `EINVAL`: unsupported.
#[cfg(any(target_os = "freebsd", target_os = "illumos", target_os = "solaris"))]
pub(crate) fn reserve(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: u64,
    keep_size: bool,
) -> nix::Result<Reserved> {
    if len == 0 {
        return Ok(Reserved::Yes);
    }
    if keep_size {
        return Ok(Reserved::Unsupported);
    }
    let off = libc::off_t::try_from(offset).map_err(|_| Errno::EFBIG)?;
    let n = libc::off_t::try_from(len).map_err(|_| Errno::EFBIG)?;
    // SAFETY: posix_fallocate takes an fd and integers; no memory of ours is involved. It
    // returns the error number rather than setting errno.
    let r = retry(
        || match unsafe { libc::posix_fallocate(fd.as_raw_fd(), off, n) } {
            0 => Ok(()),
            e => Err(Errno::from_raw(e)),
        },
    );
    match r {
        Ok(()) => Ok(Reserved::Yes),
        Err(Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL) => Ok(Reserved::Unsupported),
        Err(e) => Err(e),
    }
}

/// No way to reserve here: nothing is reserved.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "illumos",
    target_os = "solaris"
)))]
pub(crate) fn reserve(
    _fd: BorrowedFd<'_>,
    _offset: u64,
    _len: u64,
    _keep_size: bool,
) -> nix::Result<Reserved> {
    Ok(Reserved::Unsupported)
}

/// Whether this process runs with privileges its invoker does not have (set-user-ID,
/// set-group-ID, file capabilities): then its environment must not be trusted. Where the
/// kernel fixes the answer at `execve` (Linux's `AT_SECURE`) it is asked for once and kept;
/// elsewhere at every call: `issetugid` also turns true when a process changes its ids, and
/// compared ids can change.
pub(crate) fn secure_execution() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    const FIXED_AT_EXEC: bool = cfg!(any(target_os = "linux", target_os = "android"));
    if !FIXED_AT_EXEC {
        return secure_execution_now();
    }
    // 0: not asked yet; 1: no; 2: yes. Racing first callers compute the same answer.
    static SECURE: AtomicU8 = AtomicU8::new(0);
    match SECURE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let secure = secure_execution_now();
            SECURE.store(if secure { 2 } else { 1 }, Ordering::Relaxed);
            secure
        }
    }
}

/// Whether this process runs with privileges its invoker does not have (set-user-ID,
/// set-group-ID, file capabilities): then its environment must not be trusted. This is the
/// test glibc's `secure_getenv` makes.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn secure_execution_now() -> bool {
    // SAFETY: getauxval reads the auxiliary vector the kernel gave this process; no memory of
    // ours is involved.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Whether this process runs with privileges its invoker does not have: `issetugid(2)` on
/// the BSDs and Apple's systems.
#[cfg(any(
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly",
    target_vendor = "apple"
))]
fn secure_execution_now() -> bool {
    // SAFETY: issetugid takes nothing and touches no memory of ours.
    unsafe { libc::issetugid() != 0 }
}

/// Whether this process runs with privileges its invoker does not have: its real and
/// effective ids differ (where nothing better is known, illumos included).
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly",
    target_vendor = "apple"
)))]
fn secure_execution_now() -> bool {
    use nix::unistd::{getegid, geteuid, getgid, getuid};
    getuid() != geteuid() || getgid() != getegid()
}

/// `getenv(3)`, without copying: the value as it is in the environment now. For the C entry
/// points, which must not allocate; the Rust API reads the environment through `std::env`,
/// which keeps it consistent with `std::env::set_var` in other threads.
pub(crate) fn getenv(name: &CStr) -> Option<&'static CStr> {
    // SAFETY: `name` is NUL-terminated; getenv returns NULL or a NUL-terminated string in the
    // environment, which lives until the environment is changed. C callers of our entry
    // points accept that contract, as they do for their own getenv.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        (!p.is_null()).then(|| CStr::from_ptr(p))
    }
}

/// The variables the C entry points read, as they are in the environment now.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Vars {
    /// `TMPSHM_DIR`.
    pub(crate) dir: Option<&'static CStr>,
    /// `TMPSHM_CROSS_USER`.
    pub(crate) cross_user: Option<&'static CStr>,
    /// `TMPSHM_TRACE`.
    pub(crate) trace: Option<&'static CStr>,
    /// `TMPSHM_NAMES`.
    pub(crate) names: Option<&'static CStr>,
}

/// [`Vars`], in one pass over the environment (four `getenv` calls would walk it four times),
/// without copying or allocating. As `getenv`, the first entry of a name wins.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn vars() -> Vars {
    extern "C" {
        // glibc, musl and bionic all define it (POSIX's `environ`); `mut`: `setenv` may
        // replace it.
        static mut environ: *const *const libc::c_char;
    }
    let mut v = Vars::default();
    // SAFETY: `environ` is NULL or a NULL-terminated array of NUL-terminated strings, which
    // live until the environment is changed: the contract `getenv` has, which C callers of our
    // entry points accept (see `getenv` above). We only read it. Each slot is loaded once: a
    // thread that runs `unsetenv` meanwhile shifts the slots down, and a second load could
    // find the array's end. Such a thread (POSIX leaves it undefined) can make this pass miss
    // a variable, as `getenv` can in musl and in glibc before 2.41.
    unsafe {
        let mut p = std::ptr::addr_of!(environ).read();
        if p.is_null() {
            return v;
        }
        loop {
            let entry = p.read_volatile().cast::<u8>();
            if entry.is_null() {
                break;
            }
            p = p.add(1);
            // Most entries differ at the first byte. Byte by byte, never past an entry's NUL
            // (a mismatch stops the comparison at the NUL at the latest).
            let starts = |at: usize, with: &[u8]| {
                with.iter()
                    .enumerate()
                    .all(|(i, &b)| *entry.add(at + i) == b)
            };
            if *entry != b'T' || !starts(1, b"MPSHM_") {
                continue;
            }
            let (slot, value_at) = match *entry.add(7) {
                b'D' if starts(8, b"IR=") => (&mut v.dir, 11),
                b'C' if starts(8, b"ROSS_USER=") => (&mut v.cross_user, 18),
                b'T' if starts(8, b"RACE=") => (&mut v.trace, 13),
                b'N' if starts(8, b"AMES=") => (&mut v.names, 13),
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(CStr::from_ptr(entry.add(value_at).cast()));
            }
        }
    }
    v
}

/// [`Vars`], one `getenv` per variable.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn vars() -> Vars {
    Vars {
        dir: getenv(c"TMPSHM_DIR"),
        cross_user: getenv(c"TMPSHM_CROSS_USER"),
        trace: getenv(c"TMPSHM_TRACE"),
        names: getenv(c"TMPSHM_NAMES"),
    }
}

/// `write(2)` of all of `buf` (short writes and `EINTR` retried); errors are ignored by the
/// callers, which only report.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> nix::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| nix::unistd::write(fd, buf))?;
        if n == 0 {
            return Err(Errno::EIO);
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// The standard error stream.
pub(crate) fn stderr() -> BorrowedFd<'static> {
    // SAFETY: fd 2 is the process's standard error for its whole life (closed, a write to it
    // fails with EBADF, which the callers ignore).
    unsafe { BorrowedFd::borrow_raw(2) }
}

/// `sem_init(sem, 1, value)`: a process-shared semaphore in shared memory.
///
/// # Safety
/// `sem` points to writable memory of `size_of::<sem_t>()` bytes.
#[cfg(not(target_vendor = "apple"))]
pub(crate) unsafe fn sem_init_shared(sem: *mut libc::sem_t, value: u32) -> nix::Result<()> {
    // SAFETY: as the caller promises.
    Errno::result(unsafe { libc::sem_init(sem, 1, value) }).map(drop)
}

/// `sem_timedwait(3)` with an absolute `CLOCK_REALTIME` deadline.
///
/// # Safety
/// `sem` points to an initialised semaphore.
#[cfg(not(target_vendor = "apple"))]
pub(crate) unsafe fn sem_timedwait(sem: *mut libc::sem_t, at: &libc::timespec) -> nix::Result<()> {
    // SAFETY: as the caller promises; `at` outlives the call.
    Errno::result(unsafe { libc::sem_timedwait(sem, at) }).map(drop)
}

/// `sem_getvalue(3)`.
///
/// # Safety
/// `sem` points to an initialised semaphore.
#[cfg(not(target_vendor = "apple"))]
pub(crate) unsafe fn sem_getvalue(sem: *mut libc::sem_t) -> nix::Result<i32> {
    let mut v = 0;
    // SAFETY: as the caller promises; `v` is a valid int to write.
    Errno::result(unsafe { libc::sem_getvalue(sem, &mut v) }).map(|_| v)
}

// Apple's libc has no unnamed semaphores (no `sem_init`): named semaphores answer `ENOSYS`.

/// `sem_init` is missing here: `ENOSYS`.
///
/// # Safety
/// None.
#[cfg(target_vendor = "apple")]
pub(crate) unsafe fn sem_init_shared(_sem: *mut libc::sem_t, _value: u32) -> nix::Result<()> {
    Err(Errno::ENOSYS)
}

/// `sem_timedwait` is missing here: `ENOSYS`.
///
/// # Safety
/// None.
#[cfg(target_vendor = "apple")]
pub(crate) unsafe fn sem_timedwait(
    _sem: *mut libc::sem_t,
    _at: &libc::timespec,
) -> nix::Result<()> {
    Err(Errno::ENOSYS)
}

/// `sem_getvalue` is missing here: `ENOSYS`.
///
/// # Safety
/// None.
#[cfg(target_vendor = "apple")]
pub(crate) unsafe fn sem_getvalue(_sem: *mut libc::sem_t) -> nix::Result<i32> {
    Err(Errno::ENOSYS)
}

/// The file mode creation mask, read without changing it: from `/proc/self/status` (Linux
/// 4.7 and later), else with two `umask(2)` calls (which another thread creating a file in
/// between would see as 0o777).
pub(crate) fn umask() -> nix::sys::stat::Mode {
    use nix::sys::stat::Mode;
    if let Some(m) = umask_from_proc() {
        return m;
    }
    let old = nix::sys::stat::umask(Mode::all());
    nix::sys::stat::umask(old);
    old
}

fn umask_from_proc() -> Option<nix::sys::stat::Mode> {
    let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = retry(|| nix::fcntl::open(c"/proc/self/status", flags, nix::sys::stat::Mode::empty()))
        .ok()?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match retry(|| nix::unistd::read(&fd, &mut buf[len..])) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let text = &buf[..len];
    let at = text.windows(6).position(|w| w == b"Umask:")? + 6;
    let digits = text[at..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit());
    let mut v: u32 = 0;
    for d in digits {
        v = v.checked_mul(8)? + u32::from(d - b'0');
    }
    #[allow(clippy::unnecessary_cast)] // mode_t differs between platforms
    Some(nix::sys::stat::Mode::from_bits_truncate(v as libc::mode_t))
}

/// `flock` holders by `(major, minor, inode)`: see [`flock_holders`].
pub(crate) type HolderMap = std::collections::HashMap<(u64, u64, u64), u32>;

/// The pids of every process holding a `flock`, by inode, as `/proc/locks` gives them at one
/// moment; `None` where it cannot be read.
///
/// For display only: `/proc/locks` names the process that *took* a lock, not the processes
/// that share its open file description now (after a `fork`, or an `exec` of another program),
/// and inside a PID namespace it hides holders outside it. Nothing decides trust on it.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn flock_holders() -> Option<HolderMap> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let mut map = HolderMap::new();
    for line in locks.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"; waiters have "->" after the number.
        if f.len() < 6 || f[1] != "FLOCK" {
            continue;
        }
        let mut id = f[5].split(':');
        let (Some(maj), Some(min), Some(ino)) = (id.next(), id.next(), id.next()) else {
            continue;
        };
        let (Ok(maj), Ok(min), Ok(ino)) = (
            u64::from_str_radix(maj, 16),
            u64::from_str_radix(min, 16),
            ino.parse::<u64>(),
        ) else {
            continue;
        };
        // A holder outside our PID namespace shows as 0 or -1: unknown, never "absent".
        if let Ok(pid) = f[4].parse::<u32>() {
            if pid > 0 {
                map.entry((maj, min, ino)).or_insert(pid);
            }
        }
    }
    Some(map)
}

/// No `/proc/locks` here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn flock_holders() -> Option<HolderMap> {
    None
}

/// The key of a file in [`flock_holders`]: `/proc/locks` shows the device as
/// `major:minor` (hex), which Linux packs into `st_dev` as glibc's `gnu_dev_major` and
/// `gnu_dev_minor` unpack it (done here on the 64-bit value: 32-bit Android's `dev_t` is
/// narrower than its `st_dev`).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // the types differ
pub(crate) fn holder_key(st: &nix::sys::stat::FileStat) -> (u64, u64, u64) {
    let dev = st.st_dev as u64;
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor, st.st_ino as u64)
}

/// The key of a file in [`flock_holders`] (never found: there is no `/proc/locks` here).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // the types differ
pub(crate) fn holder_key(st: &nix::sys::stat::FileStat) -> (u64, u64, u64) {
    (st.st_dev as u64, 0, st.st_ino as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_paths_join_and_refuse_what_does_not_fit() {
        let p = StackPath::join(&[b"/tmp", b"/", b".SHMD", b"x"]).unwrap();
        assert_eq!(p.as_cstr().to_bytes(), b"/tmp/.SHMDx");
        assert_eq!(p.as_path(), Path::new("/tmp/.SHMDx"));
        let long = vec![b'd'; PATH_CAP - 1];
        assert!(StackPath::join(&[&long]).is_some());
        assert!(StackPath::join(&[&long, b"x"]).is_none());
        assert_eq!(StackPath::join(&[]).unwrap().as_cstr().to_bytes(), b"");
    }

    #[test]
    fn the_umask_is_read_without_changing_it() {
        let before = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
        assert_eq!(umask().bits(), 0o027);
        assert_eq!(umask_from_proc().map(|m| m.bits()), Some(0o027));
        nix::sys::stat::umask(before);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn holder_keys_unpack_the_device_as_libc_does() {
        let f = tempfile::tempfile().unwrap();
        let st = nix::sys::stat::fstat(&f).unwrap();
        let (major, minor, ino) = holder_key(&st);
        assert_eq!(major, u64::from(libc::major(st.st_dev)));
        assert_eq!(minor, u64::from(libc::minor(st.st_dev)));
        assert_eq!(ino, st.st_ino);
    }

    #[test]
    fn a_lock_can_be_handed_back_and_taken_again() {
        let f = tempfile::tempfile().unwrap();
        let locked = Locked::lock(OwnedFd::from(f), false).unwrap();
        let fd = locked.unlock().unwrap();
        let again = Locked::lock(fd, false).unwrap();
        drop(again);
    }

    #[test]
    fn moving_an_fd_down_into_the_lock_number_keeps_it_close_on_exec() {
        use std::os::fd::{AsRawFd, FromRawFd};
        let d = tempfile::tempdir().unwrap();
        for dup3 in [true, false] {
            let lock = std::fs::File::create(d.path().join("l"))
                .unwrap()
                .into_raw_fd();
            let data = std::fs::File::create(d.path().join("d")).unwrap();
            assert!(lock < data.as_raw_fd());
            let n = if dup3 {
                dup_into(data.as_raw_fd(), lock).unwrap()
            } else {
                dup_into_fcntl(data.as_raw_fd(), lock).unwrap()
            };
            assert_eq!(n, lock, "the copy takes the lock's number");
            // SAFETY: `n` is the copy just made, owned by nothing else.
            let moved = unsafe { OwnedFd::from_raw_fd(n) };
            let (a, b) = (fstat(moved.as_fd()).unwrap(), fstat(data.as_fd()).unwrap());
            assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
            // SAFETY: F_GETFD on our own fd.
            let flags = unsafe { libc::fcntl(moved.as_raw_fd(), libc::F_GETFD) };
            assert_ne!(flags & libc::FD_CLOEXEC, 0);
        }
    }
}
