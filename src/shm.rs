//! The public API: [`ShmDir`] (a directory of objects, with options) and the free functions
//! that use the directory chosen by the environment.

use std::ffi::{CStr, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::NixPath;

use crate::error::{Error, Op, Result};
use crate::lock::{self, LockGuard};
use crate::name::{self, as_path, Layout, ObjectPaths};
use crate::object::{self, Checks, Request};
use crate::trace::{Step, Tracer};

/// The environment variable that moves the default directory away from `/tmp`.
pub const ENV_DIR: &str = "TMPSHM_DIR";
/// The environment variable that, set to `1`, allows opening objects owned by other users.
pub const ENV_CROSS_USER: &str = "TMPSHM_CROSS_USER";
/// The directory used when [`ENV_DIR`] is not set, as on illumos.
pub const DEFAULT_DIR: &str = "/tmp";

/// Flags that tmpshm always adds, so a caller passing them asks for nothing new.
const IMPLIED: OFlag = OFlag::O_CLOEXEC.union(OFlag::O_NOFOLLOW);
const ALLOWED: OFlag = OFlag::O_ACCMODE
    .union(OFlag::O_CREAT)
    .union(OFlag::O_EXCL)
    .union(OFlag::O_TRUNC)
    .union(IMPLIED);

/// A directory of shared memory objects, with the options that govern opening them.
///
/// Cheap to clone. Nothing is touched until an operation runs.
///
/// # Security
/// Objects live as plain files in a directory that, by default (`/tmp`), every local user
/// can write. Every operation therefore: never follows a symbolic link at the data or lock
/// path (`O_NOFOLLOW`); opens FIFOs without blocking and refuses anything but a regular file;
/// refuses a file with more than one hard link; refuses a file owned by another user unless
/// [`ShmDir::cross_user`] is set; truncates only after those checks pass. The directory itself
/// is trusted: a directory that others can rename or replace gives no protection.
///
/// # Example
/// ```
/// use tmpshm::{OFlag, ShmDir};
/// let dir = tempfile::tempdir()?;
/// let shm = ShmDir::new(dir.path());
/// let fd = shm.open("/doc-shmdir", OFlag::O_CREAT | OFlag::O_RDWR, 0o600)?;
/// nix::unistd::ftruncate(&fd, 4096)?;
/// assert!(dir.path().join(".SHMDdoc-shmdir").exists());
/// shm.unlink("/doc-shmdir")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ShmDir {
    dir: PathBuf,
    layout: Layout,
    cross_user: bool,
    tracer: Option<Tracer>,
}

impl std::fmt::Debug for ShmDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmDir")
            .field("dir", &self.dir)
            .field("layout", &self.layout)
            .field("cross_user", &self.cross_user)
            .field("traced", &self.tracer.is_some())
            .finish()
    }
}

impl ShmDir {
    /// Objects in `dir`, in the illumos layout, same-user only.
    ///
    /// # Example
    /// ```
    /// let shm = tmpshm::ShmDir::new("/tmp");
    /// assert_eq!(shm.dir(), std::path::Path::new("/tmp"));
    /// ```
    pub fn new(dir: impl Into<PathBuf>) -> ShmDir {
        ShmDir {
            dir: dir.into(),
            layout: Layout::ILLUMOS,
            cross_user: false,
            tracer: None,
        }
    }

    /// The directory the environment chooses: `$TMPSHM_DIR`, or `/tmp` when it is unset or
    /// empty; cross-user sharing when `$TMPSHM_CROSS_USER` is `1`.
    ///
    /// In a secure-execution process (set-user-ID or set-group-ID, or with file capabilities:
    /// `getauxval(AT_SECURE)`, the test glibc's `secure_getenv` makes) both variables are
    /// ignored: the user who started the program controls its environment, and could otherwise
    /// point it at a directory of their choosing or make it accept their files.
    ///
    /// # Errors
    /// - `EINVAL`: `TMPSHM_DIR` is not an absolute path (a relative one would name a different
    ///   directory in every process with another working directory).
    ///
    /// # Example
    /// ```
    /// let shm = tmpshm::ShmDir::from_env()?;
    /// assert!(shm.dir().is_absolute());
    /// # Ok::<(), tmpshm::Error>(())
    /// ```
    pub fn from_env() -> Result<ShmDir> {
        if secure_execution() {
            return Ok(ShmDir::new(DEFAULT_DIR));
        }
        let dir = match std::env::var_os(ENV_DIR) {
            Some(d) if !d.is_empty() => {
                let p = PathBuf::from(d);
                if !p.is_absolute() {
                    return Err(Error::new(Errno::EINVAL, Op::Env, p)
                        .because("TMPSHM_DIR must be an absolute path"));
                }
                p
            }
            _ => PathBuf::from(DEFAULT_DIR),
        };
        let cross = std::env::var_os(ENV_CROSS_USER).is_some_and(|v| v == "1");
        Ok(ShmDir::new(dir).cross_user(cross))
    }

    /// Use another layout (file-name prefixes, lock or none). See [`Layout`].
    ///
    /// # Example
    /// ```
    /// use tmpshm::{Layout, ShmDir};
    /// let native = ShmDir::new("/dev/shm").layout(Layout::GLIBC);
    /// assert_eq!(native.data_path("/x")?, std::path::Path::new("/dev/shm/x"));
    /// # Ok::<(), tmpshm::Error>(())
    /// ```
    pub fn layout(mut self, layout: Layout) -> ShmDir {
        self.layout = layout;
        self
    }

    /// Allow (or refuse, the default) objects and lock files owned by other users.
    ///
    /// Off, an object owned by another uid is refused with `EPERM` even when its mode would let
    /// us in: in a shared directory such a file may be a squatter's trap. Turn it on only when
    /// several users share objects on purpose (and set their modes to match).
    ///
    /// # Example
    /// ```
    /// let shared = tmpshm::ShmDir::new("/tmp").cross_user(true);
    /// assert!(shared.is_cross_user());
    /// ```
    pub fn cross_user(mut self, allow: bool) -> ShmDir {
        self.cross_user = allow;
        self
    }

    /// Call `f` at every step of every operation (see [`Step`]).
    ///
    /// # Example
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let dir = tempfile::tempdir()?;
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let sink = log.clone();
    /// let shm = tmpshm::ShmDir::new(dir.path())
    ///     .trace(move |step| sink.lock().unwrap().push(step.to_string()));
    /// shm.open("/traced", tmpshm::OFlag::O_CREAT | tmpshm::OFlag::O_RDWR, 0o600)?;
    /// assert!(log.lock().unwrap().iter().any(|l| l.starts_with("lock acquired")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trace(mut self, f: impl Fn(&Step<'_>) + Send + Sync + 'static) -> ShmDir {
        self.tracer = Some(Arc::new(f));
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layout.
    pub fn get_layout(&self) -> Layout {
        self.layout
    }

    /// Whether objects of other users are accepted.
    pub fn is_cross_user(&self) -> bool {
        self.cross_user
    }

    /// Checks the directory and `name`, then calls `f` with the directory and the name (whole,
    /// and after its `/`).
    fn with_checked<P: ?Sized + NixPath, R>(
        &self,
        name: &P,
        f: impl FnOnce(&[u8], &[u8], &[u8]) -> R,
    ) -> Result<R> {
        let dir = self.dir.as_os_str().as_bytes();
        if dir.is_empty() || dir.contains(&0) {
            return Err(Error::new(Errno::EINVAL, Op::Name, &self.dir)
                .because("the directory path is empty or contains a NUL byte"));
        }
        let layout = self.layout;
        let mapped =
            name.with_nix_path(|c: &CStr| {
                let bytes = c.to_bytes();
                match name::check(bytes, layout) {
                    Ok(rest) => Ok(f(dir, bytes, rest)),
                    Err(e) => Err(Error::new(e.errno(), Op::Name, OsStr::from_bytes(bytes))
                        .because(e.reason())),
                }
            });
        match mapped {
            Ok(r) => r,
            // nix refuses a name with an interior NUL before our check sees it.
            Err(e) => {
                Err(Error::new(e, Op::Name, "<name with NUL>")
                    .because("the name contains a NUL byte"))
            }
        }
    }

    /// Reports the name step to the tracer, if there is one (building both paths for it).
    fn trace_name(&self, dir: &[u8], bytes: &[u8], rest: &[u8]) {
        if let Some(t) = &self.tracer {
            let paths = ObjectPaths::new(dir, self.layout, rest);
            t(&Step::Name {
                name: bytes,
                data: as_path(&paths.data),
                lock: paths.lock.as_deref().map(as_path),
            });
        }
    }

    /// Checks `name` and maps it to its files.
    pub(crate) fn paths<P: ?Sized + NixPath>(&self, name: &P) -> Result<ObjectPaths> {
        self.with_checked(name, |dir, bytes, rest| {
            self.trace_name(dir, bytes, rest);
            ObjectPaths::new(dir, self.layout, rest)
        })
    }

    pub(crate) fn checks(&self) -> Checks<'_> {
        Checks::new(self.cross_user, self.tracer.as_ref())
    }

    /// Takes the creation lock for `paths`, if the layout has one, with the checks of this call
    /// (so the euid is asked for at most once per call).
    pub(crate) fn lock<'a>(
        &'a self,
        paths: &'a ObjectPaths,
        checks: &Checks<'a>,
    ) -> Result<Option<LockGuard<'a>>> {
        match &paths.lock {
            None => Ok(None),
            Some(lock_path) => lock::acquire(lock_path, checks).map(Some),
        }
    }

    /// The data file that `name` maps to, without touching it.
    ///
    /// # Errors
    /// `EINVAL` for a name the rules refuse (see [`ShmDir::open`]).
    ///
    /// # Example
    /// ```
    /// let p = tmpshm::ShmDir::new("/tmp").data_path("/blah")?;
    /// assert_eq!(p, std::path::Path::new("/tmp/.SHMDblah"));
    /// # Ok::<(), tmpshm::Error>(())
    /// ```
    pub fn data_path<P: ?Sized + NixPath>(&self, name: &P) -> Result<PathBuf> {
        Ok(as_path(&self.paths(name)?.data).to_path_buf())
    }

    /// The lock file that `name` maps to (`None` in a layout without locks).
    ///
    /// # Errors
    /// `EINVAL` for a name the rules refuse (see [`ShmDir::open`]).
    ///
    /// # Example
    /// ```
    /// let p = tmpshm::ShmDir::new("/tmp").lock_path("/blah")?;
    /// assert_eq!(p.as_deref(), Some(std::path::Path::new("/tmp/.SHMLblah")));
    /// # Ok::<(), tmpshm::Error>(())
    /// ```
    pub fn lock_path<P: ?Sized + NixPath>(&self, name: &P) -> Result<Option<PathBuf>> {
        Ok(self
            .paths(name)?
            .lock
            .as_deref()
            .map(|l| as_path(l).to_path_buf()))
    }

    /// `shm_open(3)`: opens (and with `O_CREAT` creates) the object `name`, returning an
    /// ordinary fd with `FD_CLOEXEC` set, to `ftruncate` and `mmap`.
    ///
    /// `flags` is `O_RDONLY` or `O_RDWR`, with any of `O_CREAT`, `O_EXCL`, `O_TRUNC`
    /// (`O_CLOEXEC` and `O_NOFOLLOW` are accepted and always implied). `mode` (permission bits
    /// only) is used when the object is created, minus the umask; a new object has size 0.
    /// Opening an existing object takes no lock; creating one takes the lock once.
    ///
    /// # Errors
    /// Each error names the path (or name) and, where tmpshm itself refused, why.
    /// - `EINVAL`: the name breaks the rules (empty, no leading `/`, another `/`, `"/"` alone,
    ///   NUL byte); access mode `O_WRONLY`; a flag outside the list above; `O_EXCL` without
    ///   `O_CREAT`; `O_TRUNC` with `O_RDONLY`; mode bits outside `0o777` with `O_CREAT`;
    ///   something other than a regular file (directory, FIFO, socket) at the data or lock path.
    /// - `ENAMETOOLONG`: `".SHMD"` + the name exceeds the file system's `NAME_MAX`.
    /// - `ENOENT`: the object does not exist and `O_CREAT` was not given.
    /// - `EEXIST`: `O_CREAT|O_EXCL` and the object exists (a symlink at the path counts).
    /// - `EACCES`: the object's mode refuses the access asked for; the lock file exists and we
    ///   may not open it; the directory is not writable (creation).
    /// - `EPERM`: the object or lock file is owned by another user and cross-user sharing is off;
    ///   the object or lock file has more than one hard link; without cross-user sharing, the
    ///   lock file is busy, other users may open it, and `/proc/locks` does not show our uid
    ///   as its only holder.
    /// - `ELOOP`: a symbolic link is at the data or lock path; it is never followed.
    /// - `EMFILE`, `ENFILE`, `ENOSPC`, `EROFS`, `ENOTDIR`: as `open(2)`.
    ///
    /// `EINTR` is never returned: interrupted calls are retried.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{OFlag, ShmDir};
    /// let dir = tempfile::tempdir()?;
    /// let shm = ShmDir::new(dir.path());
    /// let fd = shm.open("/doc-open", OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR, 0o600)?;
    /// nix::unistd::ftruncate(&fd, 4096)?;
    /// let again = shm.open("/doc-open", OFlag::O_RDONLY, 0)?;
    /// assert_eq!(nix::sys::stat::fstat(&again)?.st_size, 4096);
    /// let err = shm.open("/doc-open", OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR, 0o600).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "shm_open")]
    pub fn open<P: ?Sized + NixPath>(&self, name: &P, flags: OFlag, mode: u32) -> Result<OwnedFd> {
        let create = flags.contains(OFlag::O_CREAT);
        let excl = flags.contains(OFlag::O_EXCL);
        let req = self.check_flags(name, flags, mode)?;
        let checks = self.checks();
        self.with_checked(name, |dir, bytes, rest| {
            self.trace_name(dir, bytes, rest);
            if !excl {
                // The common case, an object that already exists, needs no lock and not even
                // the lock path: only the data path, built on the stack.
                let first = name::with_joined(dir, self.layout.data_prefix(), rest, |data| {
                    object::open_existing(data, req, &checks)
                });
                match first {
                    Err(e) if create && e.errno() == Errno::ENOENT => {}
                    done => return done,
                }
            }
            let paths = ObjectPaths::new(dir, self.layout, rest);
            let mode = Mode::from_bits_truncate(mode);
            let _guard = self.lock(&paths, &checks)?;
            loop {
                match object::create_new(&paths.data, req, mode, &checks) {
                    Err(e) if e.errno() == Errno::EEXIST && !excl => {
                        // Made by someone who takes no lock (or in a lock-free layout).
                        match object::open_existing(&paths.data, req, &checks) {
                            Err(e) if e.errno() == Errno::ENOENT => continue,
                            done => return done,
                        }
                    }
                    done => return done,
                }
            }
        })?
    }

    fn check_flags<P: ?Sized + NixPath>(
        &self,
        name: &P,
        flags: OFlag,
        mode: u32,
    ) -> Result<Request> {
        let refuse = |why: &str| {
            let shown = name
                .with_nix_path(|c| PathBuf::from(OsStr::from_bytes(c.to_bytes())))
                .unwrap_or_else(|_| PathBuf::from("<name with NUL>"));
            Err(Error::new(Errno::EINVAL, Op::Flags, shown).because(why.to_string()))
        };
        let access = flags & OFlag::O_ACCMODE;
        if access != OFlag::O_RDONLY && access != OFlag::O_RDWR {
            return refuse("the access mode must be O_RDONLY or O_RDWR");
        }
        if !ALLOWED.contains(flags) {
            return refuse(&format!(
                "unsupported flags {:#o}; only O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC (and the implied O_CLOEXEC, O_NOFOLLOW)",
                (flags - ALLOWED).bits()
            ));
        }
        if flags.contains(OFlag::O_EXCL) && !flags.contains(OFlag::O_CREAT) {
            return refuse("O_EXCL without O_CREAT");
        }
        let truncate = flags.contains(OFlag::O_TRUNC);
        if truncate && access == OFlag::O_RDONLY {
            return refuse("O_TRUNC with O_RDONLY");
        }
        if flags.contains(OFlag::O_CREAT) && mode & !0o777 != 0 {
            return refuse(&format!(
                "mode {mode:#o} has bits outside the permission bits 0o777"
            ));
        }
        Ok(Request { access, truncate })
    }

    /// `shm_unlink(3)`: removes the name; the memory lives on while any fd or mapping does.
    ///
    /// Takes no lock: `unlink(2)` is atomic, and a creator holding the lock only ever makes
    /// the file in one step, so no creator can observe a half-done state.
    ///
    /// # Errors
    /// - `EINVAL`: the name breaks the rules (see [`ShmDir::open`]); a directory is at the path.
    /// - `ENAMETOOLONG`: the data file name exceeds the file system's `NAME_MAX`.
    /// - `ENOENT`: no such object.
    /// - `EACCES`: the object belongs to another user in a sticky directory (the kernel's
    ///   `EPERM`, reported as POSIX and glibc do), or the directory is not writable.
    /// - `EROFS`, `ENOTDIR`, `EBUSY`: as `unlink(2)`.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{OFlag, ShmDir};
    /// let dir = tempfile::tempdir()?;
    /// let shm = ShmDir::new(dir.path());
    /// drop(shm.open("/doc-unlink", OFlag::O_CREAT | OFlag::O_RDWR, 0o600)?);
    /// shm.unlink("/doc-unlink")?;
    /// assert_eq!(shm.unlink("/doc-unlink").unwrap_err().raw_os_error(), Some(libc::ENOENT));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "shm_unlink")]
    pub fn unlink<P: ?Sized + NixPath>(&self, name: &P) -> Result<()> {
        self.with_checked(name, |dir, bytes, rest| {
            self.trace_name(dir, bytes, rest);
            name::with_joined(dir, self.layout.data_prefix(), rest, |data| {
                object::remove(data, self.tracer.as_ref())
            })
        })?
    }
}

/// Whether this process runs with privileges its invoker does not have (set-user-ID,
/// set-group-ID, file capabilities), so that its environment must not be trusted.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn secure_execution() -> bool {
    // SAFETY: getauxval reads the auxiliary vector the kernel gave this process; no memory
    // of ours is involved.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn secure_execution() -> bool {
    use nix::unistd::{getegid, geteuid, getgid, getuid};
    getuid() != geteuid() || getgid() != getegid()
}
