//! POSIX named shared memory in userspace, the illumos way: `shm_open("/blah")` is the plain
//! file `/tmp/.SHMDblah`, created under a short-lived lock file `/tmp/.SHMLblah`.
//!
//! illumos keeps POSIX shared memory out of the kernel: its libc turns a name into a file in
//! `/tmp` and hands back an ordinary fd to `ftruncate` and `mmap`. This crate does the same,
//! never calling the system's `shm_open`, so that programs get named shared memory where the
//! system has none (Android's bionic) or where it is broken (no `/dev/shm`, a read-only or tiny
//! one), and so that the mechanism can be read, traced and tested.
//!
//! It improves on the original where the original is unsafe or fragile:
//! - the lock is a kernel `flock` on the lock file: waiters block in the kernel instead of
//!   polling with `sleep(1)`, and a holder that dies releases it (illumos jams for good);
//! - symbolic links are never followed (`O_NOFOLLOW`, no check-then-use gap); neither a FIFO
//!   nor a file lease can make an open wait; what was opened is checked with `fstat` (a regular
//!   file, ours, one link, not open to others' writes);
//! - opening an existing object takes no lock: an `open` and the checks of its `fstat`.
//!
//! # Which door to use
//! - [`ShmOptions`] and [`Shm`]: sized objects, created atomically (no opener ever sees one
//!   smaller than its size), an owned handle that can unlink on drop, a checked [`Mapping`].
//!   The easiest, for new code.
//! - [`ShmDir`]: `shm_open`/`shm_unlink` with POSIX semantics, in a directory of your choice,
//!   with a [tracer](ShmDir::with_trace); also lists ([`ShmDir::list`]) and collects
//!   ([`ShmDir::gc`]) what crashed programs left. Its errors ([`Error`]) keep the errno and
//!   name the file.
//! - [`shm_open`] and [`shm_unlink`]: drop-ins for nix's `sys::mman` functions of the same
//!   name and signature, in the directory the environment chooses; switch by changing one
//!   `use` line.
//! - [`SemOptions`] and [`Semaphore`]: named semaphores (`sem_open`), the libc's own
//!   process-shared `sem_t` in a file of the same directory; [`sem_open`] and [`sem_unlink`]
//!   as drop-ins.
//!
//! C programs use the C libraries built from this crate: a linkable one (`tmpshm_shm_open`)
//! and a preload one that stands in for the system's `shm_open`.
//!
//! # The directory
//! `/tmp` by default, as on illumos; `$TMPSHM_DIR` ([`ShmDir::from_env`]); or whatever a
//! [`ShmDir`] names. Processes that share objects must agree on it. A tmpfs (`/dev/shm`) keeps
//! the pages in memory; on a disk file system dirty pages are written back. On Android, use a
//! directory of your app's.
//!
//! # Layers
//! As in illumos's `pos4obj`, one generic layer for every kind of object (shared memory and
//! named semaphores), under thin front ends:
//! - `name`: the name rules, the object kinds and layouts ([`ObjectKind`], [`Layout`]), and the
//!   paths they map to, built on the stack;
//! - `lock`: the creation lock, a `flock` on the lock file (its protocol is in the module);
//! - `vet`: what is accepted in a shared directory; `object`: open, create, resize, unlink;
//!   `publish`: the atomic create;
//! - `call` and `sys`: one call's context with its traced system calls, and the few raw calls;
//! - front ends: [`ShmDir`] (`dir`), [`ShmOptions`] (`options`), [`Shm`] (`shm`),
//!   [`Mapping`] (`map`), [`Semaphore`] (`sem`, over `registry`, the table that keeps one
//!   mapping of each semaphore per process), the listing (`inventory`), [`Step`] (`trace`),
//!   [`Error`] (`error`), names shown escaped ([`Escaped`], `escape`), the environment
//!   (`env`), and the C ABI (`capi`).
//!
//! The layers below the front ends make no heap allocation, not even to fail, so that the C
//! entry points can promise none on any path.
//!
//! # Security
//! Objects live in a directory that, by default, every local user can write; anyone there may
//! plant a symbolic link, a FIFO, a hard link, a file of their own, a lock file, a lease. Every
//! call refuses what it did not make and cannot trust, promptly and with a documented errno;
//! see [`ShmDir`]'s security section. Cross-user sharing ([`ShmDir::with_cross_user`],
//! `TMPSHM_CROSS_USER=1`) trusts the other users, on purpose. A set-user-ID program ignores
//! both environment variables.
//!
//! # Example
//! ```
//! use tmpshm::{Access, ShmDir, ShmOptions};
//! let dir = tempfile::tempdir()?;
//! let opts = ShmOptions::new().dir(ShmDir::new(dir.path())).size(4096);
//! let shm = opts.create("/blah")?;                   // <dir>/.SHMDblah, 4096 bytes
//! shm.map(Access::ReadWrite)?.write_at(0, b"hello")?;
//! let other = opts.open("/blah")?;                   // another process would do this
//! let mut buf = [0u8; 5];
//! other.map(Access::ReadOnly)?.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//! shm.unlink()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # References
//! [POSIX `shm_open`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shm_open.html),
//! [illumos `shm_open(3C)`](https://illumos.org/man/3C/shm_open) and its
//! [`pos4obj.c`](https://github.com/illumos/illumos-gate/blob/master/usr/src/lib/libc/port/rt/pos4obj.c),
//! [Linux `flock(2)`](https://man7.org/linux/man-pages/man2/flock.2.html).
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

mod call;
#[doc(hidden)]
pub mod capi;
mod dir;
mod env;
mod error;
mod escape;
mod inventory;
mod lock;
mod map;
mod name;
mod object;
mod options;
mod publish;
mod registry;
mod sem;
mod shm;
mod sys;
mod trace;
mod vet;

use std::os::fd::OwnedFd;

pub use dir::ShmDir;
pub use env::{DEFAULT_DIR, ENV_CROSS_USER, ENV_DIR};
pub use error::{errno_of, Error, Op, Result, Role};
pub use escape::{unescape, Escaped, UnescapeError};
pub use inventory::{AuxKind, FileKind, GcReport, Inventory, LockInfo, LockState, ObjectInfo};
pub use map::{Access, Mapping};
pub use name::{Layout, ObjectKind, ObjectName};
pub use nix::fcntl::OFlag;
pub use nix::sys::stat::Mode;
pub use nix::NixPath;
pub use options::ShmOptions;
pub use sem::{SemOptions, Semaphore, SEM_SIZE};
pub use shm::Shm;
pub use trace::{FlockOp, Step};

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
    let dir = ShmDir::from_env()?;
    name.with_nix_path(|c| dir.open(c, flag, mode))?
        .map_err(Into::into)
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
    let dir = ShmDir::from_env()?;
    name.with_nix_path(|c| dir.unlink(c))?.map_err(Into::into)
}

/// `sem_open(3)` in the directory the environment chooses ([`ShmDir::from_env`]): `oflag` is
/// `O_CREAT`, `O_CREAT|O_EXCL` or empty; `mode` (minus the umask) and `value` are used when
/// creating. See [`SemOptions`] for the builder.
///
/// # Errors
/// As [`SemOptions::create`] and [`SemOptions::open`], errno by errno.
///
/// # Example
/// ```
/// use tmpshm::{sem_open, sem_unlink, Mode, OFlag};
/// let dir = tempfile::tempdir().unwrap();
/// std::env::set_var("TMPSHM_DIR", dir.path());
/// let sem = sem_open("/doc-sem-open", OFlag::O_CREAT | OFlag::O_EXCL, Mode::S_IRWXU, 1)?;
/// sem.wait()?;
/// sem_unlink("/doc-sem-open")?;
/// # Ok::<(), tmpshm::Error>(())
/// ```
pub fn sem_open(name: impl ObjectName, oflag: OFlag, mode: Mode, value: u32) -> Result<Semaphore> {
    sem::open_env(name.name_bytes(), oflag, mode, value)
}

/// `sem_unlink(3)` in the directory the environment chooses.
///
/// # Errors
/// As [`ShmDir::unlink`].
///
/// # Example
/// See [`sem_open`].
pub fn sem_unlink(name: impl ObjectName) -> Result<()> {
    SemOptions::new().unlink(name)
}

// The README's example is compiled and run with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
