//! One call's context, and the system calls it makes, traced.
//!
//! A [`Call`] carries what every layer of one operation needs: whether other users' files are
//! accepted, the tracer, and the effective uid (asked for once, and only if a check needs it:
//! creating an object under a lock file we made ourselves needs none). Its methods are the
//! system calls of the layers below the public API; each builds its [`Step`] from the very
//! values it passes to the kernel, so a trace line cannot disagree with the call. `EINTR` is
//! retried everywhere: it is never an answer.

use std::cell::OnceCell;
use std::ffi::CStr;
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, Mode};
use nix::unistd::{ftruncate, geteuid, linkat, unlink, Uid};

use crate::error::Role;
use crate::sys::{self, as_path, retry, Locked, Reserved};
use crate::trace::{FlockOp, Step, Tracer};

/// One call's context (see the module docs).
pub(crate) struct Call<'a> {
    euid: OnceCell<Uid>,
    /// Whether files of other users are accepted.
    pub(crate) cross_user: bool,
    tracer: Option<Tracer<'a>>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(cross_user: bool, tracer: Option<Tracer<'a>>) -> Call<'a> {
        Call {
            euid: OnceCell::new(),
            cross_user,
            tracer,
        }
    }

    /// The effective uid, asked for afresh in every call (it can change: `seteuid`).
    pub(crate) fn euid(&self) -> Uid {
        *self.euid.get_or_init(geteuid)
    }

    /// Whether a tracer listens (so that a step that costs something to build is built).
    pub(crate) fn traced(&self) -> bool {
        self.tracer.is_some()
    }

    /// Hands `step` to the tracer, if there is one.
    #[inline(always)]
    pub(crate) fn emit(&self, step: Step<'_>) {
        if let Some(t) = self.tracer {
            t(&step);
        }
    }

    /// `open(2)`.
    pub(crate) fn open(
        &self,
        role: Role,
        path: &CStr,
        flags: OFlag,
        mode: Mode,
    ) -> nix::Result<OwnedFd> {
        self.emit(Step::Open {
            role,
            path: as_path(path),
            flags,
            mode,
        });
        retry(|| open(path, flags, mode))
    }

    /// `unlink(2)`.
    pub(crate) fn unlink(&self, role: Role, path: &CStr) -> nix::Result<()> {
        self.emit(Step::Unlink {
            role,
            path: as_path(path),
        });
        retry(|| unlink(path))
    }

    /// `flock(LOCK_EX)`, or `LOCK_EX|LOCK_NB` unless `wait`; the fd comes back with the error.
    pub(crate) fn lock(
        &self,
        role: Role,
        path: &CStr,
        fd: OwnedFd,
        wait: bool,
    ) -> Result<Locked, (OwnedFd, Errno)> {
        let op = if wait {
            FlockOp::Exclusive
        } else {
            FlockOp::ExclusiveNonblock
        };
        if role != Role::Lock {
            // The creation lock has steps of its own (wait, acquired, released).
            self.emit(Step::Flock {
                role,
                path: as_path(path),
                op,
            });
        }
        Locked::lock(fd, wait)
    }

    /// `flock(LOCK_SH|LOCK_NB)` and, if it was granted, `LOCK_UN`: whether someone else holds
    /// the file (`Ok(true)`).
    pub(crate) fn probe(&self, role: Role, path: &CStr, fd: BorrowedFd<'_>) -> nix::Result<bool> {
        self.emit(Step::Flock {
            role,
            path: as_path(path),
            op: FlockOp::SharedNonblock,
        });
        match retry(|| sys::flock(fd, libc::LOCK_SH | libc::LOCK_NB)) {
            Ok(()) => {
                let _ = sys::flock(fd, libc::LOCK_UN);
                Ok(false)
            }
            Err(Errno::EWOULDBLOCK) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// `ftruncate(2)`.
    pub(crate) fn ftruncate(&self, fd: BorrowedFd<'_>, path: &CStr, len: u64) -> nix::Result<()> {
        self.emit(Step::Truncate {
            path: as_path(path),
            len,
        });
        let len = libc::off_t::try_from(len).map_err(|_| Errno::EFBIG)?;
        retry(|| ftruncate(fd, len))
    }

    /// `fallocate(2)` of `from..to` (see [`sys::reserve`]).
    pub(crate) fn reserve(
        &self,
        fd: BorrowedFd<'_>,
        path: &CStr,
        from: u64,
        to: u64,
        keep_size: bool,
    ) -> nix::Result<Reserved> {
        self.emit(Step::Reserve {
            path: as_path(path),
            from,
            to,
            keep_size,
        });
        sys::reserve(fd, from, to.saturating_sub(from), keep_size)
    }

    /// `fchmod(2)`.
    pub(crate) fn fchmod(&self, fd: BorrowedFd<'_>, path: &CStr, mode: Mode) -> nix::Result<()> {
        self.emit(Step::Chmod {
            path: as_path(path),
            mode,
        });
        retry(|| fchmod(fd, mode))
    }

    /// `renameat2(from, to, RENAME_NOREPLACE)`.
    pub(crate) fn rename_noreplace(&self, from: &CStr, to: &CStr) -> nix::Result<()> {
        self.emit(Step::Rename {
            from: as_path(from),
            to: as_path(to),
        });
        retry(|| sys::rename_noreplace(from, to))
    }

    /// `link(2)`, never following a symbolic link at either path.
    pub(crate) fn link(&self, from: &CStr, to: &CStr) -> nix::Result<()> {
        self.emit(Step::Link {
            from: as_path(from),
            to: as_path(to),
        });
        retry(|| linkat(AT_FDCWD, from, AT_FDCWD, to, AtFlags::empty()))
    }
}
