//! `libtmpshm_preload.so`: the system's `shm_open`, `shm_unlink`, `sem_open`, `sem_close` and
//! `sem_unlink`, replaced by tmpshm's, for unmodified programs.
//!
//! ```sh
//! TMPSHM_DIR=/tmp LD_PRELOAD=/path/to/libtmpshm_preload.so ./program
//! ```
//!
//! Exports [`shm_open`], [`shm_unlink`], [`sem_open`], [`sem_close`] and [`sem_unlink`] and
//! nothing else. Preloaded, they come before libc's, so every call the program (or any library
//! it loads) makes lands here: the object `"/blah"` becomes the plain file `<dir>/.SHMDblah`,
//! `<dir>` being `$TMPSHM_DIR` (absolute) or else `/tmp`, created under the lock file
//! `<dir>/.SHMLblah`; the semaphore `"/s"` is `<dir>/.SEMDs`, holding the libc's own
//! process-shared `sem_t`, on which the libc's `sem_wait`, `sem_post`... work as ever.
//!
//! `TMPSHM_TRACE=stderr` (or an absolute file name) logs every call with its arguments,
//! result, errno and file; the first failure that a directory which cannot work explains (it
//! is missing, relative, not writable) is named once per process on standard error.
//!
//! They accept the names glibc accepts, since they stand in for glibc's calls: leading slashes
//! are dropped, so `"x"`, `"/x"` and `"//x"` are one object, and `shm_unlink` of a name
//! `shm_open` refuses answers `ENOENT`, as glibc's does. `TMPSHM_NAMES=strict` applies
//! illumos's rule instead (one leading `/`, no other; `EINVAL` otherwise). Everything else
//! (flags, modes, checks, errno) is what `tmpshm_shm_open` does; see `compat/include/tmpshm.h`.
//!
//! To call tmpshm on purpose from C, link `libtmpshm` (the `tmpshm-c` crate) instead: it never
//! replaces the program's own `shm_open`. This crate has no Rust library target for the same
//! reason: any Rust binary linking it would have its `shm_open` calls bound here.
//!
//! The environment is read at every call, without heap allocation on any path, and no Rust
//! panic crosses into C (it is reported as `EIO`).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use libc::{c_char, c_int, c_uint, mode_t};
use tmpshm::capi;

/// `shm_open(3)`, on tmpshm: a new fd with `FD_CLOEXEC` set, or `-1` with `errno` set.
///
/// Names follow glibc's rules (leading slashes dropped), or illumos's with
/// `TMPSHM_NAMES=strict`. `TMPSHM_CROSS_USER=1` accepts other users' objects and objects other
/// users may read and write. A set-user-ID program ignores the environment.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or points to a NUL-terminated string.
///
/// # Errors
/// - `EINVAL`: a NULL name; the name is empty or only slashes, or has a `/` after its leading
///   ones (with `TMPSHM_NAMES=strict`: no leading `/`, or more than one); access mode
///   `O_WRONLY`; a flag other than `O_CREAT`, `O_EXCL`, `O_TRUNC` (`O_CLOEXEC` and `O_NOFOLLOW`
///   are implied); `O_EXCL` without `O_CREAT`; `O_TRUNC` with `O_RDONLY`; mode bits outside
///   `0777` with `O_CREAT`; something other than a regular file at the data or lock path;
///   `TMPSHM_DIR` is not absolute.
/// - `ENAMETOOLONG`: `.SHMD` + the name exceeds the file system's `NAME_MAX`, or the path
///   exceeds `PATH_MAX`.
/// - `ENOENT`: no such object and no `O_CREAT`.
/// - `EEXIST`: `O_CREAT|O_EXCL` and the object exists.
/// - `EACCES`: the object's mode refuses the access; the lock file exists and may not be
///   opened; the directory is not writable (creation); with cross-user sharing, someone holds
///   a file lease on the file, or it is a running program.
/// - `EPERM`: the object or lock file belongs to another user (without cross-user sharing);
///   it has more than one hard link; without cross-user sharing, other users may both read
///   and write the object, or the lock file is busy and other users may open it.
/// - `ELOOP`: a symbolic link at the data or lock path (never followed).
/// - `EIO`: a Rust panic was caught.
/// - `EMFILE`, `ENFILE`, `ENOSPC`, `EROFS`, `ENOTDIR`: as `open(2)`. Never `EINTR`.
///
/// # Example
/// ```c
/// /* LD_PRELOAD=libtmpshm_preload.so TMPSHM_DIR=/tmp ./prog: $TMPSHM_DIR/.SHMDblah */
/// int fd = shm_open("blah", O_CREAT | O_RDWR, 0600);
/// ```
#[no_mangle]
pub unsafe extern "C" fn shm_open(name: *const c_char, oflag: c_int, mode: mode_t) -> c_int {
    // SAFETY: `name` is NULL or NUL-terminated, as our caller promises.
    unsafe { capi::interposed_shm_open(name, oflag, mode) }
}

/// `shm_unlink(3)`, on tmpshm: `0`, or `-1` with `errno` set.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or points to a NUL-terminated string.
///
/// # Errors
/// - `ENOENT`: no such object; a name [`shm_open`] refuses (glibc's answer), unless
///   `TMPSHM_NAMES=strict`, which gives `EINVAL` for it.
/// - `EINVAL`: a NULL name; a directory at the path; `TMPSHM_DIR` is not absolute.
/// - `ENAMETOOLONG`: the data file's name exceeds the file system's `NAME_MAX`.
/// - `EACCES`: the object belongs to another user in a sticky directory, or the directory is
///   not writable.
/// - `EIO`: a Rust panic was caught.
/// - `EROFS`, `ENOTDIR`, `EBUSY`: as `unlink(2)`.
///
/// # Example
/// ```c
/// shm_unlink("/blah"); /* the same object as "blah" and "//blah" */
/// ```
#[no_mangle]
pub unsafe extern "C" fn shm_unlink(name: *const c_char) -> c_int {
    // SAFETY: `name` is NULL or NUL-terminated, as our caller promises.
    unsafe { capi::interposed_shm_unlink(name) }
}

/// `sem_open(3)`, on tmpshm: the semaphore's address (the same for every open of it in the
/// process until closed as often), or `SEM_FAILED` (NULL) with `errno` set. No fd stays open.
///
/// In C, `sem_open` is variadic: `mode` and `value` follow only with `O_CREAT`. On the ABIs
/// this library is built for (x86_64, x86, aarch64, arm, riscv64 on Linux and Android),
/// variadic integer arguments travel exactly where fixed ones would, so this definition reads
/// them when they were passed, and ignores whatever those registers or stack slots hold
/// otherwise (it reads them only with `O_CREAT`).
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or points to a NUL-terminated string.
///
/// # Errors
/// - `EEXIST`: `O_CREAT|O_EXCL` and the semaphore exists.
/// - `ENOENT`: no such semaphore and no `O_CREAT`; a name glibc refuses is `EINVAL`.
/// - `EINVAL`: a NULL or refused name; `value` above `SEM_VALUE_MAX`; mode bits outside
///   `0777`; the file is not a semaphore (not one `sem_t` long) or not a regular file.
/// - `EACCES`, `EPERM`, `ELOOP`, `ENAMETOOLONG`, `ENOSPC`: as [`shm_open`].
/// - `EMFILE`: 1024 semaphores open in this process, or as `open(2)`.
/// - `EIO`: a Rust panic was caught.
///
/// # Example
/// ```c
/// sem_t *s = sem_open("/lock", O_CREAT, 0600, 1); /* $TMPSHM_DIR/.SEMDlock */
/// sem_wait(s); /* ... */ sem_post(s);
/// ```
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64"
))]
#[no_mangle]
pub unsafe extern "C" fn sem_open(
    name: *const c_char,
    oflag: c_int,
    mode: mode_t,
    value: c_uint,
) -> *mut libc::sem_t {
    // SAFETY: `name` is NULL or NUL-terminated, as our caller promises; `mode` and `value`
    // are used only with O_CREAT, when the caller passed them.
    unsafe { capi::interposed_sem_open(name, oflag, mode, value) }
}

/// `sem_close(3)`: one close of a semaphore [`sem_open`] returned; the last one unmaps it.
///
/// # Safety
/// None beyond C's: an address that is not an open semaphore of this process is refused with
/// `EINVAL`.
///
/// # Errors
/// `EINVAL`: not an open semaphore of this process; `EIO`: a Rust panic was caught.
///
/// # Example
/// ```c
/// sem_close(s);
/// ```
#[no_mangle]
pub unsafe extern "C" fn sem_close(sem: *mut libc::sem_t) -> c_int {
    // SAFETY: any address is accepted and checked against this process's open semaphores.
    unsafe { capi::interposed_sem_close(sem) }
}

/// `sem_unlink(3)`: removes the semaphore's name; open handles keep working.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or points to a NUL-terminated string.
///
/// # Errors
/// As [`shm_unlink`].
///
/// # Example
/// ```c
/// sem_unlink("/lock");
/// ```
#[no_mangle]
pub unsafe extern "C" fn sem_unlink(name: *const c_char) -> c_int {
    // SAFETY: `name` is NULL or NUL-terminated, as our caller promises.
    unsafe { capi::interposed_sem_unlink(name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }

    #[test]
    fn null_names_are_einval() {
        // SAFETY: NULL is part of the contract.
        assert_eq!(unsafe { shm_open(std::ptr::null(), libc::O_RDWR, 0) }, -1);
        assert_eq!(errno(), libc::EINVAL);
        // SAFETY: as above.
        assert_eq!(unsafe { shm_unlink(std::ptr::null()) }, -1);
        assert_eq!(errno(), libc::EINVAL);
    }

    #[test]
    fn names_glibc_refuses_are_einval_to_open_and_enoent_to_unlink() {
        if std::env::var_os("TMPSHM_NAMES").is_some() {
            println!("skipped: TMPSHM_NAMES is set, and this test is about the default rules");
            return;
        }
        for name in [c"", c"/", c"///", c"/a/b", c"a/"] {
            // SAFETY: a NUL-terminated name, refused before any file is touched.
            assert_eq!(unsafe { shm_open(name.as_ptr(), libc::O_RDONLY, 0) }, -1);
            assert_eq!(errno(), libc::EINVAL, "open {name:?}");
            // SAFETY: as above.
            assert_eq!(unsafe { shm_unlink(name.as_ptr()) }, -1);
            assert_eq!(errno(), libc::ENOENT, "unlink {name:?}");
        }
    }
}
