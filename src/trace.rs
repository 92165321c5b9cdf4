//! Step-by-step tracing, for people studying how a libc implementation works.
//!
//! A [`ShmDir`](crate::ShmDir) with a tracer calls it at every step of every operation. Each
//! step that stands for a system call carries the very flags, modes and paths that the call
//! is given (the traced call sites build the step and the call from the same values), and
//! [`Step`]'s `Display` renders them in one place. Without a tracer the cost is one branch per
//! step.

use std::fmt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::Role;
use crate::escape::Escaped;

/// The `flock(2)` operation of a [`Step::Flock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlockOp {
    /// `LOCK_EX`: wait until no one else holds it.
    Exclusive,
    /// `LOCK_EX|LOCK_NB`: take it if free.
    ExclusiveNonblock,
    /// `LOCK_SH|LOCK_NB`: a probe; refused means someone holds it.
    SharedNonblock,
}

/// One step of an operation, handed to the tracer set with
/// [`ShmDir::with_trace`](crate::ShmDir::with_trace).
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
    /// `open(2)`, with the flags and mode passed to it.
    Open {
        /// What the file is taken for.
        role: Role,
        /// The file.
        path: &'a Path,
        /// The flags passed to `open(2)`.
        flags: OFlag,
        /// The mode passed to `open(2)` (used only with `O_CREAT`).
        mode: Mode,
    },
    /// `fstat(2)` of an opened data file passed the checks.
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
    /// `flock(2)` on a file (a temporary file, or one that `gc` or a listing looks at).
    Flock {
        /// What the file is taken for.
        role: Role,
        /// The file.
        path: &'a Path,
        /// The operation.
        op: FlockOp,
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
    /// `ftruncate(2)`.
    Truncate {
        /// The file.
        path: &'a Path,
        /// The new size.
        len: u64,
    },
    /// `fallocate(2)`: reserve the blocks of `from..to` (and grow the file to `to` unless
    /// `keep_size`).
    Reserve {
        /// The file.
        path: &'a Path,
        /// Start of the range.
        from: u64,
        /// End of the range.
        to: u64,
        /// `FALLOC_FL_KEEP_SIZE`.
        keep_size: bool,
    },
    /// `fchmod(2)`.
    Chmod {
        /// The file.
        path: &'a Path,
        /// The mode set.
        mode: Mode,
    },
    /// `renameat2(from, to, RENAME_NOREPLACE)`.
    Rename {
        /// The temporary file.
        from: &'a Path,
        /// The data file.
        to: &'a Path,
    },
    /// `link(2)`, where `renameat2` is missing.
    Link {
        /// The temporary file.
        from: &'a Path,
        /// The data file.
        to: &'a Path,
    },
    /// `unlink(2)`.
    Unlink {
        /// What the file is taken for.
        role: Role,
        /// The file.
        path: &'a Path,
    },
}

/// The names of the `O_*` flags in `flags`, `|`-separated, access mode first.
pub(crate) struct Flags(pub(crate) OFlag);

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = self.0 & OFlag::O_ACCMODE;
        f.write_str(if access == OFlag::O_RDWR {
            "O_RDWR"
        } else if access == OFlag::O_WRONLY {
            "O_WRONLY"
        } else {
            "O_RDONLY"
        })?;
        let mut rest = self.0 - OFlag::O_ACCMODE;
        for (flag, name) in [
            (OFlag::O_CREAT, "O_CREAT"),
            (OFlag::O_EXCL, "O_EXCL"),
            (OFlag::O_TRUNC, "O_TRUNC"),
            (OFlag::O_NOFOLLOW, "O_NOFOLLOW"),
            (OFlag::O_CLOEXEC, "O_CLOEXEC"),
            (OFlag::O_NOCTTY, "O_NOCTTY"),
            (OFlag::O_NONBLOCK, "O_NONBLOCK"),
            (OFlag::O_APPEND, "O_APPEND"),
        ] {
            if rest.contains(flag) {
                write!(f, "|{name}")?;
                rest -= flag;
            }
        }
        if !rest.is_empty() {
            write!(f, "|{:#o}", rest.bits())?;
        }
        Ok(())
    }
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = Escaped::path;
        match *self {
            Step::Name { name, data, lock } => {
                write!(f, "name \"{}\" ok -> data {}", Escaped::new(name), p(data))?;
                match lock {
                    Some(l) => write!(f, ", lock {}", p(l)),
                    None => write!(f, ", no lock file"),
                }
            }
            Step::Open {
                role,
                path,
                flags,
                mode,
            } => {
                match role {
                    Role::Object => write!(f, "open {} {}", p(path), Flags(flags))?,
                    Role::Lock => write!(f, "lock open {} {}", p(path), Flags(flags))?,
                    Role::Temp => write!(f, "open (temporary file) {} {}", p(path), Flags(flags))?,
                }
                if flags.contains(OFlag::O_CREAT) {
                    write!(f, " {:04o}", mode.bits())?;
                }
                Ok(())
            }
            Step::Checked {
                path,
                uid,
                mode,
                nlink,
                size,
            } => write!(
                f,
                "fstat {}: regular file, uid {uid}, mode {mode:04o}, nlink {nlink}, size {size} -> ok",
                p(path)
            ),
            Step::Flock { role, path, op } => {
                let op = match op {
                    FlockOp::Exclusive => "LOCK_EX",
                    FlockOp::ExclusiveNonblock => "LOCK_EX|LOCK_NB",
                    FlockOp::SharedNonblock => "LOCK_SH|LOCK_NB",
                };
                write!(f, "flock({op}) {role} {}", p(path))
            }
            Step::LockWait { path } => {
                write!(f, "lock busy, blocking in flock(LOCK_EX) on {}", p(path))
            }
            Step::LockRetry { path } => write!(
                f,
                "lock file {} was released and unlinked by its holder; retrying",
                p(path)
            ),
            Step::LockTakeover { path } => write!(
                f,
                "lock file {} is free but open to other users: removing it and starting again \
                 with one of our own",
                p(path)
            ),
            Step::LockAcquired { path } => write!(f, "lock acquired {}", p(path)),
            Step::LockReleased { path } => write!(f, "unlock: unlink + close {}", p(path)),
            Step::Truncate { path, len } => write!(f, "ftruncate {} to {len}", p(path)),
            Step::Reserve {
                path,
                from,
                to,
                keep_size,
            } => write!(
                f,
                "fallocate {from}..{to}{} {}",
                if keep_size { " FALLOC_FL_KEEP_SIZE" } else { "" },
                p(path)
            ),
            Step::Chmod { path, mode } => write!(f, "fchmod {:04o} {}", mode.bits(), p(path)),
            Step::Rename { from, to } => {
                write!(f, "renameat2 RENAME_NOREPLACE {} -> {}", p(from), p(to))
            }
            Step::Link { from, to } => write!(f, "link {} -> {}", p(from), p(to)),
            Step::Unlink { role, path } => match role {
                Role::Object => write!(f, "unlink {}", p(path)),
                _ => write!(f, "unlink ({role}) {}", p(path)),
            },
        }
    }
}

/// What the layers below the public API call with each step: a function, borrowed for the call.
pub(crate) type Tracer<'a> = &'a (dyn Fn(&Step<'_>) + Send + Sync);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_every_bit() {
        let f = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
        assert_eq!(Flags(f).to_string(), "O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW");
        assert_eq!(Flags(OFlag::O_RDONLY).to_string(), "O_RDONLY");
        let odd = OFlag::O_WRONLY | OFlag::O_DIRECTORY;
        assert_eq!(
            Flags(odd).to_string(),
            format!("O_WRONLY|{:#o}", OFlag::O_DIRECTORY.bits())
        );
    }

    #[test]
    fn paths_and_names_are_escaped() {
        let s = Step::Name {
            name: b"/a\x1b]0;x\x07",
            data: Path::new("/tmp/.SHMDa\n"),
            lock: None,
        };
        let shown = s.to_string();
        assert!(!shown.bytes().any(|b| b < 0x20), "{shown:?}");
        assert!(shown.contains(r"\x1b]0;x\x07") && shown.contains(r".SHMDa\n"));
    }
}
