//! The creation lock: `flock(LOCK_EX)` on the inode linked at `<dir>/.SHML<name>`.
//!
//! illumos makes the lock "the file exists" and polls with `sleep(1)`; a crashed holder
//! jams the name for good. Here the lock is a kernel `flock`, so waiters block in the
//! kernel and a dead holder's lock vanishes with its last fd. The file still exists while
//! held, so existence-based lockers wait for us too. Protocol (the README's interop contract):
//!
//! 1. `open(lock, O_CREAT|O_RDWR|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK, 0666)`; if that is
//!    `EACCES`, the same with `O_RDONLY` (`flock` works on any fd);
//! 2. `flock(LOCK_EX|LOCK_NB)`; if busy, check the file (below), then block in `flock(LOCK_EX)`;
//!    `EINTR` is retried;
//! 3. `fstat`: it must be a regular file, ours (or cross-user sharing allowed), with at most one
//!    link. `st_nlink == 0` means the holder before us released it (unlinked it) while we
//!    waited: close and start again at 1;
//! 4. release: `unlink(lock)` while still holding the `flock`, then `flock(LOCK_UN)` (so a
//!    copy of the fd inherited by a forked child does not keep it locked) and `close`.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use nix::unistd::{unlink, Uid};

use crate::error::{Error, Op, Result};
use crate::name::as_path;
use crate::trace::{Step, Tracer};

/// The held lock. Dropping it releases it: unlink, then unlock (nix's `Flock` drop), then close.
pub(crate) struct LockGuard<'a> {
    file: Option<Flock<OwnedFd>>,
    path: &'a std::ffi::CStr,
    tracer: Option<&'a Tracer>,
}

pub(crate) struct LockPolicy<'a> {
    pub(crate) euid: Uid,
    pub(crate) cross_user: bool,
    pub(crate) tracer: Option<&'a Tracer>,
}

fn emit(tracer: Option<&Tracer>, step: Step<'_>) {
    if let Some(t) = tracer {
        t(&step);
    }
}

/// Open `path` as a lock file, refusing links and FIFOs without hanging.
fn open_lock_file(path: &std::ffi::CStr, tracer: Option<&Tracer>) -> Result<OwnedFd> {
    let base = OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let mode = Mode::from_bits_truncate(0o666);
    let mut read_only = false;
    loop {
        let acc = if read_only {
            OFlag::O_RDONLY
        } else {
            OFlag::O_RDWR
        };
        emit(
            tracer,
            Step::LockOpen {
                path: as_path(path),
                read_only,
            },
        );
        match open(path, base | acc, mode) {
            Ok(fd) => return Ok(fd),
            Err(Errno::EINTR) => continue,
            Err(Errno::EACCES) if !read_only => read_only = true,
            Err(e) => {
                let err = Error::new(e, Op::Lock, as_path(path));
                return Err(match e {
                    Errno::ELOOP => {
                        err.because("a symbolic link is at the lock path; not following it")
                    }
                    Errno::EISDIR | Errno::ENXIO => {
                        Error::new(Errno::EINVAL, Op::Lock, as_path(path))
                            .because("the lock path is not a regular file")
                    }
                    Errno::EACCES => err.because("the lock file exists and we may not open it"),
                    _ => err,
                });
            }
        }
    }
}

/// Refuse a lock file we must not use: not a regular file, someone else's, or hard-linked.
fn check_lock_file(st: &FileStat, path: &std::ffi::CStr, policy: &LockPolicy<'_>) -> Result<()> {
    let fail = |errno, why: String| Err(Error::new(errno, Op::Lock, as_path(path)).because(why));
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return fail(Errno::EINVAL, "the lock path is not a regular file".into());
    }
    if st.st_uid != policy.euid.as_raw() && !policy.cross_user {
        return fail(
            Errno::EPERM,
            format!(
                "the lock file is owned by uid {}, not by us (uid {}); allow cross-user sharing to use it",
                st.st_uid,
                policy.euid.as_raw()
            ),
        );
    }
    if st.st_nlink > 1 {
        return fail(
            Errno::EPERM,
            format!("the lock file has {} hard links", st.st_nlink),
        );
    }
    Ok(())
}

fn fstat_lock(fd: &OwnedFd, path: &std::ffi::CStr) -> Result<FileStat> {
    fstat(fd.as_fd()).map_err(|e| Error::new(e, Op::Lock, as_path(path)))
}

fn flock_retrying(
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

/// Take the lock at `path`. Blocks in the kernel while a live process holds it.
pub(crate) fn acquire<'a>(
    path: &'a std::ffi::CStr,
    policy: &LockPolicy<'a>,
) -> Result<LockGuard<'a>> {
    let tracer = policy.tracer;
    loop {
        let fd = open_lock_file(path, tracer)?;
        let locked = match flock_retrying(fd, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((fd, Errno::EWOULDBLOCK)) => {
                // Busy: make sure it is a file we may wait on before we block on it.
                check_lock_file(&fstat_lock(&fd, path)?, path, policy)?;
                emit(
                    tracer,
                    Step::LockWait {
                        path: as_path(path),
                    },
                );
                flock_retrying(fd, FlockArg::LockExclusive)
                    .map_err(|(_, e)| Error::new(e, Op::Lock, as_path(path)))?
            }
            Err((_, e)) => return Err(Error::new(e, Op::Lock, as_path(path))),
        };
        let st = fstat_lock(&locked, path)?;
        if st.st_nlink == 0 {
            // The previous holder unlinked it on release; a new lock file may be there now.
            emit(
                tracer,
                Step::LockRetry {
                    path: as_path(path),
                },
            );
            continue;
        }
        check_lock_file(&st, path, policy)?;
        emit(
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
        emit(
            self.tracer,
            Step::LockReleased {
                path: as_path(self.path),
            },
        );
        // Unlink while still holding the flock, so a waiter that wakes up sees st_nlink == 0.
        // A failure (someone else's lock file in a sticky directory) leaves a file that the
        // next locker simply reuses; there is nothing better to do with it here.
        let _ = unlink(self.path);
        drop(self.file.take());
    }
}
