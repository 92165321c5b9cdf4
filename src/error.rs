//! The error type: an errno that also says which path (or name) failed and why.
//!
//! `std::io::Error` can hold an OS error code or a payload, never both, so an
//! `io::Error` built from a path-naming payload answers `None` to `raw_os_error()`.
//! [`Error`] keeps both; `?` turns it into an `io::Error` (kind kept, payload
//! downcastable) or a `nix::Errno` where a caller needs one of those.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// What tmpshm was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Checking the object name (nothing was touched).
    Name,
    /// Checking the requested flags or mode (nothing was touched).
    Flags,
    /// Taking the creation lock.
    Lock,
    /// Opening or creating the data file.
    Open,
    /// Checking what was opened (type, owner, links).
    Check,
    /// Truncating the data file.
    Truncate,
    /// Removing the data file.
    Unlink,
    /// Reading the environment (`TMPSHM_DIR`).
    Env,
    /// Mapping the object into memory.
    Map,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Name => "name",
            Op::Flags => "flags",
            Op::Lock => "lock",
            Op::Open => "open",
            Op::Check => "check",
            Op::Truncate => "truncate",
            Op::Unlink => "unlink",
            Op::Env => "env",
            Op::Map => "map",
        }
    }
}

/// An error from tmpshm: the errno, the step, the path or name it concerns, and a reason.
///
/// Display gives one line, for example
/// `open /tmp/.SHMDblah: ENOENT (No such file or directory)`, or
/// `check /tmp/.SHMDblah: EPERM (Operation not permitted): owned by uid 65534, not by us (uid 0); allow cross-user sharing to open it`.
#[derive(Debug, Clone)]
pub struct Error {
    errno: Errno,
    op: Op,
    path: PathBuf,
    reason: Option<String>,
}

impl Error {
    pub(crate) fn new(errno: Errno, op: Op, path: impl Into<PathBuf>) -> Error {
        Error {
            errno,
            op,
            path: path.into(),
            reason: None,
        }
    }

    pub(crate) fn because(mut self, reason: impl Into<String>) -> Error {
        self.reason = Some(reason.into());
        self
    }

    /// The errno, as `std::io::Error::raw_os_error` would give it. Always `Some`.
    pub fn raw_os_error(&self) -> Option<i32> {
        Some(self.errno as i32)
    }

    /// The errno as nix's type.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The `io::ErrorKind` of the errno.
    pub fn kind(&self) -> io::ErrorKind {
        io::Error::from_raw_os_error(self.errno as i32).kind()
    }

    /// The step that failed.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The file that failed, or the object name when the name or flags were refused.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why tmpshm refused, when the refusal was its own rather than the kernel's.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {:?} ({})",
            self.op.verb(),
            self.path.display(),
            self.errno,
            self.errno.desc()
        )?;
        if let Some(r) = &self.reason {
            write!(f, ": {r}")?;
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

/// The errno of any `io::Error`: its own code, or that of a [`Error`] it carries.
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
            .and_then(Error::raw_os_error)
    })
}
