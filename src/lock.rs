//! The creation lock: `flock(LOCK_EX)` on the inode linked at `<dir>/.SHML<name>`.
//!
//! illumos makes the lock "the file exists" and polls with `sleep(1)`; a crashed holder jams
//! the name for good. Here the lock is a kernel `flock`, so waiters block in the kernel and a
//! dead holder's lock vanishes with its last fd. The file still exists while held, so
//! existence-based lockers wait for us too. The protocol (docs/protocol.md gives it in full):
//!
//! 1. `open(lock, O_CREAT|O_EXCL|O_RDWR|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK, 0600)` (when shared
//!    across users: `0644`, set with `fchmod` so the umask cannot take it away); if the file
//!    exists, the same without `O_EXCL`, and on `EACCES` with `O_RDONLY` (`flock` works on any
//!    fd);
//! 2. a file found in place is checked ([`vet::lock`]) before anything else;
//! 3. `flock(LOCK_EX|LOCK_NB)`; if busy and the file is open to other users (without cross-user
//!    sharing), refuse at once: its holder may be one of them, who could hold it forever, and
//!    nothing about a holder's pid can be trusted; else block in `flock(LOCK_EX)`;
//! 4. `fstat`: `st_nlink == 0` means the holder before us released it while we waited: start
//!    again (a creator first looks at the name again without the lock:
//!    [`acquire_or_released`]). A file found in place is checked again, and if it is open to other users (without
//!    cross-user sharing) it is taken over: unlinked while held, as on release, and we start
//!    again with a fresh file of our own;
//! 5. release: `unlink(lock)` while still holding the `flock`, then `flock(LOCK_UN)` (so a copy
//!    of the fd inherited by a forked child does not keep it locked) and `close`.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{lstat, FileStat, Mode};

use crate::call::Call;
use crate::error::{At, Fail, Op, Role, Why};
use crate::object;
use crate::sys::{as_path, retry, Locked};
use crate::trace::Step;
use crate::vet;

/// The held lock. Dropping it releases it: unlink, then unlock, then close.
pub(crate) struct LockGuard<'a> {
    /// `None` only while dropping.
    file: Option<Locked>,
    path: &'a CStr,
    call: &'a Call<'a>,
}

/// Opens `path` as a lock file, refusing links and FIFOs without hanging. Also says whether we
/// created it: the first try is `O_EXCL`, and a file we made ourselves needs no vetting.
fn open_lock_file(call: &Call<'_>, path: &CStr) -> Result<(OwnedFd, bool), Fail> {
    let base = OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    // Only we may open our lock files, so only we can hold them: another user who could open
    // one (flock needs no write access) could hold it forever and make us wait. Shared objects
    // need lock files the other users can open.
    let mode = Mode::from_bits_truncate(if call.cross_user { 0o644 } else { 0o600 });
    let fail = |e| Fail::new(e, Op::Lock, At::Lock);
    // Any failure of the exclusive try (the file exists, or something odd is in the way) is
    // sorted out by the plain tries below, which give the precise error.
    if let Ok(fd) = call.open(Role::Lock, path, base | OFlag::O_RDWR | OFlag::O_EXCL, mode) {
        if call.cross_user {
            // Other users must be able to open it (read-only is enough for flock), whatever
            // our umask says.
            call.fchmod(fd.as_fd(), path, mode).map_err(fail)?;
        }
        return Ok((fd, true));
    }
    let e = match call.open(Role::Lock, path, base | OFlag::O_RDWR, mode) {
        Ok(fd) => return Ok((fd, false)),
        Err(Errno::EACCES) => match call.open(Role::Lock, path, base | OFlag::O_RDONLY, mode) {
            Ok(fd) => return Ok((fd, false)),
            Err(e) => e,
        },
        Err(e) => e,
    };
    Err(match e {
        Errno::EACCES => fail(e).why(match lstat(path) {
            Err(Errno::ENOENT) => Why::LockCannotCreate,
            _ => Why::LockUnopenable,
        }),
        _ => object::open_error(call, e, path, Op::Lock, Role::Lock, At::Lock),
    })
}

/// A `flock(2)` failure. Some file systems (certain FUSE and NFS mounts, some Android storage)
/// have no `flock`: that is `ENOSYS`, with a reason that names the cause, at once (the lock
/// is never skipped).
pub(crate) fn flock_error(e: Errno, at: At) -> Fail {
    match e {
        Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::ENOLCK => {
            Fail::new(Errno::ENOSYS, Op::Lock, at).why(Why::NoFlock(e))
        }
        e => Fail::new(e, Op::Lock, at),
    }
}

fn fstat_lock(fd: impl AsFd) -> Result<FileStat, Fail> {
    crate::sys::fstat(fd.as_fd()).map_err(|e| Fail::new(e, Op::Lock, At::Lock))
}

/// Unlinks the lock file we hold (the release step of the protocol) if the path still names
/// it, and lets it go: used to take over a free lock file that other users could open.
fn discard(call: &Call<'_>, locked: Locked, held: &FileStat, path: &CStr) -> Result<(), Fail> {
    let still_ours = matches!(retry(|| lstat(path)), Ok(now) if vet::same_file(&now, held));
    if still_ours {
        call.unlink(Role::Lock, path)
            .map_err(|e| Fail::new(e, Op::Lock, At::Lock))?;
    }
    drop(locked);
    Ok(())
}

/// Takes the lock at `path`. Blocks in the kernel while a live process holds it, but only on a
/// file that no other user can open.
pub(crate) fn acquire<'a>(call: &'a Call<'a>, path: &'a CStr) -> Result<LockGuard<'a>, Fail> {
    loop {
        if let Some(guard) = acquire_or_released(call, path)? {
            return Ok(guard);
        }
    }
}

/// [`acquire`], but `None` when the lock file we got hold of had been released by its holder
/// (step 4's `st_nlink == 0`, most often after waiting for it): the holder has done what it
/// held the lock for, so a creator looks at the name again before it takes the lock anew (the
/// object it wanted to create is most likely there now, and opening it needs no lock). Every
/// waiter of a busy name then leaves with one lock-free `open` instead of making and removing
/// a lock file of its own in turn.
pub(crate) fn acquire_or_released<'a>(
    call: &'a Call<'a>,
    path: &'a CStr,
) -> Result<Option<LockGuard<'a>>, Fail> {
    let busy = |st: &FileStat| {
        let mode = vet::mode(st) & 0o7777;
        Fail::new(Errno::EPERM, Op::Lock, At::Lock).why(Why::LockBusyOpen { mode })
    };
    loop {
        let (fd, created) = open_lock_file(call, path)?;
        // A lock file we created (O_EXCL) is new, ours, and 0600 (0644 when shared on
        // purpose): only a file found in place needs the checks.
        let found = if created {
            None
        } else {
            let st = fstat_lock(&fd)?;
            vet::lock(call, &st)?;
            Some(st)
        };
        let locked = match call.lock(Role::Lock, path, fd, false) {
            Ok(l) => l,
            Err((fd, Errno::EWOULDBLOCK)) => {
                if let Some(st) = &found {
                    if !call.cross_user && vet::open_to_others(st) {
                        return Err(busy(st));
                    }
                }
                call.emit(Step::LockWait {
                    path: as_path(path),
                });
                call.lock(Role::Lock, path, fd, true)
                    .map_err(|(_, e)| flock_error(e, At::Lock))?
            }
            Err((_, e)) => {
                if created {
                    // Ours, and of no use: leave nothing behind.
                    let _ = call.unlink(Role::Lock, path);
                }
                return Err(flock_error(e, At::Lock));
            }
        };
        let st = fstat_lock(&locked)?;
        if st.st_nlink == 0 {
            // The previous holder unlinked it on release; a new lock file may be there now.
            call.emit(Step::LockRetry {
                path: as_path(path),
            });
            return Ok(None);
        }
        if !created {
            // Checked before the wait; its owner may have changed it meanwhile.
            vet::lock(call, &st)?;
            if !call.cross_user && vet::open_to_others(&st) {
                // Free, but others can open it, so one of them may hold an fd to it and take
                // the flock after us: remove it as a holder does on release, and start again
                // with a fresh file of our own.
                call.emit(Step::LockTakeover {
                    path: as_path(path),
                });
                discard(call, locked, &st, path)?;
                continue;
            }
        }
        call.emit(Step::LockAcquired {
            path: as_path(path),
        });
        return Ok(Some(LockGuard {
            file: Some(locked),
            path,
            call,
        }));
    }
}

impl LockGuard<'_> {
    /// Releases the lock, and moves `fd` (opened after the lock file) down into the lock
    /// file's descriptor number if that is lower (see [`Locked::unlock_moving`]).
    pub(crate) fn release_moving(mut self, fd: OwnedFd) -> OwnedFd {
        match self.file.take() {
            Some(locked) => {
                self.unlink_released();
                locked.unlock_moving(fd)
            }
            None => fd,
        }
    }

    /// The release step before the unlock: trace it, then unlink while still holding the flock,
    /// so a waiter that wakes up sees `st_nlink == 0`. A failure (someone else's lock file in a
    /// sticky directory) leaves a file that the next locker simply reuses; there is nothing
    /// better to do with it here.
    fn unlink_released(&self) {
        self.call.emit(Step::LockReleased {
            path: as_path(self.path),
        });
        let _ = retry(|| nix::unistd::unlink(self.path));
    }

    /// The locked file (for tests of the protocol's invariants).
    #[cfg(test)]
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_ref().expect("held until dropped").as_fd()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Some(locked) = self.file.take() {
            self.unlink_released();
            // Then unlock and close.
            drop(locked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_exists_while_held_and_is_gone_after() {
        let d = tempfile::tempdir().unwrap();
        let path =
            std::ffi::CString::new(d.path().join(".SHMLx").as_os_str().as_encoded_bytes()).unwrap();
        let call = Call::new(false, None);
        let guard = acquire(&call, &path).unwrap();
        let st = crate::sys::fstat(guard.fd()).unwrap();
        assert_eq!((st.st_nlink, vet::mode(&st) & 0o777), (1, 0o600));
        drop(guard);
        assert!(!d.path().join(".SHMLx").exists());
    }
}
