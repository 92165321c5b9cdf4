//! The C ABI: `tmpshm_shm_open`/`tmpshm_shm_unlink`, and `shm_open`/`shm_unlink` themselves
//! for `LD_PRELOAD`. Declared for C in `compat/include/tmpshm.h`.
//!
//! Each function behaves like its libc namesake: it returns `-1` and sets `errno` on failure.
//! The directory is `$TMPSHM_DIR` (else `/tmp`), read at every call, in the illumos layout;
//! `TMPSHM_CROSS_USER=1` allows objects of other users. No Rust panic crosses into C: one is
//! caught and reported as `EIO`.

use std::ffi::CStr;
use std::os::fd::IntoRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::{c_char, c_int, mode_t};
use nix::errno::Errno;
use tmpshm::{OFlag, ShmDir};

/// The errno reported when a panic was caught at the boundary.
pub const PANIC_ERRNO: c_int = libc::EIO;

/// Runs `f`, turning an error or a panic into `-1` with `errno` set, as libc functions do.
pub(crate) fn guard(f: impl FnOnce() -> Result<c_int, Errno>) -> c_int {
    let errno = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e as c_int,
        Err(_) => PANIC_ERRNO,
    };
    // nix finds this thread's errno on every libc (glibc and musl's __errno_location,
    // bionic's __errno, ...).
    Errno::set_raw(errno);
    -1
}

/// Borrows a C string, refusing NULL (`EINVAL`, like any other invalid name).
///
/// # Safety
/// `name` is NULL or points to a NUL-terminated string that outlives the call.
unsafe fn name_arg<'a>(name: *const c_char) -> Result<&'a CStr, Errno> {
    if name.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(name) })
}

fn open_impl(name: &CStr, oflag: c_int, mode: mode_t) -> Result<c_int, Errno> {
    let fd = ShmDir::from_env()?.open(name, OFlag::from_bits_retain(oflag), mode)?;
    Ok(fd.into_raw_fd())
}

fn unlink_impl(name: &CStr) -> Result<c_int, Errno> {
    ShmDir::from_env()?.unlink(name)?;
    Ok(0)
}

/// `shm_open(3)` on tmpshm: returns a new fd (with `FD_CLOEXEC`), or `-1` with `errno` set.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or a NUL-terminated string.
///
/// # Errors
/// `errno` as [`tmpshm::ShmDir::open`] documents it, errno by errno; `EINVAL` for a NULL name;
/// [`PANIC_ERRNO`] if a panic was caught.
///
/// # Example
/// ```
/// use tmpshm_compat::ffi::tmpshm_shm_open;
/// let fd = unsafe { tmpshm_shm_open(std::ptr::null(), libc::O_RDWR, 0) };
/// assert_eq!(fd, -1);
/// assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EINVAL));
/// ```
#[no_mangle]
pub unsafe extern "C" fn tmpshm_shm_open(name: *const c_char, oflag: c_int, mode: mode_t) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    guard(|| open_impl(unsafe { name_arg(name) }?, oflag, mode))
}

/// `shm_unlink(3)` on tmpshm: `0`, or `-1` with `errno` set.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or a NUL-terminated string.
///
/// # Errors
/// `errno` as [`tmpshm::ShmDir::unlink`] documents it; `EINVAL` for a NULL name;
/// [`PANIC_ERRNO`] if a panic was caught.
///
/// # Example
/// ```
/// use tmpshm_compat::ffi::tmpshm_shm_unlink;
/// let rc = unsafe { tmpshm_shm_unlink(c"no-slash".as_ptr()) };
/// assert_eq!(rc, -1);
/// assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EINVAL));
/// ```
#[no_mangle]
pub unsafe extern "C" fn tmpshm_shm_unlink(name: *const c_char) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    guard(|| unlink_impl(unsafe { name_arg(name) }?))
}

/// The interposing `shm_open`: what `LD_PRELOAD=libtmpshm_compat.so` puts in front of libc's.
///
/// Any program or test binary that links this crate resolves its own `shm_open` calls here;
/// the differential suite reaches libc's on purpose through [`crate::oracle`].
///
/// # Safety
/// As [`tmpshm_shm_open`].
///
/// # Errors
/// As [`tmpshm_shm_open`].
///
/// # Example
/// ```
/// let fd = unsafe { tmpshm_compat::ffi::shm_open(c"".as_ptr(), libc::O_RDONLY, 0) };
/// assert_eq!(fd, -1);
/// ```
#[no_mangle]
pub unsafe extern "C" fn shm_open(name: *const c_char, oflag: c_int, mode: mode_t) -> c_int {
    // SAFETY: same contract.
    unsafe { tmpshm_shm_open(name, oflag, mode) }
}

/// The interposing `shm_unlink` (see [`shm_open`]).
///
/// # Safety
/// As [`tmpshm_shm_unlink`].
///
/// # Errors
/// As [`tmpshm_shm_unlink`].
///
/// # Example
/// ```
/// assert_eq!(unsafe { tmpshm_compat::ffi::shm_unlink(std::ptr::null()) }, -1);
/// ```
#[no_mangle]
pub unsafe extern "C" fn shm_unlink(name: *const c_char) -> c_int {
    // SAFETY: same contract.
    unsafe { tmpshm_shm_unlink(name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }

    #[test]
    fn a_panic_becomes_eio_not_an_unwind_into_c() {
        let rc = guard(|| panic!("deliberate"));
        assert_eq!(rc, -1);
        assert_eq!(errno(), PANIC_ERRNO);
    }

    #[test]
    fn errors_set_errno_and_success_returns_the_value() {
        assert_eq!(guard(|| Err(Errno::ENAMETOOLONG)), -1);
        assert_eq!(errno(), libc::ENAMETOOLONG);
        assert_eq!(guard(|| Ok(7)), 7);
    }

    #[test]
    fn null_names_are_einval() {
        // SAFETY: NULL is part of the contract.
        assert_eq!(
            unsafe { tmpshm_shm_open(std::ptr::null(), libc::O_RDWR, 0) },
            -1
        );
        assert_eq!(errno(), libc::EINVAL);
        // SAFETY: as above.
        assert_eq!(unsafe { tmpshm_shm_unlink(std::ptr::null()) }, -1);
        assert_eq!(errno(), libc::EINVAL);
    }
}
