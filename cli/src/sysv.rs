//! System V shared memory for the tour: `shmget`, `shmat`, `shmdt`, `shmctl(IPC_RMID)`.
//!
//! nix has no wrappers for these, so this is the one place the CLI calls libc unsafely.
//! Compiled only where the platform has SysV shm (not Android, whose bionic has none).

use std::io;
use std::ptr::NonNull;

use crate::fmt::os_err;
use crate::tour::heading;
use crate::CliError;

/// The tour's first part: create, attach, mark for removal, write; the segment stays attached
/// until the returned handle drops.
pub fn tour_part(
    marks: &mut Vec<(usize, String)>,
    size: usize,
) -> Result<Option<Attached>, CliError> {
    heading("1. System V shared memory: a kernel object, known by a number");
    let id = create_private(size).map_err(|e| os_err("shmget", &e))?;
    println!("shmget(IPC_PRIVATE, {size}, IPC_CREAT|0600) = {id}");
    let seg = Attached::new(id, size);
    // Mark it for removal at once, attached or not, so that nothing outlives the tour.
    let removed = remove(id);
    let seg = seg.map_err(|e| os_err(format!("shmat({id})"), &e))?;
    println!("shmat({id}, NULL, 0) = {:p}", seg.as_ptr());
    removed.map_err(|e| os_err(format!("shmctl({id}, IPC_RMID)"), &e))?;
    println!(
        "shmctl({id}, IPC_RMID, NULL) = 0 (destroyed at the last detach; it was never in any directory)"
    );
    seg.write(b"hello from SysV")
        .map_err(|e| os_err("writing the segment", &e))?;
    marks.push((
        seg.as_ptr() as usize,
        "<- the SysV segment: the kernel's hidden shm file system, no path to open".into(),
    ));
    Ok(Some(seg))
}

/// `shmget(IPC_PRIVATE, len, IPC_CREAT|0600)`: a new segment, known only by its id.
pub fn create_private(len: usize) -> io::Result<i32> {
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// `shmctl(id, IPC_RMID, NULL)`: destroy the segment once the last process detaches.
pub fn remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed.
    let r = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An attached segment; detached (`shmdt`) on drop.
pub struct Attached {
    addr: NonNull<u8>,
    len: usize,
}

impl Attached {
    /// `shmat(id, NULL, 0)`: map the segment read-write anywhere. `len` must be its size.
    pub fn new(id: i32, len: usize) -> io::Result<Attached> {
        // SAFETY: a null address lets the kernel choose a fresh range, aliasing nothing of ours.
        let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if p as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        let addr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("shmat gave NULL"))?;
        Ok(Attached { addr, len })
    }

    /// The address the segment is attached at.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    /// Copy `data` to the start of the segment.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        if data.len() > self.len {
            return Err(io::Error::other("larger than the segment"));
        }
        // SAFETY: the segment is attached read-write and at least `len` bytes long (the caller
        // created it with that size); `data` is ours and cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.addr.as_ptr(), data.len()) };
        Ok(())
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: `addr` came from shmat and is detached only here, once.
        unsafe { libc::shmdt(self.addr.as_ptr().cast()) };
    }
}
