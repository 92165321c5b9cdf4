//! The system's own `shm_open`/`shm_unlink`, reached on purpose.
//!
//! A process that runs the suite may have an interposer in front of libc: under
//! `LD_PRELOAD=libtmpshm_preload.so`, or any other library that defines `shm_open`, a plain call
//! to `libc::shm_open` binds to that definition, and a differential test would then compare
//! tmpshm with itself. So the oracle never names the symbol at link time: it asks the dynamic
//! loader for the definition inside the already loaded `libc.so.6` (`dlopen(RTLD_NOLOAD)` +
//! `dlsym` on that handle, which searches libc and its own dependencies only), and `dladdr`
//! says which file a function comes from.
//!
//! The oracle is glibc's, so it exists only in a process linked against glibc: a test binary
//! built for another C library (`cargo test --target x86_64-unknown-linux-musl`, statically
//! linked, with no dynamic loader) has none, and [`needs_glibc`] says why, for the tests to
//! print as they skip. musl's own `shm_open` is compared in `cli/tests/portability.rs` instead.

use std::ffi::{CStr, OsStr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libc::{c_char, c_int, c_void, mode_t};
use nix::errno::Errno;

pub(crate) type OpenFn = unsafe extern "C" fn(*const c_char, c_int, mode_t) -> c_int;
pub(crate) type UnlinkFn = unsafe extern "C" fn(*const c_char) -> c_int;

/// A library's `shm_open` and `shm_unlink`.
#[derive(Clone, Copy)]
pub(crate) struct ShmFns {
    pub(crate) open: OpenFn,
    pub(crate) unlink: UnlinkFn,
}

impl ShmFns {
    /// The two functions as `handle` defines them; `what` names the object in errors.
    pub(crate) fn lookup(handle: *mut c_void, what: &str) -> Result<ShmFns, String> {
        let open = lookup(handle, c"shm_open", what)?;
        let unlink = lookup(handle, c"shm_unlink", what)?;
        // SAFETY: the symbols are `shm_open(const char *, int, mode_t)` and
        // `shm_unlink(const char *)`, with exactly these C signatures.
        Ok(unsafe {
            ShmFns {
                open: std::mem::transmute::<*mut c_void, OpenFn>(open),
                unlink: std::mem::transmute::<*mut c_void, UnlinkFn>(unlink),
            }
        })
    }

    /// `shm_open(name, oflag, mode)`; the errno it sets.
    pub(crate) fn open(&self, name: &CStr, oflag: c_int, mode: mode_t) -> Result<OwnedFd, Errno> {
        // SAFETY: the library's shm_open with a valid C string.
        let fd = unsafe { (self.open)(name.as_ptr(), oflag, mode) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: a fresh fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `shm_unlink(name)`; the errno it sets.
    pub(crate) fn unlink(&self, name: &CStr) -> Result<(), Errno> {
        // SAFETY: the library's shm_unlink with a valid C string.
        if unsafe { (self.unlink)(name.as_ptr()) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }
}

/// libc's `shm_open` and `shm_unlink`, and the file that defines them.
#[derive(Clone, Copy)]
pub struct Native {
    fns: ShmFns,
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native")
            .field("open", &(self.fns.open as *const c_void))
            .field("unlink", &(self.fns.unlink as *const c_void))
            .finish()
    }
}

/// `dlsym(handle, sym)`; `what` names the object in the error.
pub(crate) fn lookup(handle: *mut c_void, sym: &CStr, what: &str) -> Result<*mut c_void, String> {
    // SAFETY: handle is a live dlopen handle; sym is NUL-terminated.
    let p = unsafe { libc::dlsym(handle, sym.as_ptr()) };
    if p.is_null() {
        Err(format!("{what} has no {sym:?}"))
    } else {
        Ok(p)
    }
}

/// The shared object that contains `addr` (from `dladdr`).
pub(crate) fn object_of(addr: *const c_void) -> Result<PathBuf, String> {
    // SAFETY: Dl_info is plain data, valid when zeroed.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address; info is writable.
    let ok = unsafe { libc::dladdr(addr, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return Err(format!("dladdr knows no object for {addr:?}"));
    }
    // SAFETY: dladdr set dli_fname to a NUL-terminated string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Ok(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
}

/// A handle on the `libc.so.6` this process has loaded (never an interposer in front of it);
/// it stays open for the life of the process, as libc is never unloaded.
pub(crate) fn libc_handle() -> Result<*mut c_void, String> {
    // SAFETY: a constant NUL-terminated name; RTLD_NOLOAD only finds what is loaded.
    let handle = unsafe {
        libc::dlopen(
            c"libc.so.6".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_LOCAL,
        )
    };
    if handle.is_null() {
        return Err("libc.so.6 is not loaded in this process".to_string());
    }
    Ok(handle)
}

/// Why glibc's `shm_open`, and any shared library loaded with `dlopen`, cannot be had in this
/// process: `None` in a program linked against glibc, where they must be there (a failure to
/// find them is then an error, not a reason to skip).
///
/// Decided by the target the program was built for, which is what fixes it: a statically
/// linked musl program has neither glibc nor a dynamic loader, and the preload library is a
/// glibc library.
///
/// # Example
/// ```
/// match tmpshm_compat::oracle::needs_glibc() {
///     None => assert!(tmpshm_compat::oracle::Native::get().is_ok()),
///     Some(why) => println!("SKIPPED: needs glibc ({why})"),
/// }
/// ```
pub fn needs_glibc() -> Option<&'static str> {
    if cfg!(target_env = "gnu") {
        None
    } else if cfg!(target_env = "musl") {
        Some(
            "this program is linked statically against musl: there is no libc.so.6 to find \
             glibc's shm_open in, and no dynamic loader to load the preload library (a glibc \
             library) with",
        )
    } else {
        Some("this program is not linked against glibc: there is no libc.so.6 to find glibc's shm_open in")
    }
}

impl Native {
    /// libc's functions (looked up once per process).
    ///
    /// # Errors
    /// A message when `libc.so.6` is not loaded or lacks the symbols (not glibc): at once,
    /// with [`needs_glibc`]'s reason, in a program built for another C library.
    ///
    /// # Example
    /// ```ignore-musl
    /// let native = tmpshm_compat::oracle::Native::get()?;
    /// assert!(native.defining_object()?.to_string_lossy().contains("libc.so"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn get() -> Result<Native, String> {
        static ONCE: OnceLock<Result<Native, String>> = OnceLock::new();
        ONCE.get_or_init(|| {
            if let Some(why) = needs_glibc() {
                return Err(format!("needs glibc ({why})"));
            }
            let fns = ShmFns::lookup(libc_handle()?, "libc.so.6")?;
            Ok(Native { fns })
        })
        .clone()
    }

    /// The shared object that defines the `shm_open` we call (from `dladdr`).
    ///
    /// # Errors
    /// A message when the loader cannot say.
    ///
    /// # Example
    /// See [`Native::get`].
    pub fn defining_object(&self) -> Result<PathBuf, String> {
        object_of(self.fns.open as *const c_void)
    }

    /// The C library's own version string (`gnu_get_libc_version`), e.g. `"2.36"`: the
    /// table's divergences are measured against one version. Elsewhere (no glibc, so no
    /// oracle either) `"none"`.
    ///
    /// # Example
    /// ```ignore-musl
    /// let v = tmpshm_compat::oracle::Native::libc_version();
    /// assert!(v.starts_with("2."));
    /// ```
    pub fn libc_version() -> String {
        #[cfg(target_env = "gnu")]
        {
            // SAFETY: returns a pointer to a static NUL-terminated string inside libc.
            let v = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) };
            v.to_string_lossy().into_owned()
        }
        #[cfg(not(target_env = "gnu"))]
        {
            "none".to_string()
        }
    }

    /// libc's `shm_open(name, oflag, mode)`.
    ///
    /// # Errors
    /// libc's errno.
    ///
    /// # Example
    /// ```ignore-musl
    /// let native = tmpshm_compat::oracle::Native::get()?;
    /// assert_eq!(native.open(c"/a/b", libc::O_RDONLY, 0).unwrap_err(), nix::errno::Errno::EINVAL);
    /// # Ok::<(), String>(())
    /// ```
    pub fn open(&self, name: &CStr, oflag: c_int, mode: mode_t) -> Result<OwnedFd, Errno> {
        self.fns.open(name, oflag, mode)
    }

    /// libc's `shm_unlink(name)`.
    ///
    /// # Errors
    /// libc's errno.
    ///
    /// # Example
    /// ```ignore-musl
    /// let native = tmpshm_compat::oracle::Native::get()?;
    /// assert!(native.unlink(c"/tmpshm-compat-doc-never-created").is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn unlink(&self, name: &CStr) -> Result<(), Errno> {
        self.fns.unlink(name)
    }
}
