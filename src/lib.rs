//! POSIX `shm_open`/`shm_unlink` in userspace, the illumos way.
//!
//! illumos keeps POSIX shared memory out of the kernel: its libc turns `shm_open("/blah")`
//! into the plain file `/tmp/.SHMDblah`, created under a short-lived lock file
//! `/tmp/.SHMLblah`, and returns an ordinary fd to `ftruncate` and `mmap`. This crate does the
//! same, never calling the system's `shm_open`, so that programs get named shared memory where
//! there is none (Android's bionic), and so that the mechanism can be read, traced and tested.
//!
//! It improves on the original where the original is unsafe or fragile:
//! - the lock is a kernel `flock` on the lock file: waiters block in the kernel instead of
//!   polling with `sleep(1)`, and a holder that dies releases it (illumos jams for good);
//! - symbolic links are never followed (`O_NOFOLLOW`, no check-then-use gap); FIFOs never hang
//!   an open; what was opened is checked with `fstat` (regular file, our own, one link);
//! - opening an existing object takes no lock: one `open` and one `fstat`.
//!
//! Layers, as in illumos's `pos4obj`: `name` (rules and path mapping), `lock`, `object`
//! (open, check, unlink), and the public API in [`ShmDir`] and the free functions below.
//!
//! # Two APIs
//! - A drop-in for nix: [`shm_open`] and [`shm_unlink`] have the signatures of
//!   the `shm_open`/`shm_unlink` of nix's `sys::mman`; switch by changing one `use`.
//! - A std-style API: [`ShmDir`] (choose the directory and options) and [`open`]/[`unlink`],
//!   whose [`Error`] keeps the errno and names the path.
//!
//! # Directory
//! `/tmp`, or `$TMPSHM_DIR`, or whatever a [`ShmDir`] names. Processes that share objects must
//! agree on it.
//!
//! # Example
//! ```
//! use tmpshm::{Access, Mapping, OFlag, ShmDir};
//! let dir = tempfile::tempdir()?;
//! let shm = ShmDir::new(dir.path());
//! let fd = shm.open("/blah", OFlag::O_CREAT | OFlag::O_RDWR, 0o600)?;
//! nix::unistd::ftruncate(&fd, 4096)?;
//! let map = Mapping::new(&fd, 4096, Access::ReadWrite)?;
//! map.write_at(0, b"hello")?;
//! assert!(dir.path().join(".SHMDblah").is_file());
//! shm.unlink("/blah")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod eintr;
mod error;
mod escape;
mod inventory;
mod lock;
mod map;
mod name;
mod object;
mod options;
mod shm;
mod trace;

use std::os::fd::OwnedFd;

pub use error::{errno_of, Error, Op, Result};
pub use escape::{unescape, Escaped, UnescapeError};
pub use inventory::{AuxKind, FileKind, GcReport, Inventory, LockInfo, LockState, ObjectInfo};
pub use map::{Access, Mapping};
pub use name::Layout;
pub use nix::fcntl::OFlag;
pub use nix::sys::stat::Mode;
pub use nix::NixPath;
pub use options::{Shm, ShmOptions, TEMP_PREFIX};
pub use shm::{ShmDir, DEFAULT_DIR, ENV_CROSS_USER, ENV_DIR};
pub use trace::{Step, Tracer};

/// Drop-in for the `shm_open` of nix's `sys::mman`, in the directory the environment chooses
/// ([`ShmDir::from_env`]).
///
/// # Errors
/// The errno of [`ShmDir::from_env`] or [`ShmDir::open`] (see there, errno by errno); the path
/// is dropped, as nix's type holds only the errno.
///
/// # Example
/// ```
/// // use nix::sys::mman::{shm_open, shm_unlink};   // before
/// use tmpshm::{shm_open, shm_unlink};              // after
/// use nix::{fcntl::OFlag, sys::stat::Mode};
/// let dir = tempfile::tempdir().unwrap();
/// std::env::set_var("TMPSHM_DIR", dir.path());
/// let fd = shm_open("/doc-nix", OFlag::O_CREAT | OFlag::O_RDWR, Mode::S_IRUSR | Mode::S_IWUSR)?;
/// shm_unlink("/doc-nix")?;
/// # Ok::<(), nix::Error>(())
/// ```
pub fn shm_open<P: ?Sized + NixPath>(name: &P, flag: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    Ok(ShmDir::from_env()?.open(name, flag, mode.bits())?)
}

/// Drop-in for the `shm_unlink` of nix's `sys::mman`, in the directory the environment chooses.
///
/// # Errors
/// The errno of [`ShmDir::from_env`] or [`ShmDir::unlink`] (see there).
///
/// # Example
/// ```
/// use tmpshm::shm_unlink;
/// let dir = tempfile::tempdir().unwrap();
/// std::env::set_var("TMPSHM_DIR", dir.path());
/// assert_eq!(shm_unlink("/doc-nix-missing"), Err(nix::errno::Errno::ENOENT));
/// ```
pub fn shm_unlink<P: ?Sized + NixPath>(name: &P) -> nix::Result<()> {
    Ok(ShmDir::from_env()?.unlink(name)?)
}

/// [`ShmDir::open`] in the directory the environment chooses, with errors that name the path.
///
/// # Errors
/// As [`ShmDir::from_env`] and [`ShmDir::open`], errno by errno.
///
/// # Example
/// ```
/// use tmpshm::OFlag;
/// let dir = tempfile::tempdir()?;
/// std::env::set_var("TMPSHM_DIR", dir.path());
/// let err = tmpshm::open("/doc-std-missing", OFlag::O_RDWR, 0).unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
/// assert!(err.to_string().contains(".SHMDdoc-std-missing"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open<P: ?Sized + NixPath>(name: &P, flags: OFlag, mode: u32) -> Result<OwnedFd> {
    ShmDir::from_env()?.open(name, flags, mode)
}

/// [`ShmDir::unlink`] in the directory the environment chooses.
///
/// # Errors
/// As [`ShmDir::from_env`] and [`ShmDir::unlink`], errno by errno.
///
/// # Example
/// ```
/// let err = tmpshm::unlink("no-leading-slash").unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
/// ```
pub fn unlink<P: ?Sized + NixPath>(name: &P) -> Result<()> {
    ShmDir::from_env()?.unlink(name)
}
