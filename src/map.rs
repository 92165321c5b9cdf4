//! A shared mapping whose length is checked against the object's size.
//!
//! Touching a page of a `MAP_SHARED` mapping beyond the end of the file raises `SIGBUS`.
//! The classic way to get there: an opener maps an object before its creator has run
//! `ftruncate`, so the object is still 0 bytes long. [`Mapping::new`] checks the size with
//! `fstat` first and answers with an error instead.
//!
//! The second way: a sparse file on a full file system. Writing to a page that has no block
//! behind it needs one, and when there is none left the kernel raises `SIGBUS` (any local user
//! can fill `/tmp` or `/dev/shm`). A read-write [`Mapping`] therefore reserves its range with
//! `fallocate` first, so a full file system answers `ENOSPC` at [`Mapping::new`].
//!
//! What no library can prevent: another process that can write the object may shrink it
//! after the check; touching pages past the new end then raises `SIGBUS` and kills the
//! process. Only processes that can open the object for writing can do that, so they must
//! agree not to.

#![allow(unsafe_code)]

use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::stat::fstat;

use crate::error::{Error, Op, Result};

/// Whether a mapping may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `PROT_READ`.
    ReadOnly,
    /// `PROT_READ | PROT_WRITE` (the fd must be open `O_RDWR`).
    ReadWrite,
}

/// A `MAP_SHARED` mapping of the first `len` bytes of an object.
///
/// Reads and writes go through [`Mapping::read_at`] and [`Mapping::write_at`], which copy byte
/// by byte with relaxed atomic loads and stores, and never hand out plain references into
/// memory that another process may change at any moment (that would be a data race).
/// Unmapped on drop.
///
/// # `SIGBUS`
/// Touching a page of a shared mapping past the end of the file raises `SIGBUS`. Two ways there
/// are closed: [`Mapping::new`] checks the object's size first (an opener that comes before its
/// creator's `ftruncate` sees 0 bytes and gets `EINVAL`), and a read-write mapping reserves its
/// blocks first (a sparse file on a full file system would otherwise raise `SIGBUS` at the first
/// write to a hole; here `ENOSPC` comes from `Mapping::new`). The third is open to any process
/// that can write the object: it may shrink it after the check. Processes that share an object
/// must agree not to.
///
/// # References
/// [POSIX `mmap`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/mmap.html),
/// [Linux `fallocate(2)`](https://man7.org/linux/man-pages/man2/fallocate.2.html).
///
/// # Example
/// ```
/// use tmpshm::{Access, Mapping, Mode, OFlag, ShmDir};
/// let dir = tempfile::tempdir()?;
/// let shm = ShmDir::new(dir.path());
/// let fd = shm.open("/doc-map", OFlag::O_CREAT | OFlag::O_RDWR, Mode::S_IRWXU)?;
/// // Still 0 bytes long: a clear error rather than SIGBUS.
/// assert_eq!(Mapping::new(&fd, 4096, Access::ReadWrite).unwrap_err().raw_os_error(), libc::EINVAL);
/// nix::unistd::ftruncate(&fd, 4096)?;
/// let map = Mapping::new(&fd, 4096, Access::ReadWrite)?;
/// map.write_at(0, b"hello")?;
/// let mut back = [0u8; 5];
/// map.read_at(0, &mut back)?;
/// assert_eq!(&back, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// memmap2 works on the same fd, for code that wants slices (and takes on their `unsafe`):
/// ```
/// use tmpshm::{Mode, OFlag, ShmDir};
/// let dir = tempfile::tempdir()?;
/// let fd = ShmDir::new(dir.path()).open("/doc-memmap2", OFlag::O_CREAT | OFlag::O_RDWR, Mode::S_IRWXU)?;
/// nix::unistd::ftruncate(&fd, 4096)?;
/// // SAFETY: no other process shares this fresh object, so nobody truncates or writes it.
/// let mut m = unsafe { memmap2::MmapMut::map_mut(&fd)? };
/// m[..2].copy_from_slice(b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    access: Access,
}

// SAFETY: the mapping is plain shared memory that other processes change at any moment anyway;
// every access goes through `bytes()`, relaxed atomic loads and stores, so threads sharing the
// handle race no more than processes sharing the object, and neither race is undefined behaviour.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only allows atomic byte copies in and out.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(2)` the first `len` bytes of `fd`, shared.
    ///
    /// With `Access::ReadWrite` the range is reserved first (`fallocate(FALLOC_FL_KEEP_SIZE)`,
    /// where the file system supports it), so that no write through the mapping can raise
    /// `SIGBUS` for want of space. The size is never changed.
    ///
    /// `SIGBUS` remains possible in one case, which the type cannot rule out: another process
    /// shrinks the object while it is mapped (see [`Mapping`]).
    ///
    /// # Errors
    /// - `EINVAL`: `len` is 0, or the object is shorter than `len` (in particular still 0 bytes
    ///   long because its creator has not run `ftruncate` yet); mapping would risk `SIGBUS`.
    /// - `ENOSPC`: `Access::ReadWrite`, and the file system has no room for the range.
    /// - `EACCES`: `Access::ReadWrite` on an fd opened `O_RDONLY`.
    /// - `ENOMEM`, `ENODEV`: as `mmap(2)`.
    ///
    /// # Example
    /// See [`Mapping`].
    pub fn new(fd: impl AsFd, len: usize, access: Access) -> Result<Mapping> {
        let fd = fd.as_fd();
        let fail = |e| Error::without_path(e, Op::Map);
        let st = fstat(fd).map_err(fail)?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        let Some(nz) = std::num::NonZeroUsize::new(len) else {
            return Err(fail(Errno::EINVAL).because("a mapping of 0 bytes; give the length to map"));
        };
        if (len as u64) > size {
            return Err(fail(Errno::EINVAL).because(format!(
                "the object is {size} bytes long, shorter than the {len} bytes asked for (has its creator run ftruncate?); touching the rest would raise SIGBUS"
            )));
        }
        if access == Access::ReadWrite {
            crate::sys::reserve(fd, 0, len as u64, true).map_err(|e| match e {
                // fallocate needs a writable fd, as a read-write mapping does.
                Errno::EBADF => {
                    fail(Errno::EACCES).because("a read-write mapping of an fd opened read-only")
                }
                e => fail(e).because(format!("reserving the {len} bytes to map")),
            })?;
        }
        let prot = match access {
            Access::ReadOnly => ProtFlags::PROT_READ,
            Access::ReadWrite => ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
        };
        // SAFETY: a fresh mapping (no address hint) of a file we checked is long enough; it
        // aliases no Rust object, and the pointer is only used through the copies below.
        let ptr = unsafe { mmap(None, nz, prot, MapFlags::MAP_SHARED, fd, 0) }.map_err(fail)?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            access,
        })
    }

    /// The mapped length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start of the mapping, for code that manages its own synchronisation.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapping as bytes that other processes (and threads) may change at any time.
    fn bytes(&self) -> &[AtomicU8] {
        // SAFETY: the mapping is live and `len` bytes long for as long as `self` is; AtomicU8
        // has the size and alignment of u8; all access through it is atomic, so concurrent
        // writers elsewhere are races on atomics, not data races.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU8>(), self.len) }
    }

    fn range(&self, offset: usize, n: usize) -> Result<()> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::without_path(Errno::EINVAL, Op::Map).because(format!(
                "bytes {offset}..{} are outside the {}-byte mapping",
                offset.saturating_add(n),
                self.len
            ))),
        }
    }

    /// Copy `buf.len()` bytes out of the mapping, from `offset`.
    ///
    /// # Errors
    /// `EINVAL`: the range is outside the mapping.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.range(offset, buf.len())?;
        for (dst, src) in buf.iter_mut().zip(&self.bytes()[offset..]) {
            *dst = src.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copy `data` into the mapping at `offset`.
    ///
    /// # Errors
    /// - `EINVAL`: the range is outside the mapping.
    /// - `EACCES`: the mapping is read-only.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        if self.access != Access::ReadWrite {
            return Err(
                Error::without_path(Errno::EACCES, Op::Map).because("the mapping is read-only")
            );
        }
        self.range(offset, data.len())?;
        for (dst, src) in self.bytes()[offset..].iter().zip(data) {
            dst.store(*src, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we made this mapping with this length, and no reference into it outlives us.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}
