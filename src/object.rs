//! Open, create, resize and unlink objects: the object layer of illumos's `pos4obj`, for any
//! kind of object.
//!
//! `shm_open(3)`'s algorithm is [`open`]: an existing object needs no lock (one `open` and one
//! `fstat`); only creation takes the lock, and then creates with `O_EXCL`. Every open adds
//! `O_NOFOLLOW|O_CLOEXEC|O_NOCTTY`, and an open of a file found in place adds `O_NONBLOCK`
//! (neither a FIFO nor a file lease can make it wait), cleared once the file passed the checks
//! of [`vet`](crate::vet). `O_TRUNC` is never passed to `open(2)`: it would truncate before the
//! check; `ftruncate` does it once the file has passed.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{lstat, FileStat, Mode};

use crate::call::Call;
use crate::error::{At, Fail, FlagError, Op, Role, Why};
use crate::lock;
use crate::name::Target;
use crate::sys::{as_path, retry, Reserved, StackPath};
use crate::trace::Step;
use crate::vet;

/// Flags that tmpshm always adds, so a caller passing them asks for nothing new.
const IMPLIED: OFlag = OFlag::O_CLOEXEC.union(OFlag::O_NOFOLLOW);
const ALLOWED: OFlag = OFlag::O_ACCMODE
    .union(OFlag::O_CREAT)
    .union(OFlag::O_EXCL)
    .union(OFlag::O_TRUNC)
    .union(IMPLIED);

/// A caller's `oflag` and `mode`, checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    /// `O_RDONLY` or `O_RDWR`.
    pub(crate) access: OFlag,
    pub(crate) create: bool,
    pub(crate) excl: bool,
    pub(crate) truncate: bool,
    /// The permission bits of a created object (the umask applies).
    pub(crate) mode: Mode,
}

impl Request {
    /// Checks `flags` and `mode` as `shm_open` takes them (`EINVAL` for what POSIX leaves
    /// undefined or does not list, before anything is touched).
    pub(crate) fn new(flags: OFlag, mode: Mode) -> Result<Request, Fail> {
        let refuse = |e| Err(Fail::new(Errno::EINVAL, Op::Flags, At::Name).why(Why::Flags(e)));
        let access = flags & OFlag::O_ACCMODE;
        if access != OFlag::O_RDONLY && access != OFlag::O_RDWR {
            return refuse(FlagError::AccessMode);
        }
        if !ALLOWED.contains(flags) {
            return refuse(FlagError::Unsupported((flags - ALLOWED).bits()));
        }
        let (create, excl) = (
            flags.contains(OFlag::O_CREAT),
            flags.contains(OFlag::O_EXCL),
        );
        if excl && !create {
            return refuse(FlagError::ExclWithoutCreat);
        }
        let truncate = flags.contains(OFlag::O_TRUNC);
        if truncate && access == OFlag::O_RDONLY {
            return refuse(FlagError::TruncReadOnly);
        }
        if create && mode.bits() & !0o777 != 0 {
            #[allow(clippy::useless_conversion)] // mode_t is u16 on some platforms
            return refuse(FlagError::ModeBits(mode.bits().into()));
        }
        Ok(Request {
            access,
            create,
            excl,
            truncate,
            mode,
        })
    }
}

/// `shm_open(3)` in `target`: see the module docs.
pub(crate) fn open(call: &Call<'_>, target: &Target<'_>, req: Request) -> Result<OwnedFd, Fail> {
    let mut data = StackPath::new();
    let data = target.data_in(&mut data)?;
    trace_name(call, target, data)?;
    let mut lock_buf = StackPath::new();
    let mut lock_path = None;
    let guard = loop {
        if req.excl {
            // Anything at the path (even a symlink) makes an exclusive create fail, now and
            // under the lock alike: answer without touching a lock file. Objects only ever
            // appear whole, so seeing one here is as good as the lock's answer.
            if retry(|| lstat(data)).is_ok() {
                return Err(Fail::new(Errno::EEXIST, Op::Open, At::Data));
            }
        } else {
            // The common case, an object that already exists, needs no lock and no lock path.
            match open_existing(call, data, req.access, req.truncate) {
                Err(e) if req.create && e.errno == Errno::ENOENT => {}
                done => return done,
            }
        }
        // Built once, and only when the lock-free paths above did not answer.
        if lock_path.is_none() {
            lock_path = target.lock_in(&mut lock_buf)?;
        }
        // A layout without lock files has no lock to take.
        let Some(path) = lock_path else {
            break None;
        };
        // Released by a holder while we waited: it most likely created the object, which the
        // lock-free paths above now find (see `lock::acquire_or_released`).
        if let Some(g) = lock::acquire_or_released(call, path)? {
            break Some(g);
        }
    };
    let fd = loop {
        match create_new(call, data, req.access, req.mode) {
            Err(e) if e.errno == Errno::EEXIST && !req.excl => {
                // Made by someone who takes no lock (or in a layout without locks).
                match open_existing(call, data, req.access, req.truncate) {
                    Err(e) if e.errno == Errno::ENOENT => continue,
                    done => break done?,
                }
            }
            done => break done?,
        }
    };
    // POSIX wants shm_open to return the lowest free descriptor: the lock file was opened
    // first, so the object's fd moves down into the lock's number as the lock is released.
    Ok(match guard {
        Some(g) => g.release_moving(fd),
        None => fd,
    })
}

/// `shm_unlink(3)` in `target`.
///
/// Takes no lock: `unlink(2)` is atomic, and a creator holding the lock only ever makes the
/// file in one step, so no creator can observe a half-done state.
pub(crate) fn unlink(call: &Call<'_>, target: &Target<'_>) -> Result<(), Fail> {
    let mut data = StackPath::new();
    let data = target.data_in(&mut data)?;
    trace_name(call, target, data)?;
    remove(call, data)
}

/// Reports the name step, building the lock path only when a tracer listens.
pub(crate) fn trace_name(call: &Call<'_>, target: &Target<'_>, data: &CStr) -> Result<(), Fail> {
    if call.traced() {
        let lock = target.lock()?;
        call.emit(Step::Name {
            name: target.name,
            data: as_path(data),
            lock: lock.as_ref().map(|l| l.as_path()),
        });
    }
    Ok(())
}

/// Turns an `open(2)` failure into a [`Fail`] that says what was found at the path.
///
/// Two answers concern the file found rather than the request, and are not in the errno set
/// `shm_open` documents: `EWOULDBLOCK` (someone holds a file lease on it; only its owner can)
/// and `ETXTBSY` (a running program). They become the refusal the file would get from the
/// checks (`EINVAL`, `EPERM`: a planted foreign file), or `EACCES` when it would pass them.
pub(crate) fn open_error(
    call: &Call<'_>,
    e: Errno,
    path: &CStr,
    op: Op,
    role: Role,
    at: At,
) -> Fail {
    match e {
        Errno::ELOOP => Fail::new(e, op, at).why(Why::Symlink(role)),
        // EISDIR: a directory opened for writing. ENXIO: a socket, or a FIFO with no reader.
        Errno::EISDIR | Errno::ENXIO => {
            Fail::new(Errno::EINVAL, op, at).why(Why::NotRegularPath(role))
        }
        Errno::EWOULDBLOCK | Errno::ETXTBSY => {
            if let Ok(st) = retry(|| lstat(path)) {
                if let Err(refused) = vet::file(call, &st, op, role, at) {
                    return refused;
                }
            }
            let why = if e == Errno::ETXTBSY {
                Why::Running(role)
            } else {
                Why::Lease(role)
            };
            Fail::new(Errno::EACCES, op, at).why(why)
        }
        _ => Fail::new(e, op, at),
    }
}

/// Open an existing data file (no `O_CREAT`), check it, and truncate if asked. The fd is the
/// caller's to keep: its `O_NONBLOCK` is cleared.
pub(crate) fn open_existing(
    call: &Call<'_>,
    path: &CStr,
    access: OFlag,
    truncate: bool,
) -> Result<OwnedFd, Fail> {
    open_then(call, path, access, truncate, true, |_| ()).map(|(fd, ())| fd)
}

/// [`open_existing`], also handing back what `fstat` said. `kept`: the fd leaves tmpshm, so
/// the `O_NONBLOCK` it was opened with is cleared (one `fcntl`); a caller that only maps and
/// closes it (a semaphore's) needs no such call.
pub(crate) fn open_checked(
    call: &Call<'_>,
    path: &CStr,
    access: OFlag,
    truncate: bool,
    kept: bool,
) -> Result<(OwnedFd, FileStat), Fail> {
    open_then(call, path, access, truncate, kept, |st| *st)
}

/// The open and checks of [`open_checked`]; `keep` takes from the `stat` what the caller wants
/// (nothing, for a plain open: the `stat` is never copied out).
#[inline(always)]
fn open_then<R>(
    call: &Call<'_>,
    path: &CStr,
    access: OFlag,
    truncate: bool,
    kept: bool,
    keep: impl FnOnce(&FileStat) -> R,
) -> Result<(OwnedFd, R), Fail> {
    let flags = access | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let fd = call
        .open(Role::Object, path, flags, Mode::empty())
        .map_err(|e| open_error(call, e, path, Op::Open, Role::Object, At::Data))?;
    let st = crate::sys::fstat(fd.as_fd()).map_err(|e| Fail::new(e, Op::Check, At::Data))?;
    vet::object(call, &st, Op::Check)?;
    if call.traced() {
        call.emit(Step::Checked {
            path: as_path(path),
            uid: st.st_uid,
            mode: vet::mode(&st) & 0o7777,
            #[allow(clippy::useless_conversion)] // nlink_t differs between platforms
            nlink: u64::from(st.st_nlink),
            size: st.st_size,
        });
    }
    if kept {
        crate::sys::clear_status_flags(fd.as_fd()).map_err(|e| Fail::new(e, Op::Open, At::Data))?;
    }
    if truncate {
        call.ftruncate(fd.as_fd(), path, 0)
            .map_err(|e| Fail::new(e, Op::Resize, At::Data))?;
    }
    let taken = keep(&st);
    Ok((fd, taken))
}

/// Create the data file; `EEXIST` if anything at all is at the path (links included).
pub(crate) fn create_new(
    call: &Call<'_>,
    path: &CStr,
    access: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Fail> {
    let flags = access
        | OFlag::O_CREAT
        | OFlag::O_EXCL
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    // O_EXCL made a new, empty, single-link regular file of ours: nothing to check or truncate.
    call.open(Role::Object, path, flags, mode)
        .map_err(|e| open_error(call, e, path, Op::Open, Role::Object, At::Data))
}

/// Grows a checked file from `from` to `to` bytes, reserving the new blocks: `ENOSPC` now
/// rather than `SIGBUS` at a later write. Where the file system cannot reserve, the file is
/// grown sparse with `ftruncate`.
pub(crate) fn grow(
    call: &Call<'_>,
    fd: &OwnedFd,
    path: &CStr,
    at: At,
    from: u64,
    to: u64,
) -> Result<(), Fail> {
    if to <= from {
        return Ok(());
    }
    let fail = |e| Fail::new(e, Op::Resize, at);
    match call.reserve(fd.as_fd(), path, from, to, false) {
        Ok(Reserved::Yes) => Ok(()),
        Ok(Reserved::Unsupported) => call.ftruncate(fd.as_fd(), path, to).map_err(fail),
        // fallocate needs a writable fd, as ftruncate does (which says EINVAL).
        Err(Errno::EBADF) => Err(fail(Errno::EINVAL).why(Why::ReadOnly)),
        Err(e) => Err(fail(e).why(Why::Reserve { bytes: to - from })),
    }
}

/// Remove the data file.
pub(crate) fn remove(call: &Call<'_>, path: &CStr) -> Result<(), Fail> {
    call.unlink(Role::Object, path).map_err(|e| match e {
        // The sticky bit refuses another user's file with EPERM; POSIX (and glibc) say EACCES.
        Errno::EPERM => Fail::new(Errno::EACCES, Op::Unlink, At::Data).why(Why::ForeignUnlink),
        Errno::EISDIR => Fail::new(Errno::EINVAL, Op::Unlink, At::Data).why(Why::DirAtDataPath),
        e => Fail::new(e, Op::Unlink, At::Data),
    })
}
