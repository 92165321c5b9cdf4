//! `EINTR` is never an answer: every syscall that can be interrupted goes through here. Also
//! the space reservation, which has no portable call.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Calls `f` until it answers something other than `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `flock(2)` on an owned fd, retried on `EINTR`; the fd comes back with the error.
pub(crate) fn flock(
    mut fd: OwnedFd,
    arg: FlockArg,
) -> std::result::Result<Flock<OwnedFd>, (OwnedFd, Errno)> {
    loop {
        match Flock::lock(fd, arg) {
            Ok(l) => return Ok(l),
            Err((back, Errno::EINTR)) => fd = back,
            Err(other) => return Err(other),
        }
    }
}

/// Unlocks and closes, never panicking: nix's `Flock` panics in `drop` when `LOCK_UN` fails
/// (possible only on exotic file systems), and a panic must not escape a release path (nor the
/// C ABI). Closing the fd releases the lock anyway, unless a forked child shares it.
pub(crate) fn unlock_and_close(locked: Flock<OwnedFd>) {
    if let Err((still_locked, _)) = locked.unlock() {
        let raw = still_locked.as_raw_fd();
        std::mem::forget(still_locked);
        // SAFETY: the forgotten `Flock` owned this fd; this is now its only owner and close.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
    }
}

/// Whether a size change only moves the end of the file, or also reserves the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// The file system allocated the blocks: writes to the range cannot fail for want of space.
    Yes,
    /// The file system cannot reserve (`fallocate` unsupported): the range may be sparse.
    Unsupported,
}

/// Reserves `len` bytes at `offset` (`fallocate(2)`), so that a later write to that range
/// through a mapping cannot raise `SIGBUS` because the file system is full: `ENOSPC` comes
/// now instead. `keep_size` leaves the file's size alone; otherwise it grows to cover the
/// range.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(clippy::unnecessary_cast)] // off_t differs between libcs
pub(crate) fn reserve(
    fd: std::os::fd::BorrowedFd<'_>,
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

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn reserve(
    _fd: std::os::fd::BorrowedFd<'_>,
    _offset: u64,
    _len: u64,
    _keep_size: bool,
) -> nix::Result<Reserved> {
    Ok(Reserved::Unsupported)
}
