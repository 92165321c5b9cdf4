//! [`Shm`]: an open object, which can own its name.
//!
//! [`Shm::unlink`] and unlink-on-drop remove the name only if it still names the file the
//! handle has open, and they compare and unlink while holding the creation lock: every tmpshm
//! creator (and illumos libc) takes that lock, so none can re-create the name in between. A
//! creator that takes no lock (the glibc layout, or the system's own `shm_open` in `/dev/shm`)
//! can still slip a new object in between the compare and the unlink.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{fstat, lstat};

use crate::dir::ShmDir;
use crate::error::{At, Fail, Op, Result, Why};
use crate::lock;
use crate::map::{Access, Mapping};
use crate::name::ObjectKind;
use crate::object;
use crate::sys::retry;
use crate::vet;

/// An open object: its fd, and (if asked) ownership, i.e. unlinking it on drop.
///
/// Made by [`ShmOptions`](crate::ShmOptions).
///
/// # Example
/// ```
/// use tmpshm::{Access, ShmDir, ShmOptions};
/// let dir = tempfile::tempdir()?;
/// let shm = ShmOptions::new().dir(ShmDir::new(dir.path())).size(4096).create("/doc-shm")?;
/// let map = shm.map(Access::ReadWrite)?;
/// map.write_at(0, b"hello")?;
/// shm.unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// With memmap2, for slices: the length check is then yours ([`Shm::len`] is the size the
/// object had when opened), and so is the promise that no process truncates it meanwhile.
/// ```
/// use tmpshm::{ShmDir, ShmOptions};
/// let dir = tempfile::tempdir()?;
/// let shm = ShmOptions::new().dir(ShmDir::new(dir.path())).size(4096).create("/doc-m2")?;
/// // SAFETY: only this process uses the fresh object, so nobody truncates or writes it.
/// let mut m = unsafe { memmap2::MmapOptions::new().len(shm.len()).map_mut(&shm)? };
/// m[..2].copy_from_slice(b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Shm {
    // `None` only inside `into_fd`, which consumes the handle.
    fd: Option<OwnedFd>,
    dir: ShmDir,
    name: OsString,
    path: PathBuf,
    size: usize,
    created: bool,
    unlink_on_drop: bool,
}

impl Shm {
    pub(crate) fn new(
        fd: OwnedFd,
        dir: ShmDir,
        name: OsString,
        path: PathBuf,
        size: usize,
        created: bool,
        unlink_on_drop: bool,
    ) -> Shm {
        Shm {
            fd: Some(fd),
            dir,
            name,
            path,
            size,
            created,
            unlink_on_drop,
        }
    }

    /// The object's size in bytes when it was opened or created (or grown by this handle).
    pub fn len(&self) -> usize {
        self.size
    }

    /// Whether the size was 0.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The object name, e.g. `/blah`.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The data file, e.g. `/tmp/.SHMDblah`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this call created the object (see
    /// [`ShmOptions::open_or_create`](crate::ShmOptions::open_or_create)).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Whether dropping the handle unlinks the object.
    pub fn unlinks_on_drop(&self) -> bool {
        self.unlink_on_drop
    }

    /// Unlink the object when this handle is dropped (or not).
    ///
    /// The drop unlinks only if the data path still names the file this handle has open, so
    /// an object that someone else unlinked and re-created is left alone (the one gap is that
    /// of [`Shm::unlink`]). Errors on drop are ignored; call [`Shm::unlink`] to see them.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let mut shm = ShmOptions::new().dir(ShmDir::new(dir.path())).size(1).create("/doc-own")?;
    /// shm.set_unlink_on_drop(true);
    /// drop(shm);
    /// assert!(!dir.path().join(".SHMDdoc-own").exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, yes: bool) {
        self.unlink_on_drop = yes;
    }

    /// Maps the whole object (its size when opened), checked as [`Mapping::new`] checks.
    ///
    /// # Errors
    /// As [`Mapping::new`]: `EINVAL` for a zero-length object or one truncated since it was
    /// opened, `EACCES` for `ReadWrite` on a read-only handle, `ENOSPC`, `ENOMEM`.
    ///
    /// # Example
    /// See [`Shm`].
    pub fn map(&self, access: Access) -> Result<Mapping> {
        Mapping::new(self.fd(), self.size, access)
    }

    /// Grows the object to at least `len` bytes (never shrinks it: shrinking is what makes
    /// other processes' mappings raise `SIGBUS`), reserving the new blocks (`fallocate`), so
    /// that writes to them cannot fail for want of space. Returns whether it grew.
    ///
    /// # Errors
    /// - `EINVAL`: the handle is read-only.
    /// - `ENOSPC`: the file system has no room; the size is unchanged.
    /// - `EFBIG`: as `fallocate(2)`.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let mut shm = ShmOptions::new().dir(ShmDir::new(dir.path())).size(10).create("/doc-grow")?;
    /// assert!(shm.grow_to(4096)?);
    /// assert!(!shm.grow_to(100)?);
    /// assert_eq!(shm.len(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn grow_to(&mut self, len: usize) -> Result<bool> {
        let fd = self.fd.as_ref().expect("present until into_fd");
        let fail = |f: Fail| f.into_error(Some(self.path.clone()));
        let now = fstat(fd.as_fd())
            .map(|st| u64::try_from(st.st_size).unwrap_or(0))
            .map_err(|e| fail(Fail::new(e, Op::Check, At::Data)))?;
        let want = len as u64;
        if want <= now {
            self.size = usize::try_from(now).unwrap_or(usize::MAX);
            return Ok(false);
        }
        let path = crate::sys::StackPath::join(&[self.path.as_os_str().as_bytes()])
            .ok_or_else(|| fail(Fail::new(Errno::ENAMETOOLONG, Op::Resize, At::Data)))?;
        let call = self.dir.call();
        object::grow(&call, fd, path.as_cstr(), At::Data, now, want).map_err(fail)?;
        self.size = len;
        Ok(true)
    }

    /// Unlinks the object now (the memory lives on while fds and mappings do), if the name
    /// still names the file this handle has open.
    ///
    /// The compare and the unlink happen under the creation lock, so no creator that takes it
    /// (every tmpshm creator, and illumos libc) can put a new object under the name in between.
    /// A creator that takes no lock (the glibc layout, or the system's own `shm_open` in
    /// `/dev/shm`) can still slip a new object in between the compare and the unlink, which
    /// then removes that object.
    ///
    /// A lock file that cannot be used (planted by another user) or a file system without
    /// `flock` is no error: no tmpshm creator can take the lock then either, so the compare
    /// and the unlink go ahead without it.
    ///
    /// # Errors
    /// - `ENOENT`: the object is already gone, or the name now names another object (which is
    ///   left alone).
    /// - `EACCES`, `EROFS`: as [`ShmDir::unlink`] (the lock file is made in the same directory).
    /// - `EMFILE`, `ENFILE`: no descriptor left for the lock file.
    ///
    /// # Example
    /// See [`Shm`].
    pub fn unlink(mut self) -> Result<()> {
        self.unlink_on_drop = false;
        self.unlink_if_ours()
    }

    fn unlink_if_ours(&self) -> Result<()> {
        let name = self.name.as_bytes();
        let t = self.dir.target(name, ObjectKind::Shm, Op::Name)?;
        let err = |f: Fail| self.dir.error(f, Some(&t), name);
        let call = self.dir.call();
        let mut data = crate::sys::StackPath::new();
        let data = t.data_in(&mut data).map_err(err)?;
        let mut lock_path = crate::sys::StackPath::new();
        let lock_path = t.lock_in(&mut lock_path).map_err(err)?;
        // Under the lock no tmpshm creator can re-create the name between our check and our
        // unlink. A lock we cannot use at all (planted by another user: EPERM, EACCES, ELOOP,
        // EINVAL; or no flock on this file system: ENOSYS) stops every tmpshm creator too, so
        // then the check needs no lock, and in a sticky directory only we (or root) can
        // replace our own file anyway.
        let _guard = match lock_path {
            Some(p) => match lock::acquire(&call, p) {
                Ok(guard) => Some(guard),
                Err(f)
                    if matches!(
                        f.errno,
                        Errno::EPERM | Errno::EACCES | Errno::ELOOP | Errno::EINVAL | Errno::ENOSYS
                    ) =>
                {
                    None
                }
                Err(f) => return Err(err(f)),
            },
            None => None,
        };
        let ours = fstat(self.fd()).map_err(|e| err(Fail::new(e, Op::Check, At::Data)))?;
        let there = retry(|| lstat(data)).map_err(|e| err(Fail::new(e, Op::Unlink, At::Data)))?;
        if !vet::same_file(&ours, &there) {
            let other = Fail::new(Errno::ENOENT, Op::Unlink, At::Data).why(Why::NameNowOther);
            return Err(err(other));
        }
        object::remove(&call, data).map_err(err)
    }

    /// The fd, giving up ownership (no unlink on drop).
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let opts = ShmOptions::new().dir(ShmDir::new(dir.path())).size(1).unlink_on_drop(true);
    /// let fd = opts.create("/doc-into")?.into_fd();
    /// assert!(dir.path().join(".SHMDdoc-into").exists());
    /// # drop(fd);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_fd(mut self) -> OwnedFd {
        self.unlink_on_drop = false;
        self.fd.take().expect("present until into_fd")
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_ref().expect("present until into_fd").as_fd()
    }
}

impl AsRawFd for Shm {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }
}

impl AsFd for Shm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl From<Shm> for OwnedFd {
    fn from(shm: Shm) -> OwnedFd {
        shm.into_fd()
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        if self.unlink_on_drop && self.fd.is_some() {
            let _ = self.unlink_if_ours();
        }
    }
}
