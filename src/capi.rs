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

mod report;

pub use report::ENV_TRACE;

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
        match crate::sys::getenv(c"TMPSHM_NAMES").map(CStr::to_bytes) {
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

/// `tmpshm_shm_open`: `shm_open(3)` on tmpshm, a new fd (with `FD_CLOEXEC`), or `-1` with
/// `errno` set. Traced when `TMPSHM_TRACE` asks for it.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or a NUL-terminated string.
///
/// # Errors
/// `errno` as [`ShmDir::open`](crate::ShmDir::open) documents it; `EINVAL` for a NULL name;
/// [`PANIC_ERRNO`] if a panic was caught.
pub unsafe fn shm_open(name: *const c_char, oflag: c_int, mode: mode_t, names: Names) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    unsafe { open_entry("tmpshm_shm_open", name, oflag, mode, names, false) }
}

/// `tmpshm_shm_unlink`: `shm_unlink(3)` on tmpshm, `0` or `-1` with `errno` set.
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
    unsafe { unlink_entry("tmpshm_shm_unlink", name, names, false) }
}

/// The interposing `shm_open` of the preload library: [`shm_open`] with the interposers' name
/// rules ([`Names::for_interposers`]), and, on the first failure that a directory which
/// cannot work explains, one line on standard error that says so.
///
/// # Safety
/// As [`shm_open`].
///
/// # Errors
/// As [`shm_open`].
pub unsafe fn interposed_shm_open(name: *const c_char, oflag: c_int, mode: mode_t) -> c_int {
    let names = Names::for_interposers();
    // SAFETY: forwarded from our caller's promise.
    unsafe { open_entry("shm_open", name, oflag, mode, names, true) }
}

/// The interposing `shm_unlink` of the preload library (see [`interposed_shm_open`]).
///
/// # Safety
/// As [`shm_unlink`].
///
/// # Errors
/// As [`shm_unlink`].
pub unsafe fn interposed_shm_unlink(name: *const c_char) -> c_int {
    let names = Names::for_interposers();
    // SAFETY: forwarded from our caller's promise.
    unsafe { unlink_entry("shm_unlink", name, names, true) }
}

/// # Safety
/// As [`shm_open`].
unsafe fn open_entry(
    func: &'static str,
    name: *const c_char,
    oflag: c_int,
    mode: mode_t,
    names: Names,
    diagnose: bool,
) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    let name = unsafe { name_arg(name) }.ok();
    let (flags, mode) = (OFlag::from_bits_retain(oflag), mode_of(mode));
    guard(|| {
        let call = report::Call {
            func,
            name,
            open: Some((flags, mode)),
        };
        let settings = env::from_process();
        let result = (|| {
            let name = name.ok_or(Fail::new(Errno::EINVAL, Op::Name, At::Name))?;
            let req = Request::new(flags, mode)?;
            let s = settings?;
            let t = target(&s, name, names)?;
            let fd = object::open(&Call::new(s.cross_user, None), &t, req)?;
            Ok(fd.into_raw_fd())
        })();
        finish(
            &call,
            names,
            settings,
            result.map_err(|f: Fail| f.errno),
            diagnose,
        )
    })
}

/// # Safety
/// As [`shm_unlink`].
unsafe fn unlink_entry(
    func: &'static str,
    name: *const c_char,
    names: Names,
    diagnose: bool,
) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    let name = unsafe { name_arg(name) }.ok();
    guard(|| {
        let call = report::Call {
            func,
            name,
            open: None,
        };
        let settings = env::from_process();
        let result = (|| {
            let name = name.ok_or(Errno::EINVAL)?;
            let s = settings.map_err(|f| f.errno)?;
            let t = target(&s, name, names).map_err(|f| unlink_name_errno(f, names))?;
            object::unlink(&Call::new(s.cross_user, None), &t)?;
            Ok(0)
        })();
        finish(&call, names, settings, result, diagnose)
    })
}

fn target<'a>(s: &env::Settings<'a>, name: &'a [u8], names: Names) -> Result<Target<'a>, Fail> {
    Target::new(
        s.dir,
        Layout::Illumos,
        ObjectKind::Shm,
        name,
        names.rule(),
        Op::Name,
    )
}

/// Traces the call (if asked) and explains a directory that cannot work (once), then hands
/// back the result.
fn finish(
    call: &report::Call<'_>,
    names: Names,
    settings: Result<env::Settings<'static>, Fail>,
    result: Result<c_int, Errno>,
    diagnose: bool,
) -> Result<c_int, Errno> {
    if let Some(sink) = report::sink() {
        let path = match (&settings, call.name) {
            (Ok(s), Some(name)) => target(s, name, names).ok().and_then(|t| t.data().ok()),
            _ => None,
        };
        report::trace(sink, call, result, path.as_ref());
    }
    if let (true, Err(e)) = (diagnose, result) {
        let (dir, from_env) = match settings {
            Ok(s) => (s.dir, s.dir_from_env),
            Err(_) => (
                crate::sys::getenv(c"TMPSHM_DIR").map_or(&b""[..], CStr::to_bytes),
                true,
            ),
        };
        report::dir_problem(call, dir, from_env, e);
    }
    result
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
    fn null_names_are_einval_and_traced_as_null() {
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
