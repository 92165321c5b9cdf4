//! The process's open semaphores: one mapping per semaphore file, found by device and inode,
//! shared by every open of it in the process until it has been closed as often as opened
//! (POSIX: a second `sem_open` of the same semaphore returns the same address).
//!
//! A fixed table under a small lock: no heap allocation (the C entry points promise none). The
//! lock word holds the pid of the process whose thread holds it, so a child forked while
//! another thread of its parent held the lock sees a pid not its own and takes the lock over
//! (it is the child's only thread): a `fork` can never leave the table locked for good.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;

/// Semaphores one process can have open at once (`SEM_NSEMS_MAX` is at least 256 by POSIX);
/// one more is `EMFILE`.
pub(crate) const SLOTS: usize = 1024;

#[derive(Clone, Copy)]
struct Slot {
    dev: u64,
    ino: u64,
    addr: usize,
    len: usize,
    /// Opens not yet matched by a close; 0: a free slot.
    refs: u32,
}

const FREE: Slot = Slot {
    dev: 0,
    ino: 0,
    addr: 0,
    len: 0,
    refs: 0,
};

struct Table {
    /// 0: free; else the pid of the process one of whose threads holds the lock.
    holder: AtomicU32,
    slots: std::cell::UnsafeCell<[Slot; SLOTS]>,
}

// SAFETY: `slots` is only touched while `holder` is ours (see `with`).
unsafe impl Sync for Table {}

static TABLE: Table = Table {
    holder: AtomicU32::new(0),
    slots: std::cell::UnsafeCell::new([FREE; SLOTS]),
};

fn lock() {
    let me = std::process::id();
    loop {
        let now = TABLE.holder.load(Ordering::Relaxed);
        // Free (0, never a pid), or held by the process we were forked from (whose threads
        // did not follow us); only a thread of this process makes us wait.
        if now != me
            && TABLE
                .holder
                .compare_exchange_weak(now, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        std::thread::yield_now();
    }
}

fn unlock() {
    TABLE.holder.store(0, Ordering::Release);
}

/// Runs `f` on the table, under the lock.
fn with<R>(f: impl FnOnce(&mut [Slot; SLOTS]) -> R) -> R {
    lock();
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            unlock();
        }
    }
    let _release = Release;
    // SAFETY: we hold the lock, so no one else touches the slots until `_release` drops.
    f(unsafe { &mut *TABLE.slots.get() })
}

/// A mapping made for a semaphore file, unmapped on drop unless it was handed to the table.
pub(crate) struct Mapped {
    pub(crate) addr: NonNull<libc::c_void>,
    pub(crate) len: usize,
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: we made this mapping with this length, and no one else has it.
        unsafe { libc::munmap(self.addr.as_ptr(), self.len) };
    }
}

impl Mapped {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`.
    pub(crate) fn new(fd: std::os::fd::BorrowedFd<'_>, len: usize) -> Result<Mapped, Errno> {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping with no address hint aliases nothing of ours.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        NonNull::new(p)
            .map(|addr| Mapped { addr, len })
            .ok_or(Errno::ENOMEM)
    }
}

/// The mapping of the semaphore file `(dev, ino)`: the one already open in this process (one
/// more reference), or `map()`'s, which the table then keeps. `EMFILE` when the table is full.
pub(crate) fn open(
    dev: u64,
    ino: u64,
    map: impl FnOnce() -> Result<Mapped, Errno>,
) -> Result<NonNull<libc::c_void>, Errno> {
    with(|slots| {
        if let Some(s) = slots
            .iter_mut()
            .find(|s| s.refs > 0 && s.dev == dev && s.ino == ino)
        {
            s.refs += 1;
            return NonNull::new(s.addr as *mut libc::c_void).ok_or(Errno::EINVAL);
        }
        let free = slots
            .iter_mut()
            .find(|s| s.refs == 0)
            .ok_or(Errno::EMFILE)?;
        let m = std::mem::ManuallyDrop::new(map()?);
        *free = Slot {
            dev,
            ino,
            addr: m.addr.as_ptr() as usize,
            len: m.len,
            refs: 1,
        };
        Ok(m.addr)
    })
}

/// Whether every slot is taken: a new semaphore could not be mapped (`EMFILE`).
pub(crate) fn full() -> bool {
    with(|slots| slots.iter().all(|s| s.refs > 0))
}

/// One close of the semaphore at `addr`: the last one unmaps it. `EINVAL` if no open
/// semaphore of this process is at `addr`.
pub(crate) fn close(addr: *mut libc::c_void) -> Result<(), Errno> {
    let last = with(|slots| {
        let s = slots
            .iter_mut()
            .find(|s| s.refs > 0 && s.addr == addr as usize)
            .ok_or(Errno::EINVAL)?;
        s.refs -= 1;
        Ok::<_, Errno>((s.refs == 0).then(|| {
            let len = s.len;
            *s = FREE;
            len
        }))
    })?;
    if let Some(len) = last {
        // SAFETY: the table made this mapping with this length and no longer hands it out.
        unsafe { libc::munmap(addr, len) };
    }
    Ok(())
}

/// How many opens of the semaphore at `addr` this process has not closed (0: none).
#[cfg(test)]
pub(crate) fn refs(addr: *mut libc::c_void) -> u32 {
    with(|slots| {
        slots
            .iter()
            .find(|s| s.refs > 0 && s.addr == addr as usize)
            .map_or(0, |s| s.refs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn one_mapping_per_file_until_the_last_close() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(64).unwrap();
        let (dev, ino) = (u64::MAX, 4242);
        let a = open(dev, ino, || Mapped::new(f.as_fd(), 64)).unwrap();
        let b = open(dev, ino, || panic!("mapped twice")).unwrap();
        assert_eq!(a, b);
        assert_eq!(refs(a.as_ptr()), 2);
        close(a.as_ptr()).unwrap();
        assert_eq!(refs(a.as_ptr()), 1);
        close(a.as_ptr()).unwrap();
        assert_eq!(refs(a.as_ptr()), 0);
        assert_eq!(close(a.as_ptr()), Err(Errno::EINVAL));
    }
}
