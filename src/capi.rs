//! The C ABI's implementation: what `libtmpshm`'s `tmpshm_shm_open` and the preload library's
//! `shm_open` run. Not part of the Rust API (use [`ShmDir`](crate::ShmDir)); public only so
//! that the C library crates can export it under their symbol names.
//!
//! Every function here behaves like its libc namesake: `-1` and `errno` on failure. It reads
//! the environment at every call ([`ENV_DIR`](crate::ENV_DIR),
//! [`ENV_CROSS_USER`](crate::ENV_CROSS_USER)), makes no heap allocation on any path, success or
//! error (a program may call it from a signal handler that interrupted `malloc`), and lets no
//! Rust panic cross into C: one is caught and reported as `EIO`.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::IntoRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::{c_char, c_int, mode_t};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::call::Call;
use crate::env;
use crate::error::{At, Fail, Op};
use crate::name::{Layout, NameRule, ObjectKind, Target};
use crate::object::{self, Request};

/// The errno reported when a panic was caught at the boundary.
pub const PANIC_ERRNO: c_int = libc::EIO;

/// Which names the entry point accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// illumos: one leading `/`, no other (`tmpshm_shm_open`).
    Strict,
    /// glibc: leading slashes dropped, so `"x"`, `"/x"` and `"//x"` are one object; a name it
    /// refuses gets the errno glibc gives (the interposers of the preload library).
    Glibc,
}

impl Names {
    /// The environment variable that chooses the interposers' name rules: `strict` or `glibc`.
    pub const ENV: &'static str = "TMPSHM_NAMES";

    /// The interposers' rules: [`Names::Glibc`] (they stand in for the system's calls) unless
    /// `TMPSHM_NAMES=strict`. Read without allocating, at every call.
    pub fn for_interposers() -> Names {
        match crate::sys::getenv(c"TMPSHM_NAMES") {
            Some(b"strict") => Names::Strict,
            _ => Names::Glibc,
        }
    }

    fn rule(self) -> NameRule {
        match self {
            Names::Strict => NameRule::Strict,
            Names::Glibc => NameRule::Glibc,
        }
    }
}

/// Runs `f`, turning an error or a panic into `-1` with `errno` set, as libc functions do.
fn guard(f: impl FnOnce() -> Result<c_int, Errno>) -> c_int {
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
unsafe fn name_arg<'a>(name: *const c_char) -> Result<&'a [u8], Errno> {
    if name.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(name) }.to_bytes())
}

/// `shm_open(3)`: a new fd (with `FD_CLOEXEC`), or `-1` with `errno` set.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or a NUL-terminated string.
///
/// # Errors
/// `errno` as [`ShmDir::open`](crate::ShmDir::open) documents it; `EINVAL` for a NULL name;
/// [`PANIC_ERRNO`] if a panic was caught.
pub unsafe fn shm_open(name: *const c_char, oflag: c_int, mode: mode_t, names: Names) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    guard(|| {
        let name = unsafe { name_arg(name) }?;
        let req = Request::new(OFlag::from_bits_retain(oflag), mode_of(mode))?;
        let s = env::from_process()?;
        let t = Target::new(
            s.dir,
            Layout::Illumos,
            ObjectKind::Shm,
            name,
            names.rule(),
            Op::Name,
        )?;
        let fd = object::open(&Call::new(s.cross_user, None), &t, req)?;
        Ok(fd.into_raw_fd())
    })
}

/// `shm_unlink(3)`: `0`, or `-1` with `errno` set.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or a NUL-terminated string.
///
/// # Errors
/// `errno` as [`ShmDir::unlink`](crate::ShmDir::unlink) documents it, except that with
/// [`Names::Glibc`] a name the rules refuse is `ENOENT`, as glibc answers; `EINVAL` for a NULL
/// name; [`PANIC_ERRNO`] if a panic was caught.
pub unsafe fn shm_unlink(name: *const c_char, names: Names) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    guard(|| {
        let name = unsafe { name_arg(name) }?;
        let s = env::from_process()?;
        let t = Target::new(
            s.dir,
            Layout::Illumos,
            ObjectKind::Shm,
            name,
            names.rule(),
            Op::Name,
        )
        .map_err(|f| unlink_name_errno(f, names))?;
        object::unlink(&Call::new(s.cross_user, None), &t)?;
        Ok(0)
    })
}

/// glibc's `shm_unlink` answers `ENOENT` for a name its `shm_open` refuses (POSIX lists no
/// `EINVAL` for it).
fn unlink_name_errno(f: Fail, names: Names) -> Errno {
    match (names, f.at) {
        (Names::Glibc, At::Name) => Errno::ENOENT,
        _ => f.errno,
    }
}

/// `mode_t` as nix's `Mode`, keeping every bit (the checks refuse those outside `0o777`).
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on some platforms
fn mode_of(mode: mode_t) -> Mode {
    Mode::from_bits_retain(mode as _)
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
            unsafe { shm_open(std::ptr::null(), libc::O_RDWR, 0, Names::Strict) },
            -1
        );
        assert_eq!(errno(), libc::EINVAL);
        // SAFETY: as above.
        assert_eq!(unsafe { shm_unlink(std::ptr::null(), Names::Strict) }, -1);
        assert_eq!(errno(), libc::EINVAL);
    }
}
