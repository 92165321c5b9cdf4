//! `libtmpshm`: POSIX named shared memory the illumos way, for C programs that call it on
//! purpose.
//!
//! Exports these functions and nothing else, declared in `compat/include/tmpshm.h`:
//! [`tmpshm_shm_open`], [`tmpshm_shm_unlink`], [`tmpshm_sem_open`], [`tmpshm_sem_close`],
//! [`tmpshm_sem_unlink`]. They take illumos's names (one leading `/`,
//! no other) and put the object `"/blah"` in the plain file `<dir>/.SHMDblah`, where `<dir>` is
//! `$TMPSHM_DIR` (an absolute path) or else `/tmp`. Linking this library never changes what a
//! program's own `shm_open` calls do: those still reach the system's. To run an unmodified
//! program on tmpshm, preload `libtmpshm_preload.so` instead (the `tmpshm-preload` crate).
//!
//! Built as `libtmpshm_c.so` with the SONAME `libtmpshm.so.0`, and as `libtmpshm_c.a`.
//! Installed, it is `libtmpshm.so.0` with a `libtmpshm.so` link for `-ltmpshm`; in a build tree,
//! link with `-ltmpshm_c` and give the run-time loader a `libtmpshm.so.0` (a symbolic link to
//! the built file).
//!
//! Both functions behave like their libc namesakes (`-1` and `errno`), read the environment at
//! every call, make no heap allocation on any path, and let no Rust panic cross into C.
//!
//! # Example
//! ```c
//! /* cc prog.c -Icompat/include -Ltarget/release -ltmpshm_c */
//! #include <fcntl.h>
//! #include <stdio.h>
//! #include "tmpshm.h"
//!
//! int fd = tmpshm_shm_open("/blah", O_CREAT | O_RDWR, 0600); /* $TMPSHM_DIR/.SHMDblah */
//! if (fd < 0)
//!     perror("tmpshm_shm_open");
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use libc::{c_char, c_int, c_uint, mode_t};
use tmpshm::capi::{self, Names};

/// `shm_open(3)` on tmpshm, with illumos's names: a new fd with `FD_CLOEXEC` set, or `-1`
/// with `errno` set.
///
/// `oflag` is `O_RDONLY` or `O_RDWR`, with any of `O_CREAT`, `O_EXCL`, `O_TRUNC` (`O_CLOEXEC`
/// and `O_NOFOLLOW` are accepted and always implied); `mode` (permission bits only) applies to
/// a new object, minus the umask. `TMPSHM_CROSS_USER=1` accepts other users' objects and
/// objects other users may read and write. A set-user-ID program ignores both variables.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or points to a NUL-terminated string.
///
/// # Errors
/// - `EINVAL`: a NULL name; the name breaks the rules (empty, no leading `/`, another `/`,
///   `"/"` alone); access mode `O_WRONLY`; a flag outside the list above; `O_EXCL` without
///   `O_CREAT`; `O_TRUNC` with `O_RDONLY`; mode bits outside `0777` with `O_CREAT`; something
///   other than a regular file at the data or lock path; `TMPSHM_DIR` is not absolute.
/// - `ENAMETOOLONG`: `.SHMD` + the name exceeds the file system's `NAME_MAX` (250 bytes after
///   the `/` where it is 255), or the path exceeds `PATH_MAX`.
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
/// int fd = tmpshm_shm_open("/blah", O_CREAT | O_EXCL | O_RDWR, 0600);
/// if (fd < 0 && errno == EEXIST)
///     fd = tmpshm_shm_open("/blah", O_RDWR, 0);
/// ```
#[no_mangle]
pub unsafe extern "C" fn tmpshm_shm_open(name: *const c_char, oflag: c_int, mode: mode_t) -> c_int {
    // SAFETY: `name` is NULL or NUL-terminated, as our caller promises.
    unsafe { capi::shm_open(name, oflag, mode, Names::Strict) }
}

/// `shm_unlink(3)` on tmpshm, with illumos's names: `0`, or `-1` with `errno` set. The memory
/// lives on while any fd or mapping does.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or points to a NUL-terminated string.
///
/// # Errors
/// - `EINVAL`: a NULL name; the name breaks the rules (see [`tmpshm_shm_open`]); a directory
///   at the path; `TMPSHM_DIR` is not absolute.
/// - `ENAMETOOLONG`: the data file's name exceeds the file system's `NAME_MAX`.
/// - `ENOENT`: no such object.
/// - `EACCES`: the object belongs to another user in a sticky directory, or the directory is
///   not writable.
/// - `EIO`: a Rust panic was caught.
/// - `EROFS`, `ENOTDIR`, `EBUSY`: as `unlink(2)`.
///
/// # Example
/// ```c
/// if (tmpshm_shm_unlink("/blah") < 0 && errno != ENOENT)
///     perror("tmpshm_shm_unlink");
/// ```
#[no_mangle]
pub unsafe extern "C" fn tmpshm_shm_unlink(name: *const c_char) -> c_int {
    // SAFETY: `name` is NULL or NUL-terminated, as our caller promises.
    unsafe { capi::shm_unlink(name, Names::Strict) }
}

/// `sem_open(3)` on tmpshm, with illumos's names: the semaphore `"/s"` is the file
/// `<dir>/.SEMDs`, holding one process-shared `sem_t` of the system's libc, initialised before
/// it got its name. Returns its address (the same for every open of it in the process until
/// closed as often), or `SEM_FAILED` (NULL) with `errno` set. `mode` (minus the umask) and
/// `value` are used only with `O_CREAT`. No fd stays open.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or points to a NUL-terminated string.
///
/// # Errors
/// - `EEXIST`: `O_CREAT|O_EXCL` and the semaphore exists.
/// - `ENOENT`: no such semaphore and no `O_CREAT`.
/// - `EINVAL`: a NULL name; the name breaks the rules; `value` above `SEM_VALUE_MAX`; mode
///   bits outside `0777`; the file is not a semaphore (not one `sem_t` long) or not a regular
///   file.
/// - `EACCES`, `EPERM`, `ELOOP`, `ENAMETOOLONG`, `ENOSPC`: as [`tmpshm_shm_open`].
/// - `EMFILE`: 1024 semaphores open in this process, or as `open(2)`.
/// - `EIO`: a Rust panic was caught.
///
/// # Example
/// ```c
/// sem_t *s = tmpshm_sem_open("/lock", O_CREAT, 0600, 1);
/// if (s == SEM_FAILED)
///     perror("tmpshm_sem_open");
/// sem_wait(s); /* the libc's own */
/// sem_post(s);
/// tmpshm_sem_close(s);
/// ```
#[no_mangle]
pub unsafe extern "C" fn tmpshm_sem_open(
    name: *const c_char,
    oflag: c_int,
    mode: mode_t,
    value: c_uint,
) -> *mut libc::sem_t {
    // SAFETY: `name` is NULL or NUL-terminated, as our caller promises.
    unsafe { capi::sem_open(name, oflag, mode, value, Names::Strict) }
}

/// `sem_close(3)` for a semaphore [`tmpshm_sem_open`] returned: `0`, or `-1` with `errno`
/// set; the process's last close of it unmaps it.
///
/// # Safety
/// None beyond C's: an address that is not an open semaphore of this process is refused with
/// `EINVAL`, never unmapped.
///
/// # Errors
/// `EINVAL`: not an open semaphore of this process; `EIO`: a Rust panic was caught.
///
/// # Example
/// ```c
/// tmpshm_sem_close(s);
/// ```
#[no_mangle]
pub unsafe extern "C" fn tmpshm_sem_close(sem: *mut libc::sem_t) -> c_int {
    // SAFETY: any address is accepted and checked against this process's open semaphores.
    unsafe { capi::sem_close(sem) }
}

/// `sem_unlink(3)` on tmpshm, with illumos's names: `0`, or `-1` with `errno` set; open
/// handles keep working.
///
/// # Safety
/// `name` is NULL (refused with `EINVAL`) or points to a NUL-terminated string.
///
/// # Errors
/// As [`tmpshm_shm_unlink`].
///
/// # Example
/// ```c
/// tmpshm_sem_unlink("/lock");
/// ```
#[no_mangle]
pub unsafe extern "C" fn tmpshm_sem_unlink(name: *const c_char) -> c_int {
    // SAFETY: `name` is NULL or NUL-terminated, as our caller promises.
    unsafe { capi::sem_unlink(name, Names::Strict) }
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
        assert_eq!(
            unsafe { tmpshm_shm_open(std::ptr::null(), libc::O_RDWR, 0) },
            -1
        );
        assert_eq!(errno(), libc::EINVAL);
        // SAFETY: as above.
        assert_eq!(unsafe { tmpshm_shm_unlink(std::ptr::null()) }, -1);
        assert_eq!(errno(), libc::EINVAL);
    }

    #[test]
    fn names_follow_illumos_rules() {
        for name in [c"no-slash", c"//double", c"/a/b", c"", c"/"] {
            // SAFETY: a NUL-terminated name. The name is refused before the directory is read.
            assert_eq!(
                unsafe { tmpshm_shm_open(name.as_ptr(), libc::O_RDONLY, 0) },
                -1
            );
            assert_eq!(errno(), libc::EINVAL, "open {name:?}");
            // SAFETY: as above.
            assert_eq!(unsafe { tmpshm_shm_unlink(name.as_ptr()) }, -1);
            assert_eq!(errno(), libc::EINVAL, "unlink {name:?}");
        }
    }
}
