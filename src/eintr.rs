//! `EINTR` is never an answer: every syscall that can be interrupted goes through here.

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
