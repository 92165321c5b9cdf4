//! Errors: the public [`Error`] (an errno that also says which file failed and why), and the
//! allocation-free [`Fail`] that the layers below it return.
//!
//! `std::io::Error` can hold an OS error code or a payload, never both, so an `io::Error`
//! built from a path-naming payload answers `None` to `raw_os_error()`. [`Error`] keeps both;
//! `?` turns it into an `io::Error` (kind kept, payload downcastable) or a `nix::Errno`.
//!
//! The layers below the public API never allocate, not even to fail: they return a [`Fail`],
//! plain data that says which file ([`At`]) and why ([`Why`]). The public API turns it into an
//! [`Error`], building the path and the reason text only then; the C entry points keep just
//! the errno.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::escape::Escaped;

/// What tmpshm was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Checking the object name or the directory path (nothing was touched).
    Name,
    /// Checking the requested flags, mode or size (nothing was touched).
    Flags,
    /// Reading the environment (`TMPSHM_DIR`).
    Env,
    /// Taking the creation lock.
    Lock,
    /// Opening or creating a file.
    Open,
    /// Checking what was opened (type, owner, links, mode).
    Check,
    /// Changing an object's size (`O_TRUNC`, growing, reserving blocks).
    Resize,
    /// Removing a file.
    Unlink,
    /// Mapping an object into memory.
    Map,
    /// Reading the directory.
    List,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Name => "name",
            Op::Flags => "flags",
            Op::Env => "env",
            Op::Lock => "lock",
            Op::Open => "open",
            Op::Check => "check",
            Op::Resize => "resize",
            Op::Unlink => "unlink",
            Op::Map => "map",
            Op::List => "list",
        }
    }
}

/// An error from tmpshm: the errno, the step, the file (or name) it concerns, and a reason.
///
/// Display gives one line, for example
/// `open /tmp/.SHMDblah: ENOENT (No such file or directory)`, or
/// `check /tmp/.SHMDblah: EPERM (Operation not permitted): the object is owned by uid 65534, not by us (uid 0); allow cross-user sharing to use it`.
/// Control characters and invalid UTF-8 in the path are escaped (see [`Escaped`]): a name
/// chosen by another user cannot rewrite the terminal it is printed to.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir()?;
/// let err = tmpshm::ShmDir::new(dir.path())
///     .open("/missing", tmpshm::OFlag::O_RDWR, tmpshm::Mode::empty())
///     .unwrap_err();
/// assert_eq!(err.errno(), nix::errno::Errno::ENOENT);
/// assert_eq!(err.path(), Some(dir.path().join(".SHMDmissing").as_path()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    errno: Errno,
    op: Op,
    path: Option<PathBuf>,
    reason: Option<String>,
}

impl Error {
    pub(crate) fn new(errno: Errno, op: Op, path: impl Into<PathBuf>) -> Error {
        Error {
            errno,
            op,
            path: Some(path.into()),
            reason: None,
        }
    }

    pub(crate) fn without_path(errno: Errno, op: Op) -> Error {
        Error {
            errno,
            op,
            path: None,
            reason: None,
        }
    }

    pub(crate) fn because(mut self, reason: impl Into<String>) -> Error {
        self.reason = Some(reason.into());
        self
    }

    /// The errno.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The errno as a number, as `std::io::Error::raw_os_error` would give it.
    pub fn raw_os_error(&self) -> i32 {
        self.errno as i32
    }

    /// The `io::ErrorKind` of the errno.
    pub fn kind(&self) -> io::ErrorKind {
        io::Error::from_raw_os_error(self.errno as i32).kind()
    }

    /// The step that failed.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The file that failed, or the object name when the name or flags were refused; `None`
    /// where no path is concerned (a mapping of an fd).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Why tmpshm refused, when the refusal was its own rather than the kernel's.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.verb())?;
        if let Some(p) = &self.path {
            write!(f, " {}", Escaped::path(p))?;
        }
        write!(f, ": {:?} ({})", self.errno, self.errno.desc())?;
        if let Some(r) = &self.reason {
            write!(f, ": {}", Escaped::new(r.as_bytes()))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

impl From<Error> for Errno {
    fn from(e: Error) -> Errno {
        e.errno
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The errno of any `io::Error`: its own code, or that of an [`Error`] it carries.
///
/// # Example
/// ```
/// let e: std::io::Error = tmpshm::ShmDir::new("/tmp").unlink("no-slash").unwrap_err().into();
/// assert_eq!(e.raw_os_error(), None); // std cannot hold both a payload and a code
/// assert_eq!(tmpshm::errno_of(&e), Some(libc::EINVAL));
/// ```
pub fn errno_of(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
            .map(Error::raw_os_error)
    })
}

/// Which file a [`Fail`] concerns; the caller knows the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    /// The object name (refused before anything was touched).
    Name,
    /// The directory.
    Dir,
    /// The data file.
    Data,
    /// The lock file.
    Lock,
    /// The temporary file with this number (see `Target::temp`).
    Temp(u64),
}

/// What a file found in the directory was taken for, in reasons and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// A data file: the object itself.
    Object,
    /// A lock file.
    Lock,
    /// The temporary file of an atomic create.
    Temp,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Object => "the object",
            Role::Lock => "the lock file",
            Role::Temp => "the temporary file",
        })
    }
}

/// Why a request was refused before anything was touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagError {
    AccessMode,
    Unsupported(i32),
    ExclWithoutCreat,
    TruncReadOnly,
    ModeBits(u32),
    NoSize,
    TooLarge(u64),
    SemValue(u32),
}

/// Why tmpshm refused (or what the kernel's answer meant), as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    Kernel,
    Name(crate::name::NameError),
    DirPath,
    DirNotAbsolute,
    PathTooLong,
    Flags(FlagError),
    NotRegular { found: &'static str, role: Role },
    Foreign { uid: u32, euid: u32, role: Role },
    Links { n: u64, role: Role },
    OthersCanLink { mode: u32 },
    LockBusyOpen { mode: u32 },
    Symlink(Role),
    NotRegularPath(Role),
    Lease(Role),
    Running(Role),
    LockCannotCreate,
    LockUnopenable,
    ForeignUnlink,
    DirAtDataPath,
    Reserve { bytes: u64 },
    ReadOnly,
    TempNamesTaken,
    TooSmall { size: u64, want: u64 },
    NameNowOther,
    NameTaken,
    NotASemaphore { size: u64 },
    NoFlock(Errno),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Why::Kernel => Ok(()),
            Why::Name(e) => f.write_str(e.reason()),
            Why::DirPath => f.write_str("the directory path is empty or contains a NUL byte"),
            Why::DirNotAbsolute => f.write_str("TMPSHM_DIR must be an absolute path"),
            Why::PathTooLong => f.write_str("the path is longer than PATH_MAX"),
            Why::Flags(FlagError::AccessMode) => {
                f.write_str("the access mode must be O_RDONLY or O_RDWR")
            }
            Why::Flags(FlagError::Unsupported(bits)) => write!(
                f,
                "unsupported flags {bits:#o}; only O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC \
                 (and the implied O_CLOEXEC, O_NOFOLLOW)"
            ),
            Why::Flags(FlagError::ExclWithoutCreat) => f.write_str("O_EXCL without O_CREAT"),
            Why::Flags(FlagError::TruncReadOnly) => f.write_str("O_TRUNC with O_RDONLY"),
            Why::Flags(FlagError::ModeBits(m)) => {
                write!(f, "mode {m:#o} has bits outside the permission bits 0o777")
            }
            Why::Flags(FlagError::NoSize) => {
                f.write_str("creating needs a size: call .size(n) first")
            }
            Why::Flags(FlagError::TooLarge(n)) => {
                write!(f, "{n} bytes is more than a file can hold")
            }
            Why::Flags(FlagError::SemValue(v)) => write!(
                f,
                "the initial value {v} is above SEM_VALUE_MAX ({})",
                crate::sem::value_max()
            ),
            Why::NotRegular { found, role } => {
                write!(f, "{found} is at the path of {role}, not a regular file")
            }
            Why::Foreign { uid, euid, role } => write!(
                f,
                "{role} is owned by uid {uid}, not by us (uid {euid}); allow cross-user sharing \
                 to use it"
            ),
            Why::Links { n, role } => write!(f, "{role} has {n} hard links; refusing to use it"),
            Why::OthersCanLink { mode } => write!(
                f,
                "other users can read and write the object (mode {mode:04o}), so any of them \
                 could have hard-linked it here under a name its owner never created; allow \
                 cross-user sharing to use it"
            ),
            Why::LockBusyOpen { mode } => write!(
                f,
                "the lock file is busy and open to other users (mode {mode:04o}), so its holder \
                 may be one of them, who could hold it forever; refusing to wait (allow \
                 cross-user sharing if that is intended)"
            ),
            Why::Symlink(role) => {
                write!(
                    f,
                    "a symbolic link is at the path of {role}; not following it"
                )
            }
            Why::NotRegularPath(role) => write!(f, "the path of {role} is not a regular file"),
            Why::Lease(role) => write!(
                f,
                "a process holds a file lease on {role}; not waiting for it to break"
            ),
            Why::Running(role) => write!(f, "{role} is a program being run; not writing to it"),
            Why::LockCannotCreate => {
                f.write_str("we may not create the lock file here (is the directory writable?)")
            }
            Why::LockUnopenable => f.write_str("the lock file exists and we may not open it"),
            Why::ForeignUnlink => f.write_str("the object belongs to another user"),
            Why::DirAtDataPath => f.write_str("a directory is at the data path, not an object"),
            Why::Reserve { bytes } => write!(f, "reserving {bytes} bytes for the object"),
            Why::ReadOnly => f.write_str("the object is open read-only"),
            Why::TempNamesTaken => {
                f.write_str("1000 temporary names in a row were taken; run `tmpshm gc`")
            }
            Why::TooSmall { size, want } => write!(
                f,
                "the object is {size} bytes long, smaller than the {want} bytes asked for"
            ),
            Why::NameNowOther => f.write_str("the name now names another object; leaving it alone"),
            Why::NameTaken => f.write_str("something is already at the data path"),
            Why::NoFlock(e) => write!(
                f,
                "this file system does not support flock(2) ({e:?}), which the creation lock \
                 needs; use a directory on a local file system, such as a tmpfs (/dev/shm)"
            ),
            Why::NotASemaphore { size } => write!(
                f,
                "the file is {size} bytes long, not one sem_t ({} bytes): not a semaphore",
                crate::sem::SEM_SIZE
            ),
        }
    }
}

/// A failure of the layers below the public API: no allocation, and no path (the caller
/// builds it from [`At`] if it wants one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fail {
    pub(crate) errno: Errno,
    pub(crate) op: Op,
    pub(crate) at: At,
    pub(crate) why: Why,
}

impl Fail {
    pub(crate) fn new(errno: Errno, op: Op, at: At) -> Fail {
        Fail {
            errno,
            op,
            at,
            why: Why::Kernel,
        }
    }

    pub(crate) fn why(mut self, why: Why) -> Fail {
        self.why = why;
        self
    }

    /// The public error, with `path` (see [`At`]) and the reason rendered.
    pub(crate) fn into_error(self, path: Option<PathBuf>) -> Error {
        let reason = match self.why {
            Why::Kernel => None,
            why => Some(why.to_string()),
        };
        Error {
            errno: self.errno,
            op: self.op,
            path,
            reason,
        }
    }
}

impl From<Fail> for Errno {
    fn from(f: Fail) -> Errno {
        f.errno
    }
}
