//! Step-by-step tracing, for people studying how a libc implementation works.
//!
//! A [`ShmDir`](crate::ShmDir) with a tracer calls it at every step of every operation.
//! Without one the cost is a single branch per step.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// One step of an operation, handed to the tracer set with
/// [`ShmDir::trace`](crate::ShmDir::trace).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Step<'a> {
    /// The name passed the rules and maps to these files.
    Name {
        /// The name as given.
        name: &'a [u8],
        /// The data file.
        data: &'a Path,
        /// The lock file, if the layout has one.
        lock: Option<&'a Path>,
    },
    /// Opening (or creating) the lock file.
    LockOpen {
        /// The lock file.
        path: &'a Path,
        /// Whether it was opened read-only (not writable for us).
        read_only: bool,
        /// Whether this is the first try, `O_EXCL`: a lock file we create ourselves needs no
        /// checks beyond "still linked".
        exclusive: bool,
    },
    /// Another process holds the lock: blocking in `flock(LOCK_EX)` until it lets go.
    LockWait {
        /// The lock file.
        path: &'a Path,
    },
    /// The lock file we locked had been released and unlinked by its holder: start again.
    LockRetry {
        /// The lock file.
        path: &'a Path,
    },
    /// The lock file was free but open to other users, so one of them might hold an fd to it:
    /// removed (as a holder does on release) to start again with a fresh one of our own.
    LockTakeover {
        /// The lock file.
        path: &'a Path,
    },
    /// The lock is ours.
    LockAcquired {
        /// The lock file.
        path: &'a Path,
    },
    /// Releasing the lock: the lock file is unlinked and closed right after this step.
    LockReleased {
        /// The lock file.
        path: &'a Path,
    },
    /// `open(2)` of the data file with these flags (`O_*` names).
    Open {
        /// The data file.
        path: &'a Path,
        /// The flags passed to `open(2)`.
        flags: &'a str,
    },
    /// `fstat(2)` of the opened data file passed the checks.
    Checked {
        /// The data file.
        path: &'a Path,
        /// Owner uid.
        uid: u32,
        /// Permission bits.
        mode: u32,
        /// Hard links.
        nlink: u64,
        /// Size in bytes.
        size: i64,
    },
    /// `ftruncate(2)` of the data file.
    Truncate {
        /// The data file.
        path: &'a Path,
        /// The new size.
        len: u64,
    },
    /// `unlink(2)` of the data file.
    Unlink {
        /// The data file.
        path: &'a Path,
    },
    /// Any other system call of a higher-level operation (sized create, listing, collection),
    /// described in `call`.
    Call {
        /// The call, e.g. `fchmod 0600` or `gc flock(LOCK_EX|LOCK_NB)`.
        call: &'a str,
        /// The file it concerns.
        path: &'a Path,
    },
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Step::Name { name, data, lock } => {
                write!(
                    f,
                    "name {:?} ok -> data {}",
                    String::from_utf8_lossy(name),
                    data.display()
                )?;
                match lock {
                    Some(l) => write!(f, ", lock {}", l.display()),
                    None => write!(f, ", no lock file"),
                }
            }
            Step::LockOpen {
                path,
                read_only,
                exclusive,
            } => write!(
                f,
                "lock open {} (O_CREAT|{}{}|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK)",
                path.display(),
                if exclusive { "O_EXCL|" } else { "" },
                if read_only { "O_RDONLY" } else { "O_RDWR" }
            ),
            Step::LockWait { path } => {
                write!(
                    f,
                    "lock busy, blocking in flock(LOCK_EX) on {}",
                    path.display()
                )
            }
            Step::LockRetry { path } => write!(
                f,
                "lock file {} was released and unlinked by its holder; retrying",
                path.display()
            ),
            Step::LockTakeover { path } => write!(
                f,
                "lock file {} is free but open to other users: removing it and starting again \
                 with one of our own",
                path.display()
            ),
            Step::LockAcquired { path } => write!(f, "lock acquired {}", path.display()),
            Step::LockReleased { path } => write!(f, "unlock: unlink + close {}", path.display()),
            Step::Open { path, flags } => write!(f, "open {} {}", path.display(), flags),
            Step::Checked {
                path,
                uid,
                mode,
                nlink,
                size,
            } => write!(
                f,
                "fstat {}: regular file, uid {}, mode {:04o}, nlink {}, size {} -> ok",
                path.display(),
                uid,
                mode,
                nlink,
                size
            ),
            Step::Truncate { path, len } => write!(f, "ftruncate {} to {}", path.display(), len),
            Step::Unlink { path } => write!(f, "unlink {}", path.display()),
            Step::Call { call, path } => write!(f, "{call} {}", path.display()),
        }
    }
}

/// A tracer: called with every step. Shared, so a [`ShmDir`](crate::ShmDir) stays cheap to clone.
pub type Tracer = Arc<dyn Fn(&Step<'_>) + Send + Sync>;

/// Hands `step` to the tracer, if there is one.
pub(crate) fn emit(tracer: Option<&Tracer>, step: Step<'_>) {
    if let Some(t) = tracer {
        t(&step);
    }
}
