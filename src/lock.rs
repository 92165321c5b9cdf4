//! The creation lock: `flock(LOCK_EX)` on the inode linked at `<dir>/.SHML<name>`.
//!
//! illumos makes the lock "the file exists" and polls with `sleep(1)`; a crashed holder
//! jams the name for good. Here the lock is a kernel `flock`, so waiters block in the
//! kernel and a dead holder's lock vanishes with its last fd. The file still exists while
//! held, so existence-based lockers wait for us too. Protocol (the README's interop contract):
//!
//! 1. `open(lock, O_CREAT|O_EXCL|O_RDWR|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK, 0600)` (when shared
//!    across users: `0644`, set with `fchmod` so the umask cannot take it away); if the file
//!    exists, the same without `O_EXCL`, and on `EACCES` with `O_RDONLY` (`flock` works on any
//!    fd);
//! 2. `flock(LOCK_EX|LOCK_NB)`; if busy, check the file (below), then block in `flock(LOCK_EX)`;
//!    `EINTR` is retried;
//! 3. `fstat`: `st_nlink == 0` means the holder before us released it (unlinked it) while we
//!    waited: close and start again at 1. Unless step 1 created it, it must be a regular file,
//!    ours (or cross-user sharing allowed), with at most one link;
//! 4. release: `unlink(lock)` while still holding the `flock`, then `flock(LOCK_UN)` (so a
//!    copy of the fd inherited by a forked child does not keep it locked) and `close`.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, Flock, FlockArg, OFlag};
use nix::sys::stat::{fchmod, fstat, lstat, FileStat, Mode};
use nix::unistd::unlink;

use crate::eintr;
use crate::error::{Error, Op, Result};
use crate::name::as_path;
use crate::object::{self, Checks};
use crate::trace::{self, Step, Tracer};

/// The held lock. Dropping it releases it: unlink, then unlock, then close.
pub(crate) struct LockGuard<'a> {
    file: Option<Flock<OwnedFd>>,
    path: &'a std::ffi::CStr,
    tracer: Option<&'a Tracer>,
}

/// Open `path` as a lock file, refusing links and FIFOs without hanging. Also says whether we
/// created it: the first try is `O_EXCL`, and a file we made ourselves needs no vetting.
fn open_lock_file(path: &std::ffi::CStr, checks: &Checks<'_>) -> Result<(OwnedFd, bool)> {
    let tracer = checks.tracer;
    let base = OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    // Only we may open our lock files, so only we can hold them: another user who could open
    // one (flock needs no write access) could hold it forever and make us wait. Shared
    // objects need lock files the other users can open.
    let mode = Mode::from_bits_truncate(if checks.cross_user { 0o644 } else { 0o600 });
    let open_as = |acc: OFlag, exclusive: bool| {
        trace::emit(
            tracer,
            Step::LockOpen {
                path: as_path(path),
                read_only: acc == OFlag::O_RDONLY,
                exclusive,
            },
        );
        let excl = if exclusive {
            OFlag::O_EXCL
        } else {
            OFlag::empty()
        };
        eintr::retry(|| open(path, base | acc | excl, mode))
    };
    // Any failure of the exclusive try (the file exists, or something odd is in the way) is
    // sorted out by the plain tries below, which give the precise error.
    if let Ok(fd) = open_as(OFlag::O_RDWR, true) {
        if checks.cross_user {
            // Other users must be able to open it (read-only is enough for flock), whatever
            // our umask says.
            eintr::retry(|| fchmod(fd.as_fd(), mode))
                .map_err(|e| Error::new(e, Op::Lock, as_path(path)))?;
        }
        return Ok((fd, true));
    }
    let e = match open_as(OFlag::O_RDWR, false) {
        Ok(fd) => return Ok((fd, false)),
        Err(Errno::EACCES) => match open_as(OFlag::O_RDONLY, false) {
            Ok(fd) => return Ok((fd, false)),
            Err(e) => e,
        },
        Err(e) => e,
    };
    Err(match e {
        Errno::EACCES => {
            let err = Error::new(e, Op::Lock, as_path(path));
            match lstat(path) {
                Err(Errno::ENOENT) => {
                    err.because("we may not create the lock file here (is the directory writable?)")
                }
                _ => err.because("the lock file exists and we may not open it"),
            }
        }
        _ => object::open_error(e, path, Op::Lock, "the lock file"),
    })
}

fn fstat_lock(fd: &OwnedFd, path: &std::ffi::CStr) -> Result<FileStat> {
    fstat(fd.as_fd()).map_err(|e| Error::new(e, Op::Lock, as_path(path)))
}

/// Who holds a busy lock file, as `/proc/locks` and `/proc/PID` tell.
enum Holders {
    /// Every holder runs as our euid: safe to wait.
    Ours,
    /// Nobody any more: released meanwhile.
    Gone,
    /// Another uid, or we cannot tell.
    Unknown,
}

fn refuse_to_wait(path: &std::ffi::CStr, st: &FileStat) -> Error {
    Error::new(Errno::EPERM, Op::Lock, as_path(path)).because(format!(
        "the lock file is busy, open to other users (mode {:04o}), and not held by our uid as far \
         as /proc/locks tells, so another user may be holding it; refusing to wait (allow \
         cross-user sharing if that is intended)",
        st.st_mode & 0o7777
    ))
}

fn holders(st: &FileStat, checks: &Checks<'_>) -> Holders {
    use std::os::unix::fs::MetadataExt;
    let euid = checks.euid().as_raw();
    match flock_holders(st) {
        Some(pids) if pids.is_empty() => Holders::Gone,
        Some(pids)
            if pids.iter().all(|pid| {
                std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == euid)
            }) =>
        {
            Holders::Ours
        }
        _ => Holders::Unknown,
    }
}

/// The pids of every process holding a `flock` on this inode (waiters excluded), as
/// `/proc/locks` gives them; `None` where it cannot be read.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(clippy::unnecessary_cast)] // the types differ between Linux and Android
pub(crate) fn flock_holders(st: &FileStat) -> Option<Vec<u32>> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = st.st_dev;
    let want = (
        libc::major(dev) as u64,
        libc::minor(dev) as u64,
        st.st_ino as u64,
    );
    let holders = locks.lines().filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"; waiters have "->" after the number.
        if f.len() < 6 || f[1] != "FLOCK" {
            return None;
        }
        let mut id = f[5].split(':');
        let maj = u64::from_str_radix(id.next()?, 16).ok()?;
        let min = u64::from_str_radix(id.next()?, 16).ok()?;
        let ino = id.next()?.parse::<u64>().ok()?;
        ((maj, min, ino) == want)
            .then(|| f[4].parse().ok())
            .flatten()
    });
    Some(holders.collect())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn flock_holders(_st: &FileStat) -> Option<Vec<u32>> {
    None
}

/// Take the lock at `path`. Blocks in the kernel while a live process holds it.
pub(crate) fn acquire<'a>(path: &'a std::ffi::CStr, checks: &Checks<'a>) -> Result<LockGuard<'a>> {
    let tracer = checks.tracer;
    loop {
        let (fd, created) = open_lock_file(path, checks)?;
        let locked = match eintr::flock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((fd, Errno::EWOULDBLOCK)) => {
                // Busy: make sure it is a file we may wait on before we block on it.
                let st = fstat_lock(&fd, path)?;
                checks.vet(&st, path, Op::Lock, "the lock file")?;
                if !checks.cross_user && st.st_mode & 0o077 != 0 {
                    // Not made by a same-user tmpshm (those are 0600): whoever holds it may be
                    // another user, who could hold it forever.
                    match holders(&st, checks) {
                        Holders::Ours => {}
                        Holders::Gone => continue,
                        Holders::Unknown => return Err(refuse_to_wait(path, &st)),
                    }
                }
                trace::emit(
                    tracer,
                    Step::LockWait {
                        path: as_path(path),
                    },
                );
                eintr::flock(fd, FlockArg::LockExclusive)
                    .map_err(|(_, e)| Error::new(e, Op::Lock, as_path(path)))?
            }
            Err((_, e)) => return Err(Error::new(e, Op::Lock, as_path(path))),
        };
        // From here every way out unlocks explicitly: nix's `Flock` would panic in `drop` if
        // the unlock failed.
        let st = match fstat_lock(&locked, path) {
            Ok(st) => st,
            Err(e) => {
                eintr::unlock_and_close(locked);
                return Err(e);
            }
        };
        if st.st_nlink == 0 {
            // The previous holder unlinked it on release; a new lock file may be there now.
            trace::emit(
                tracer,
                Step::LockRetry {
                    path: as_path(path),
                },
            );
            eintr::unlock_and_close(locked);
            continue;
        }
        if !created {
            if let Err(e) = checks.vet(&st, path, Op::Lock, "the lock file") {
                eintr::unlock_and_close(locked);
                return Err(e);
            }
        }
        trace::emit(
            tracer,
            Step::LockAcquired {
                path: as_path(path),
            },
        );
        return Ok(LockGuard {
            file: Some(locked),
            path,
            tracer,
        });
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        trace::emit(
            self.tracer,
            Step::LockReleased {
                path: as_path(self.path),
            },
        );
        // Unlink while still holding the flock, so a waiter that wakes up sees st_nlink == 0.
        // A failure (someone else's lock file in a sticky directory) leaves a file that the
        // next locker simply reuses; there is nothing better to do with it here.
        let _ = unlink(self.path);
        if let Some(locked) = self.file.take() {
            eintr::unlock_and_close(locked);
        }
    }
}
