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

use libc::{c_char, c_int, c_uint, mode_t};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::call::Call;
use crate::env;
use crate::error::{At, Fail, Op};
use crate::name::{Layout, NameRule, ObjectKind, Target};
use crate::object::{self, Request};
use crate::sem::SemRequest;

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

    /// The interposers' rules for the value of `TMPSHM_NAMES` (read at every call with the
    /// other variables): [`Names::Glibc`] (they stand in for the system's calls) unless
    /// `strict`.
    fn from_var(value: Option<&CStr>) -> Names {
        match value.map(CStr::to_bytes) {
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

/// Runs `f`, turning an error or a panic into `failed` with `errno` set, as libc functions do.
fn guard<T>(failed: T, f: impl FnOnce() -> Result<T, Errno>) -> T {
    let errno = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e as c_int,
        Err(_) => PANIC_ERRNO,
    };
    // nix finds this thread's errno on every libc (glibc and musl's __errno_location,
    // bionic's __errno, ...).
    Errno::set_raw(errno);
    failed
}

/// Borrows a C string, `None` for NULL (refused with `EINVAL`, like any other invalid name).
///
/// # Safety
/// `name` is NULL or points to a NUL-terminated string that outlives the call.
unsafe fn name_arg<'a>(name: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: not NULL, and the caller promises a NUL-terminated string.
    (!name.is_null()).then(|| unsafe { CStr::from_ptr(name) }.to_bytes())
}

/// Which entry point runs: the linkable library's (`tmpshm_*`, names as given) or the preload
/// library's interposers (names by `TMPSHM_NAMES`, and a line about a directory that cannot
/// work).
/// It carries the variables of the environment, read once per call in one pass.
#[derive(Clone, Copy)]
struct Entry {
    func: &'static str,
    names: Names,
    interposer: bool,
    vars: crate::sys::Vars,
}

impl Entry {
    fn linked(func: &'static str, names: Names) -> Entry {
        Entry {
            func,
            names,
            interposer: false,
            vars: crate::sys::vars(),
        }
    }

    fn interposed(func: &'static str) -> Entry {
        let vars = crate::sys::vars();
        Entry {
            func,
            names: Names::from_var(vars.names),
            interposer: true,
            vars,
        }
    }
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
    unsafe { open_entry(Entry::linked("tmpshm_shm_open", names), name, oflag, mode) }
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
    let entry = Entry::linked("tmpshm_shm_unlink", names);
    // SAFETY: forwarded from our caller's promise.
    unsafe { unlink_entry(entry, ObjectKind::Shm, name) }
}

/// The interposing `shm_open` of the preload library: [`shm_open`] with the interposers' name
/// rules (`TMPSHM_NAMES`: glibc's unless `strict`), and, on the first failure that a directory which
/// cannot work explains, one line on standard error that says so.
///
/// # Safety
/// As [`shm_open`].
///
/// # Errors
/// As [`shm_open`].
pub unsafe fn interposed_shm_open(name: *const c_char, oflag: c_int, mode: mode_t) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    unsafe { open_entry(Entry::interposed("shm_open"), name, oflag, mode) }
}

/// The interposing `shm_unlink` of the preload library (see [`interposed_shm_open`]).
///
/// # Safety
/// As [`shm_unlink`].
///
/// # Errors
/// As [`shm_unlink`].
pub unsafe fn interposed_shm_unlink(name: *const c_char) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    unsafe { unlink_entry(Entry::interposed("shm_unlink"), ObjectKind::Shm, name) }
}

/// `tmpshm_sem_open`: `sem_open(3)` on tmpshm: the address of the semaphore (the same for
/// every open of it in this process until closed as often), or `SEM_FAILED` (NULL) with
/// `errno` set. `mode` and `value` are used only with `O_CREAT`; the umask applies to `mode`.
/// No fd stays open.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or a NUL-terminated string.
///
/// # Errors
/// `errno` as [`SemOptions::create`](crate::SemOptions::create) and
/// [`SemOptions::open`](crate::SemOptions::open) document it: `EEXIST`, `ENOENT`, `EINVAL`
/// (also a value above `SEM_VALUE_MAX`, a file that is not a semaphore), `EACCES`, `EPERM`,
/// `ELOOP`, `ENAMETOOLONG`, `ENOSPC`, `EMFILE`, `ENFILE`; [`PANIC_ERRNO`].
pub unsafe fn sem_open(
    name: *const c_char,
    oflag: c_int,
    mode: mode_t,
    value: c_uint,
    names: Names,
) -> *mut libc::sem_t {
    // SAFETY: forwarded from our caller's promise.
    unsafe {
        sem_open_entry(
            Entry::linked("tmpshm_sem_open", names),
            name,
            oflag,
            mode,
            value,
        )
    }
}

/// The interposing `sem_open` of the preload library (see [`interposed_shm_open`]).
///
/// # Safety
/// As [`sem_open`].
///
/// # Errors
/// As [`sem_open`].
pub unsafe fn interposed_sem_open(
    name: *const c_char,
    oflag: c_int,
    mode: mode_t,
    value: c_uint,
) -> *mut libc::sem_t {
    // SAFETY: forwarded from our caller's promise.
    unsafe { sem_open_entry(Entry::interposed("sem_open"), name, oflag, mode, value) }
}

/// `tmpshm_sem_close`: `sem_close(3)`, one close of a semaphore this process opened with
/// [`sem_open`]; the last one unmaps it. `0`, or `-1` with `errno` set.
///
/// # Safety
/// None beyond C's: an address that is not an open semaphore of this process is refused with
/// `EINVAL`, never unmapped.
///
/// # Errors
/// `EINVAL`: `sem` is not an open semaphore of this process; [`PANIC_ERRNO`].
pub unsafe fn sem_close(sem: *mut libc::sem_t) -> c_int {
    close_entry("tmpshm_sem_close", sem)
}

/// The interposing `sem_close` of the preload library.
///
/// # Safety
/// As [`sem_close`].
///
/// # Errors
/// As [`sem_close`].
pub unsafe fn interposed_sem_close(sem: *mut libc::sem_t) -> c_int {
    close_entry("sem_close", sem)
}

fn close_entry(func: &'static str, sem: *mut libc::sem_t) -> c_int {
    guard(-1, || {
        let result = crate::registry::close(sem.cast()).map(|()| report::Ret::Int(0));
        if let Some(sink) = report::sink(crate::sys::getenv(c"TMPSHM_TRACE")) {
            let call = report::Call {
                func,
                args: report::Args::Addr(sem as usize),
            };
            report::trace(sink, &call, result, None);
        }
        result.map(|_| 0)
    })
}

/// `sem_unlink(3)`: `0`, or `-1` with `errno` set; open handles keep working.
///
/// # Safety
/// As [`shm_unlink`].
///
/// # Errors
/// As [`shm_unlink`].
pub unsafe fn sem_unlink(name: *const c_char, names: Names) -> c_int {
    let entry = Entry::linked("tmpshm_sem_unlink", names);
    // SAFETY: forwarded from our caller's promise.
    unsafe { unlink_entry(entry, ObjectKind::Sem, name) }
}

/// The interposing `sem_unlink` of the preload library.
///
/// # Safety
/// As [`shm_unlink`].
///
/// # Errors
/// As [`shm_unlink`].
pub unsafe fn interposed_sem_unlink(name: *const c_char) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    unsafe { unlink_entry(Entry::interposed("sem_unlink"), ObjectKind::Sem, name) }
}

/// # Safety
/// As [`shm_open`].
unsafe fn open_entry(entry: Entry, name: *const c_char, oflag: c_int, mode: mode_t) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    let name = unsafe { name_arg(name) };
    let (flags, mode) = (OFlag::from_bits_retain(oflag), mode_of(mode));
    guard(-1, || {
        let call = report::Call {
            func: entry.func,
            args: report::Args::Open(name, flags, mode),
        };
        let settings = env::from_vars(&entry.vars);
        let result = (|| {
            let name = name.ok_or(Fail::new(Errno::EINVAL, Op::Name, At::Name))?;
            let req = Request::new(flags, mode)?;
            let s = settings?;
            let t = target(&s, ObjectKind::Shm, name, entry.names)?;
            let fd = object::open(&Call::new(s.cross_user, None), &t, req)?;
            Ok(report::Ret::Int(fd.into_raw_fd()))
        })();
        let result = result.map_err(|f: Fail| f.errno);
        finish(&entry, ObjectKind::Shm, &call, &settings, result).map(|r| match r {
            report::Ret::Int(fd) => fd,
            report::Ret::Ptr(_) => -1,
        })
    })
}

/// # Safety
/// As [`sem_open`].
unsafe fn sem_open_entry(
    entry: Entry,
    name: *const c_char,
    oflag: c_int,
    mode: mode_t,
    value: c_uint,
) -> *mut libc::sem_t {
    // SAFETY: forwarded from our caller's promise.
    let name = unsafe { name_arg(name) };
    let flags = OFlag::from_bits_retain(oflag);
    // The optional arguments mean something only with O_CREAT.
    let (mode, value) = if flags.contains(OFlag::O_CREAT) {
        (mode_of(mode), value)
    } else {
        (Mode::empty(), 0)
    };
    guard(std::ptr::null_mut(), || {
        let call = report::Call {
            func: entry.func,
            args: report::Args::SemOpen(name, flags, mode, value),
        };
        let settings = env::from_vars(&entry.vars);
        let result = (|| {
            let name = name.ok_or(Fail::new(Errno::EINVAL, Op::Name, At::Name))?;
            // As the kernel does for open(2): the umask takes its bits away.
            let req = SemRequest::new(flags, crate::sem::umasked(flags, mode), value)?;
            let s = settings?;
            let t = target(&s, ObjectKind::Sem, name, entry.names)?;
            let sem = crate::sem::open(&Call::new(s.cross_user, None), &t, req)?;
            Ok(report::Ret::Ptr(sem.as_ptr() as usize))
        })();
        let result = result.map_err(|f: Fail| f.errno);
        finish(&entry, ObjectKind::Sem, &call, &settings, result).map(|r| match r {
            report::Ret::Ptr(p) => p as *mut libc::sem_t,
            report::Ret::Int(_) => std::ptr::null_mut(),
        })
    })
}

/// # Safety
/// As [`shm_unlink`].
unsafe fn unlink_entry(entry: Entry, kind: ObjectKind, name: *const c_char) -> c_int {
    // SAFETY: forwarded from our caller's promise.
    let name = unsafe { name_arg(name) };
    guard(-1, || {
        let call = report::Call {
            func: entry.func,
            args: report::Args::Name(name),
        };
        let settings = env::from_vars(&entry.vars);
        let result = (|| {
            let name = name.ok_or(Errno::EINVAL)?;
            let s = settings.map_err(|f| f.errno)?;
            let t = target(&s, kind, name, entry.names)
                .map_err(|f| unlink_name_errno(f, entry.names))?;
            object::unlink(&Call::new(s.cross_user, None), &t)?;
            Ok(report::Ret::Int(0))
        })();
        finish(&entry, kind, &call, &settings, result).map(|_| 0)
    })
}

fn target<'a>(
    s: &env::Settings<'a>,
    kind: ObjectKind,
    name: &'a [u8],
    names: Names,
) -> Result<Target<'a>, Fail> {
    // `s.dir` is the value of TMPSHM_DIR, a C string, or the default: no NUL inside.
    Target::new(s.dir, Layout::Illumos, kind, name, names.rule(), Op::Name)
}

/// Traces the call (if asked) and, for an interposer, explains a directory that cannot work
/// (once per process); then hands back the result. Neither is the common case: that one is a
/// test and a return, inlined.
#[inline(always)]
fn finish(
    entry: &Entry,
    kind: ObjectKind,
    call: &report::Call<'_>,
    settings: &Result<env::Settings<'static>, Fail>,
    result: Result<report::Ret, Errno>,
) -> Result<report::Ret, Errno> {
    if entry.vars.trace.is_none() && !(entry.interposer && result.is_err()) {
        return result;
    }
    finish_reported(entry, kind, call, settings, result)
}

#[cold]
#[inline(never)]
fn finish_reported(
    entry: &Entry,
    kind: ObjectKind,
    call: &report::Call<'_>,
    settings: &Result<env::Settings<'static>, Fail>,
    result: Result<report::Ret, Errno>,
) -> Result<report::Ret, Errno> {
    if let Some(sink) = report::sink(entry.vars.trace) {
        let path = match (settings, call.name()) {
            (Ok(s), Some(name)) => target(s, kind, name, entry.names)
                .ok()
                .and_then(|t| t.data().ok()),
            _ => None,
        };
        report::trace(sink, call, result, path.as_ref());
    }
    if let (true, Err(e)) = (entry.interposer, result) {
        let (dir, from_env) = match settings {
            Ok(s) => (s.dir, s.dir_from_env),
            Err(_) => (entry.vars.dir.map_or(&b""[..], CStr::to_bytes), true),
        };
        report::dir_problem(call, dir, from_env, e);
    }
    result
}

/// glibc's `shm_unlink` and `sem_unlink` answer `ENOENT` for a name its `shm_open` refuses
/// (POSIX lists no `EINVAL` for them).
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
        let rc = guard(-1, || panic!("deliberate"));
        assert_eq!(rc, -1);
        assert_eq!(errno(), PANIC_ERRNO);
    }

    #[test]
    fn errors_set_errno_and_success_returns_the_value() {
        assert_eq!(guard(-1, || Err(Errno::ENAMETOOLONG)), -1);
        assert_eq!(errno(), libc::ENAMETOOLONG);
        assert_eq!(guard(-1, || Ok(7)), 7);
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
