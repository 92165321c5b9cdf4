//! Open, check and unlink the data file: the object layer of illumos's `pos4obj`.
//!
//! Every open adds `O_NOFOLLOW|O_CLOEXEC|O_NOCTTY` and is followed by one `fstat` that
//! must show a regular file, owned by us (unless cross-user sharing is allowed), with at most
//! one link. `O_TRUNC` is never passed to `open(2)`: it would truncate before the check, so the
//! file is truncated with `ftruncate` only once it has passed.

use std::cell::OnceCell;
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::stat::{fstat, lstat, FileStat, Mode, SFlag};
use nix::unistd::{ftruncate, geteuid, unlink, Uid};

use crate::eintr;
use crate::error::{Error, Op, Result};
use crate::name::as_path;
use crate::trace::{self, Step, Tracer};

/// The caller's request, already validated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    /// `O_RDONLY` or `O_RDWR`.
    pub(crate) access: OFlag,
    pub(crate) truncate: bool,
}

/// What every check of one call needs. The euid is asked for (one syscall) only when a check
/// needs it, and then once: creating an object under a lock file we made ourselves needs none.
pub(crate) struct Checks<'a> {
    euid: OnceCell<Uid>,
    pub(crate) cross_user: bool,
    pub(crate) tracer: Option<&'a Tracer>,
}

impl<'a> Checks<'a> {
    pub(crate) fn new(cross_user: bool, tracer: Option<&'a Tracer>) -> Checks<'a> {
        Checks {
            euid: OnceCell::new(),
            cross_user,
            tracer,
        }
    }

    /// The effective uid, asked for afresh in every call (it can change: `seteuid`).
    pub(crate) fn euid(&self) -> Uid {
        *self.euid.get_or_init(geteuid)
    }

    pub(crate) fn emit(&self, step: Step<'_>) {
        trace::emit(self.tracer, step);
    }

    /// Traces a syscall of a higher-level operation (`Step::Call`).
    pub(crate) fn emit_call(&self, call: &str, path: &CStr) {
        self.emit(Step::Call {
            call,
            path: as_path(path),
        });
    }

    /// The policy for an existing object: [`Checks::vet`], and, without cross-user sharing,
    /// no group or other read+write pair. Where `fs.protected_hardlinks=1`, only a user who
    /// can read and write a file (or owns it) can hard-link it, so no other user can have
    /// linked it here under a name its owner never created, and kept an fd to read what we
    /// write. (Where it is 0, anyone can link any file they can see: the rule cannot hold.)
    pub(crate) fn vet_object(&self, st: &FileStat, path: &CStr) -> Result<()> {
        self.vet(st, path, Op::Check, "the object")?;
        if !self.cross_user && others_can_link(st) {
            return Err(
                Error::new(Errno::EPERM, Op::Check, as_path(path)).because(format!(
                "other users can read and write the object (mode {:04o}), so any of them could \
                 have hard-linked it here under a name its owner never created; allow \
                 cross-user sharing to use it",
                st.st_mode & 0o7777
            )),
            );
        }
        Ok(())
    }

    /// The policy for an existing lock file: [`Checks::vet`]. Whether we may wait on it is
    /// the lock layer's question.
    pub(crate) fn vet_lock(&self, st: &FileStat, path: &CStr) -> Result<()> {
        self.vet(st, path, Op::Lock, "the lock file")
    }

    /// The one policy for every file tmpshm uses in a shared directory (objects and lock
    /// files alike): a regular file, ours unless cross-user sharing is on, at most one link.
    /// `what` names the file in the reason ("the object", "the lock file").
    pub(crate) fn vet(&self, st: &FileStat, path: &CStr, op: Op, what: &str) -> Result<()> {
        let fail = |errno, why: String| Err(Error::new(errno, op, as_path(path)).because(why));
        if !is_regular(st) {
            let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
            let found = match kind {
                SFlag::S_IFDIR => "a directory",
                SFlag::S_IFIFO => "a FIFO",
                SFlag::S_IFSOCK => "a socket",
                SFlag::S_IFCHR => "a character device",
                SFlag::S_IFBLK => "a block device",
                _ => "something",
            };
            return fail(
                Errno::EINVAL,
                format!("{found} is at the path of {what}, not a regular file"),
            );
        }
        if !self.cross_user && st.st_uid != self.euid().as_raw() {
            return fail(
                Errno::EPERM,
                format!(
                    "{what} is owned by uid {}, not by us (uid {}); allow cross-user sharing to use it",
                    st.st_uid,
                    self.euid().as_raw()
                ),
            );
        }
        // 0 links: unlinked since we opened it, which is an open followed by an unlink. Fine.
        if st.st_nlink > 1 {
            return fail(
                Errno::EPERM,
                format!("{what} has {} hard links; refusing to use it", st.st_nlink),
            );
        }
        Ok(())
    }
}

fn flag_names(flags: OFlag) -> String {
    let mut out = String::from(if flags.contains(OFlag::O_RDWR) {
        "O_RDWR"
    } else {
        "O_RDONLY"
    });
    for (f, n) in [
        (OFlag::O_CREAT, "O_CREAT"),
        (OFlag::O_EXCL, "O_EXCL"),
        (OFlag::O_NOFOLLOW, "O_NOFOLLOW"),
        (OFlag::O_CLOEXEC, "O_CLOEXEC"),
        (OFlag::O_NOCTTY, "O_NOCTTY"),
        (OFlag::O_NONBLOCK, "O_NONBLOCK"),
    ] {
        if flags.contains(f) {
            out.push('|');
            out.push_str(n);
        }
    }
    out
}

fn open_retrying(
    path: &CStr,
    flags: OFlag,
    mode: Mode,
    checks: &Checks<'_>,
) -> nix::Result<OwnedFd> {
    if checks.tracer.is_some() {
        checks.emit(Step::Open {
            path: as_path(path),
            flags: &flag_names(flags),
        });
    }
    eintr::retry(|| open(path, flags, mode))
}

/// Turns an `open(2)` failure into our error, naming what was found at the path of `what`
/// (data and lock files alike).
///
/// Two answers concern the file found rather than the request, and are not in the errno set
/// `shm_open` documents: `EWOULDBLOCK` (someone holds a file lease on it; only its owner can)
/// and `ETXTBSY` (a running program). They become the refusal the file would get from the
/// checks (`EINVAL`, `EPERM`: a planted foreign file), or `EACCES` when it would pass them.
pub(crate) fn open_error(e: Errno, path: &CStr, op: Op, what: &str, checks: &Checks<'_>) -> Error {
    match e {
        Errno::ELOOP => Error::new(e, op, as_path(path)).because(format!(
            "a symbolic link is at the path of {what}; not following it"
        )),
        // EISDIR: a directory opened for writing. ENXIO: a socket, or a FIFO with no reader.
        Errno::EISDIR | Errno::ENXIO => Error::new(Errno::EINVAL, op, as_path(path))
            .because(format!("the path of {what} is not a regular file")),
        Errno::EWOULDBLOCK | Errno::ETXTBSY => {
            if let Ok(st) = eintr::retry(|| lstat(path)) {
                if let Err(refused) = checks.vet(&st, path, op, what) {
                    return refused;
                }
            }
            let why = if e == Errno::ETXTBSY {
                format!("{what} is a program being run; not writing to it")
            } else {
                format!("a process holds a file lease on {what}; not waiting for it to break")
            };
            Error::new(Errno::EACCES, op, as_path(path)).because(why)
        }
        _ => Error::new(e, op, as_path(path)),
    }
}

/// Whether a user other than the owner has both read and write permission (through the group
/// or other bits), which is what `fs.protected_hardlinks=1` asks of a user who links a file
/// they do not own.
pub(crate) fn others_can_link(st: &FileStat) -> bool {
    let mode = st.st_mode;
    mode & 0o060 == 0o060 || mode & 0o006 == 0o006
}

/// Whether `st` is a regular file.
pub(crate) fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
}

/// Whether two `stat`s are of the same file.
pub(crate) fn same_file(a: &FileStat, b: &FileStat) -> bool {
    (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
}

/// `fstat` the opened file and refuse anything but a single-link regular file of ours.
fn check(fd: &OwnedFd, path: &CStr, checks: &Checks<'_>) -> Result<()> {
    let st = fstat(fd.as_fd()).map_err(|e| Error::new(e, Op::Check, as_path(path)))?;
    checks.vet_object(&st, path)?;
    checks.emit(Step::Checked {
        path: as_path(path),
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        nlink: st.st_nlink as u64,
        size: st.st_size,
    });
    Ok(())
}

/// Open an existing data file (no `O_CREAT`), check it, and truncate if asked.
pub(crate) fn open_existing(path: &CStr, req: Request, checks: &Checks<'_>) -> Result<OwnedFd> {
    // O_NONBLOCK: a FIFO opened O_RDONLY would block until a writer comes, and an open that
    // conflicts with a file lease would wait `fs.lease-break-time` (45 s) for the lease holder
    // (the file's owner, perhaps another user who planted it) to let go; with it, both answer
    // at once. It is cleared again once the file has passed the checks.
    let flags =
        req.access | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let fd = open_retrying(path, flags, Mode::empty(), checks)
        .map_err(|e| open_error(e, path, Op::Open, "the object", checks))?;
    check(&fd, path, checks)?;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(OFlag::empty()))
        .map_err(|e| Error::new(e, Op::Open, as_path(path)))?;
    if req.truncate {
        truncate(&fd, path, 0, checks)?;
    }
    Ok(fd)
}

/// Create the data file; `EEXIST` if anything at all is at the path (links included).
pub(crate) fn create_new(
    path: &CStr,
    req: Request,
    mode: Mode,
    checks: &Checks<'_>,
) -> Result<OwnedFd> {
    let flags = req.access
        | OFlag::O_CREAT
        | OFlag::O_EXCL
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    // O_EXCL made a new, empty, single-link regular file of ours: nothing to check or truncate.
    open_retrying(path, flags, mode, checks)
        .map_err(|e| open_error(e, path, Op::Open, "the object", checks))
}

/// `ftruncate` a checked data file.
pub(crate) fn truncate(fd: &OwnedFd, path: &CStr, len: u64, checks: &Checks<'_>) -> Result<()> {
    checks.emit(Step::Truncate {
        path: as_path(path),
        len,
    });
    let len = i64::try_from(len).map_err(|_| {
        Error::new(Errno::EFBIG, Op::Truncate, as_path(path)).because("size exceeds off_t")
    })?;
    eintr::retry(|| ftruncate(fd.as_fd(), len))
        .map_err(|e| Error::new(e, Op::Truncate, as_path(path)))
}

/// Grows a checked data file from `from` to `to` bytes, reserving the new blocks (see
/// [`eintr::reserve`]): `ENOSPC` now rather than `SIGBUS` at a later write. Where the file
/// system cannot reserve, the file is grown sparse with `ftruncate`.
pub(crate) fn grow(
    fd: &OwnedFd,
    path: &CStr,
    from: u64,
    to: u64,
    checks: &Checks<'_>,
) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    checks.emit_call(&format!("fallocate {from}..{to}"), path);
    match eintr::reserve(fd.as_fd(), from, to - from, false) {
        Ok(eintr::Reserved::Yes) => Ok(()),
        Ok(eintr::Reserved::Unsupported) => truncate(fd, path, to, checks),
        // fallocate needs a writable fd, as ftruncate does (which says EINVAL).
        Err(Errno::EBADF) => Err(Error::new(Errno::EINVAL, Op::Truncate, as_path(path))
            .because("the object is open read-only")),
        Err(e) => Err(Error::new(e, Op::Truncate, as_path(path))
            .because(format!("reserving {} bytes for the object", to - from))),
    }
}

/// Remove the data file.
pub(crate) fn remove(path: &CStr, tracer: Option<&Tracer>) -> Result<()> {
    trace::emit(
        tracer,
        Step::Unlink {
            path: as_path(path),
        },
    );
    eintr::retry(|| unlink(path)).map_err(|e| match e {
        // The sticky bit refuses another user's file with EPERM; POSIX (and glibc) say EACCES.
        Errno::EPERM => Error::new(Errno::EACCES, Op::Unlink, as_path(path))
            .because("the object belongs to another user"),
        Errno::EISDIR => Error::new(Errno::EINVAL, Op::Unlink, as_path(path))
            .because("a directory is at the data path, not an object"),
        _ => Error::new(e, Op::Unlink, as_path(path)),
    })
}
