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
        _ => object::open_error(e, path, Op::Lock, "the lock file", checks),
    })
}

fn fstat_lock(fd: &OwnedFd, path: &std::ffi::CStr) -> Result<FileStat> {
    fstat(fd.as_fd()).map_err(|e| Error::new(e, Op::Lock, as_path(path)))
}

/// Whether users other than the owner can open the file (any read or write bit for group or
/// other). Whoever can open a lock file can `flock` it, for as long as it likes.
pub(crate) fn open_to_others(st: &FileStat) -> bool {
    st.st_mode & 0o066 != 0
}

fn refuse_to_wait(path: &std::ffi::CStr, st: &FileStat) -> Error {
    Error::new(Errno::EPERM, Op::Lock, as_path(path)).because(format!(
        "the lock file is busy and open to other users (mode {:04o}), so its holder may be one \
         of them, who could hold it forever; refusing to wait (allow cross-user sharing if that \
         is intended)",
        st.st_mode & 0o7777
    ))
}

/// `flock` holders by `(major, minor, inode)`: see [`flock_holders`].
pub(crate) type HolderMap = std::collections::HashMap<(u64, u64, u64), u32>;

/// The pids of every process holding a `flock`, by inode (`(major, minor, inode)`), as
/// `/proc/locks` gives them at one moment; `None` where it cannot be read.
///
/// For display only: `/proc/locks` names the process that *took* a lock, not the processes
/// that share its open file description now (a fork, an exec of another program), and inside
/// a PID namespace it hides holders outside it. Nothing decides trust on it.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn flock_holders() -> Option<HolderMap> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let mut map = std::collections::HashMap::new();
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

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn flock_holders() -> Option<HolderMap> {
    None
}

/// The key of `st` in [`flock_holders`].
#[allow(clippy::unnecessary_cast)] // the types differ between Linux and Android
pub(crate) fn holder_key(st: &FileStat) -> (u64, u64, u64) {
    let dev = st.st_dev;
    (
        libc::major(dev) as u64,
        libc::minor(dev) as u64,
        st.st_ino as u64,
    )
}

/// Unlinks the lock file we hold (the release step of the protocol) if the path still names
/// it, and lets it go: used to take over a free lock file that other users could open.
fn discard(locked: Flock<OwnedFd>, held: &FileStat, path: &std::ffi::CStr) -> Result<()> {
    let still_ours =
        matches!(eintr::retry(|| lstat(path)), Ok(now) if object::same_file(&now, held));
    let removed = if still_ours {
        eintr::retry(|| unlink(path)).map_err(|e| Error::new(e, Op::Lock, as_path(path)))
    } else {
        Ok(())
    };
    eintr::unlock_and_close(locked);
    removed
}

/// Take the lock at `path`. Blocks in the kernel while a live process holds it, but only on a
/// file that no other user can open.
pub(crate) fn acquire<'a>(path: &'a std::ffi::CStr, checks: &Checks<'a>) -> Result<LockGuard<'a>> {
    let tracer = checks.tracer;
    loop {
        let (fd, created) = open_lock_file(path, checks)?;
        // A lock file we created (O_EXCL) is new, ours and 0600 (or 0644 when shared on
        // purpose): only the vetting of a file found in place is needed.
        let found = if created {
            None
        } else {
            let st = fstat_lock(&fd, path)?;
            checks.vet_lock(&st, path)?;
            Some(st)
        };
        let locked = match eintr::flock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((fd, Errno::EWOULDBLOCK)) => {
                if let Some(st) = &found {
                    if !checks.cross_user && open_to_others(st) {
                        // Its holder may be another user, who could hold it forever: never
                        // wait on it. (No pid-based trust: /proc/locks names the process that
                        // took a flock, not who shares it now.)
                        return Err(refuse_to_wait(path, st));
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
            // Vetted before the wait; its owner may have changed it meanwhile.
            if let Err(e) = checks.vet_lock(&st, path) {
                eintr::unlock_and_close(locked);
                return Err(e);
            }
        }
        if !created && !checks.cross_user && open_to_others(&st) {
            // Free, but others can open it, so one of them may hold an fd to it and take the
            // flock after us. Take it over: remove it as a holder does on release, and start
            // again with a fresh file of our own.
            trace::emit(
                tracer,
                Step::LockTakeover {
                    path: as_path(path),
                },
            );
            discard(locked, &st, path)?;
            continue;
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
