//! The preload library's `shm_open` and `shm_unlink`, loaded from its file: the subject of the
//! preload pass.
//!
//! The pass calls the shipped library itself rather than the Rust code behind it, so that it
//! also proves what only the built file can get wrong: that it exports the interposers, under
//! these names, with the name rules chosen from the environment. The library is loaded with
//! `RTLD_LOCAL`, so it stands in for nobody else's calls in this process (the oracle reaches
//! libc's own functions anyway), and its functions are looked up on its handle; `dladdr` then
//! checks that they are defined in that file, not found in libc behind it.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::{c_int, c_void, mode_t};
use nix::errno::Errno;

use crate::oracle::{object_of, ShmFns};

/// The file name `cargo build -p tmpshm-preload` gives the library.
pub const FILE_NAME: &str = "libtmpshm_preload.so";

/// Sets the environment tmpshm's C entry points read, the preload library's among them:
/// `TMPSHM_DIR=dir`, `TMPSHM_CROSS_USER=1` exactly when `cross_user`, no `TMPSHM_NAMES`.
pub(crate) fn set_env(dir: &Path, cross_user: bool) {
    std::env::set_var(tmpshm::ENV_DIR, dir);
    if cross_user {
        std::env::set_var(tmpshm::ENV_CROSS_USER, "1");
    } else {
        std::env::remove_var(tmpshm::ENV_CROSS_USER);
    }
    std::env::remove_var(tmpshm::capi::Names::ENV);
}

/// A shared library loaded from its file (`RTLD_LOCAL`, for the life of the process).
pub(crate) struct Library {
    /// Its `dlopen` handle.
    pub(crate) handle: *mut c_void,
    /// The path as given, for messages.
    pub(crate) what: String,
    /// The file, resolved.
    pub(crate) file: PathBuf,
}

impl Library {
    /// Loads the library at `path`.
    ///
    /// # Errors
    /// A message when the file cannot be loaded (the loader's reason), or at once in a
    /// program without glibc ([`crate::oracle::needs_glibc`]).
    pub(crate) fn load(path: &Path) -> Result<Library, String> {
        if let Some(why) = crate::oracle::needs_glibc() {
            return Err(format!(
                "cannot load {}: needs glibc ({why})",
                path.display()
            ));
        }
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{}: a NUL byte in the path", path.display()))?;
        // SAFETY: a NUL-terminated path. The library's initialisers are Rust's std only.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns NULL or a NUL-terminated message owned by the loader.
            let why = unsafe {
                let e = libc::dlerror();
                if e.is_null() {
                    "unknown error".to_string()
                } else {
                    CStr::from_ptr(e).to_string_lossy().into_owned()
                }
            };
            return Err(format!("cannot load {}: {why}", path.display()));
        }
        let what = path.display().to_string();
        let file = std::fs::canonicalize(path).map_err(|e| format!("{what}: {e}"))?;
        Ok(Library { handle, what, file })
    }

    /// Checks that each function (a symbol and the address `dlsym` found for it on this
    /// library's handle) is defined in this file, not found in a library behind it.
    ///
    /// # Errors
    /// A message naming the first function the file does not define.
    pub(crate) fn defines(&self, functions: &[(&str, *const c_void)]) -> Result<(), String> {
        for &(sym, p) in functions {
            let from = object_of(p)?;
            if std::fs::canonicalize(&from).ok().as_deref() != Some(self.file.as_path()) {
                return Err(format!(
                    "{} does not define {sym}: the loader found it in {}",
                    self.what,
                    from.display()
                ));
            }
        }
        Ok(())
    }
}

/// The interposers of one loaded preload library.
#[derive(Clone)]
pub struct Interposers {
    fns: ShmFns,
    path: PathBuf,
}

impl std::fmt::Debug for Interposers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interposers")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Interposers {
    /// Loads the library at `path` (for the life of the process) and looks up its `shm_open`
    /// and `shm_unlink`.
    ///
    /// # Errors
    /// A message when the file cannot be loaded, or does not itself define both functions.
    ///
    /// # Example
    /// ```
    /// use tmpshm_compat::preload::Interposers;
    /// let err = Interposers::load("/nonexistent/libtmpshm_preload.so".as_ref()).unwrap_err();
    /// assert!(err.contains("cannot load"));
    /// ```
    pub fn load(path: &Path) -> Result<Interposers, String> {
        let lib = Library::load(path)?;
        let fns = ShmFns::lookup(lib.handle, &lib.what)?;
        lib.defines(&[
            ("shm_open", fns.open as *const c_void),
            ("shm_unlink", fns.unlink as *const c_void),
        ])?;
        Ok(Interposers {
            fns,
            path: lib.file,
        })
    }

    /// The library's file, resolved.
    ///
    /// # Example
    /// ```no_run
    /// use tmpshm_compat::preload::Interposers;
    /// let lib = Interposers::load("target/release/libtmpshm_preload.so".as_ref())?;
    /// assert!(lib.path().is_absolute());
    /// # Ok::<(), String>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The library's `shm_open(name, oflag, mode)`, in the directory `$TMPSHM_DIR` names.
    ///
    /// # Errors
    /// The errno it sets.
    ///
    /// # Example
    /// ```no_run
    /// use tmpshm_compat::preload::Interposers;
    /// let lib = Interposers::load("target/release/libtmpshm_preload.so".as_ref())?;
    /// std::env::set_var("TMPSHM_DIR", "/tmp");
    /// // glibc's name rules: "x" is "/x".
    /// let fd = lib.open(c"doc-preload", libc::O_CREAT | libc::O_RDWR, 0o600).unwrap();
    /// assert!(std::path::Path::new("/tmp/.SHMDdoc-preload").is_file());
    /// lib.unlink(c"/doc-preload").unwrap();
    /// # drop(fd);
    /// # Ok::<(), String>(())
    /// ```
    pub fn open(&self, name: &CStr, oflag: c_int, mode: mode_t) -> Result<OwnedFd, Errno> {
        self.fns.open(name, oflag, mode)
    }

    /// The library's `shm_unlink(name)`.
    ///
    /// # Errors
    /// The errno it sets.
    ///
    /// # Example
    /// ```no_run
    /// use tmpshm_compat::preload::Interposers;
    /// let lib = Interposers::load("target/release/libtmpshm_preload.so".as_ref())?;
    /// // A name glibc refuses is ENOENT to shm_unlink, as glibc answers.
    /// assert_eq!(lib.unlink(c"/a/b").unwrap_err(), nix::errno::Errno::ENOENT);
    /// # Ok::<(), String>(())
    /// ```
    pub fn unlink(&self, name: &CStr) -> Result<(), Errno> {
        self.fns.unlink(name)
    }
}
