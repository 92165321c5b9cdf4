//! [`ShmDir`]: a directory of objects, with the settings that govern opening them, and the
//! POSIX calls on it.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::call::Call;
use crate::env;
use crate::error::{At, Error, Fail, Op, Result, Why};
use crate::inventory::{self, GcReport, Inventory, LockInfo, ObjectInfo};
use crate::name::{Layout, NameRule, ObjectKind, ObjectName, Target};
use crate::object::{self, Request};
use crate::trace::Step;

type SharedTracer = Arc<dyn Fn(&Step<'_>) + Send + Sync>;

/// A directory of POSIX objects, with the settings that govern opening them: the base of every
/// other door (the nix drop-in [`shm_open`](crate::shm_open), [`ShmOptions`](crate::ShmOptions),
/// and the C libraries).
///
/// Cheap to clone. Nothing is touched until an operation runs.
///
/// # Security
/// Objects live as plain files in a directory that, by default (`/tmp`), every local user
/// can write. Every operation therefore: never follows a symbolic link at the data or lock
/// path (`O_NOFOLLOW`); never waits on a FIFO or a file lease (`O_NONBLOCK`) and refuses
/// anything but a regular file; refuses a file with more than one hard link; refuses a file
/// owned by another user, and an object that other users may both read and write, unless
/// [`ShmDir::with_cross_user`] is set; never waits on a lock file that another user can open;
/// truncates only after those checks pass. The directory itself is trusted: a directory that
/// others can rename or replace gives no protection (`tmpshm doctor` checks it).
///
/// # Example
/// ```
/// use tmpshm::{Mode, OFlag, ShmDir};
/// let dir = tempfile::tempdir()?;
/// let shm = ShmDir::new(dir.path());
/// let fd = shm.open("/doc-shmdir", OFlag::O_CREAT | OFlag::O_RDWR, Mode::S_IRUSR | Mode::S_IWUSR)?;
/// nix::unistd::ftruncate(&fd, 4096)?;
/// assert!(dir.path().join(".SHMDdoc-shmdir").exists());
/// shm.unlink("/doc-shmdir")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ShmDir {
    dir: PathBuf,
    /// Whether `dir` holds a NUL byte (then every call is refused with `EINVAL`), found once
    /// here rather than scanned for at every call.
    dir_nul: bool,
    layout: Layout,
    cross_user: bool,
    tracer: Option<SharedTracer>,
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
        let dir = dir.into();
        ShmDir {
            dir_nul: dir.as_os_str().as_bytes().contains(&0),
            dir,
            layout: Layout::Illumos,
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
        let dir = std::env::var_os(env::ENV_DIR);
        let cross = std::env::var_os(env::ENV_CROSS_USER);
        let s = env::settings(
            dir.as_deref().map(OsStrExt::as_bytes),
            cross.as_deref().map(OsStrExt::as_bytes),
        )
        .map_err(|f| f.into_error(dir.as_deref().map(PathBuf::from)))?;
        Ok(ShmDir::new(OsStr::from_bytes(s.dir)).with_cross_user(s.cross_user))
    }

    /// Use another layout (file names, lock or none). See [`Layout`].
    ///
    /// # Example
    /// ```
    /// use tmpshm::{Layout, ShmDir};
    /// let native = ShmDir::new("/dev/shm").with_layout(Layout::Glibc);
    /// assert_eq!(native.data_path("/x")?, std::path::Path::new("/dev/shm/x"));
    /// # Ok::<(), tmpshm::Error>(())
    /// ```
    pub fn with_layout(mut self, layout: Layout) -> ShmDir {
        self.layout = layout;
        self
    }

    /// Allow (or refuse, the default) objects and lock files owned by other users, and objects
    /// that other users may both read and write.
    ///
    /// Off, an object owned by another uid is refused with `EPERM` even when its mode would let
    /// us in: in a shared directory such a file may be a squatter's trap. Turn it on only when
    /// several users share objects on purpose (and set their modes to match). It also trusts
    /// the other users with the creation lock: one of them could hold it for as long as it
    /// likes.
    ///
    /// # Example
    /// ```
    /// let shared = tmpshm::ShmDir::new("/tmp").with_cross_user(true);
    /// assert!(shared.cross_user());
    /// ```
    pub fn with_cross_user(mut self, allow: bool) -> ShmDir {
        self.cross_user = allow;
        self
    }

    /// Call `f` at every step of every operation (see [`Step`]).
    ///
    /// # Example
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tmpshm::{Mode, OFlag};
    /// let dir = tempfile::tempdir()?;
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let sink = log.clone();
    /// let shm = tmpshm::ShmDir::new(dir.path())
    ///     .with_trace(move |step| sink.lock().unwrap().push(step.to_string()));
    /// shm.open("/traced", OFlag::O_CREAT | OFlag::O_RDWR, Mode::S_IRWXU)?;
    /// assert!(log.lock().unwrap().iter().any(|l| l.starts_with("lock acquired")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_trace(mut self, f: impl Fn(&Step<'_>) + Send + Sync + 'static) -> ShmDir {
        self.tracer = Some(Arc::new(f));
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether objects of other users are accepted.
    pub fn cross_user(&self) -> bool {
        self.cross_user
    }

    /// The context of one call (see [`Call`]).
    pub(crate) fn call(&self) -> Call<'_> {
        Call::new(self.cross_user, self.tracer.as_deref())
    }

    /// Checks `name` (strict rules) for an object of `kind` in this directory.
    pub(crate) fn target<'a>(
        &'a self,
        name: &'a [u8],
        kind: ObjectKind,
        op: Op,
    ) -> Result<Target<'a>> {
        let dir = self.dir.as_os_str().as_bytes();
        let t = if self.dir_nul {
            Err(Fail::new(Errno::EINVAL, op, At::Dir).why(Why::DirPath))
        } else {
            Target::new(dir, self.layout, kind, name, NameRule::Strict, op)
        };
        t.map_err(|f| self.error(f, None, name))
    }

    /// The public error for `fail`, naming the file it concerns.
    pub(crate) fn error(&self, fail: Fail, target: Option<&Target<'_>>, name: &[u8]) -> Error {
        let built = |p: std::result::Result<crate::sys::StackPath, Fail>| {
            p.ok().map(|p| p.as_path().to_path_buf())
        };
        let path = match (fail.at, target) {
            (At::Name, _) => Some(PathBuf::from(OsStr::from_bytes(name))),
            (At::Dir, _) => Some(self.dir.clone()),
            (At::Data, Some(t)) => built(t.data()),
            (At::Lock, Some(t)) => t.lock().ok().flatten().map(|p| p.as_path().to_path_buf()),
            (At::Temp(n), Some(t)) => built(t.temp(std::process::id(), n)),
            _ => None,
        };
        fail.into_error(path)
    }

    /// The data file that `name` maps to, without touching it.
    ///
    /// # Errors
    /// `EINVAL` for a name the rules refuse (see [`ShmDir::open`]); `ENAMETOOLONG` for a path
    /// longer than `PATH_MAX`.
    ///
    /// # Example
    /// ```
    /// let p = tmpshm::ShmDir::new("/tmp").data_path("/blah")?;
    /// assert_eq!(p, std::path::Path::new("/tmp/.SHMDblah"));
    /// # Ok::<(), tmpshm::Error>(())
    /// ```
    pub fn data_path(&self, name: impl ObjectName) -> Result<PathBuf> {
        let name = name.name_bytes();
        let t = self.target(name, ObjectKind::Shm, Op::Name)?;
        let p = t.data().map_err(|f| self.error(f, Some(&t), name))?;
        Ok(p.as_path().to_path_buf())
    }

    /// The lock file that `name` maps to (`None` in a layout without locks).
    ///
    /// # Errors
    /// As [`ShmDir::data_path`].
    ///
    /// # Example
    /// ```
    /// let p = tmpshm::ShmDir::new("/tmp").lock_path("/blah")?;
    /// assert_eq!(p.as_deref(), Some(std::path::Path::new("/tmp/.SHMLblah")));
    /// # Ok::<(), tmpshm::Error>(())
    /// ```
    pub fn lock_path(&self, name: impl ObjectName) -> Result<Option<PathBuf>> {
        let name = name.name_bytes();
        let t = self.target(name, ObjectKind::Shm, Op::Name)?;
        let p = t.lock().map_err(|f| self.error(f, Some(&t), name))?;
        Ok(p.map(|p| p.as_path().to_path_buf()))
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
    /// Each error names the file (or the name) and, where tmpshm itself refused, why.
    /// - `EINVAL`: the name breaks the rules (empty, no leading `/`, another `/`, `"/"` alone,
    ///   NUL byte); access mode `O_WRONLY`; a flag outside the list above; `O_EXCL` without
    ///   `O_CREAT`; `O_TRUNC` with `O_RDONLY`; mode bits outside `0o777` with `O_CREAT`;
    ///   something other than a regular file (directory, FIFO, socket) at the data or lock path.
    /// - `ENAMETOOLONG`: the data file's name exceeds the file system's `NAME_MAX` (250 bytes
    ///   after the `/` where it is 255), or its path exceeds `PATH_MAX`.
    /// - `ENOENT`: the object does not exist and `O_CREAT` was not given.
    /// - `EEXIST`: `O_CREAT|O_EXCL` and the object exists (a symlink at the path counts).
    /// - `EACCES`: the object's mode refuses the access asked for; the lock file exists and we
    ///   may not open it; the directory is not writable (creation); with cross-user sharing,
    ///   someone holds a file lease on the file, or it is a running program (never waited for).
    /// - `EPERM`: the object or lock file is owned by another user and cross-user sharing is off;
    ///   the object or lock file has more than one hard link; without cross-user sharing, other
    ///   users may both read and write the object, or the lock file is busy and other users may
    ///   open it.
    /// - `ELOOP`: a symbolic link is at the data or lock path; it is never followed.
    /// - `ENOSYS`: creating needs the lock, and the directory's file system has no `flock(2)`
    ///   (some FUSE and NFS mounts); said at once, with the file system's own answer.
    /// - `EMFILE`, `ENFILE`, `ENOSPC`, `EROFS`, `ENOTDIR`: as `open(2)`.
    ///
    /// `EINTR` is never returned: interrupted calls are retried.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{Mode, OFlag, ShmDir};
    /// let dir = tempfile::tempdir()?;
    /// let shm = ShmDir::new(dir.path());
    /// let rw = Mode::S_IRUSR | Mode::S_IWUSR;
    /// let fd = shm.open("/doc-open", OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR, rw)?;
    /// nix::unistd::ftruncate(&fd, 4096)?;
    /// let again = shm.open("/doc-open", OFlag::O_RDONLY, Mode::empty())?;
    /// assert_eq!(nix::sys::stat::fstat(&again)?.st_size, 4096);
    /// let err = shm.open("/doc-open", OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR, rw).unwrap_err();
    /// assert_eq!(err.raw_os_error(), libc::EEXIST);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # References
    /// [POSIX `shm_open`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shm_open.html),
    /// [Linux `shm_open(3)`](https://man7.org/linux/man-pages/man3/shm_open.3.html),
    /// [illumos `shm_open(3C)`](https://illumos.org/man/3C/shm_open).
    #[doc(alias = "shm_open")]
    pub fn open(&self, name: impl ObjectName, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
        let name = name.name_bytes();
        let req = Request::new(flags, mode).map_err(|f| self.error(f, None, name))?;
        let t = self.target(name, ObjectKind::Shm, Op::Name)?;
        let call = self.call();
        object::open(&call, &t, req).map_err(|f| self.error(f, Some(&t), name))
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
    /// use tmpshm::{Mode, OFlag, ShmDir};
    /// let dir = tempfile::tempdir()?;
    /// let shm = ShmDir::new(dir.path());
    /// drop(shm.open("/doc-unlink", OFlag::O_CREAT | OFlag::O_RDWR, Mode::S_IRWXU)?);
    /// shm.unlink("/doc-unlink")?;
    /// assert_eq!(shm.unlink("/doc-unlink").unwrap_err().raw_os_error(), libc::ENOENT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # References
    /// [POSIX `shm_unlink`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shm_unlink.html).
    #[doc(alias = "shm_unlink")]
    pub fn unlink(&self, name: impl ObjectName) -> Result<()> {
        let name = name.name_bytes();
        let t = self.target(name, ObjectKind::Shm, Op::Name)?;
        let call = self.call();
        object::unlink(&call, &t).map_err(|f| self.error(f, Some(&t), name))
    }

    /// Every object, lock file and temporary file in the directory, sorted by path.
    ///
    /// Nothing is opened for writing and nothing is removed. A lock or temporary file is
    /// probed with `flock(LOCK_SH|LOCK_NB)` on a read-only fd (refused means held); a probe
    /// that succeeds holds a shared lock for an instant, and an acquirer arriving then simply
    /// blocks in the kernel until the probe lets go. On Linux the holder's pid is read from
    /// `/proc/locks`, once per listing (a few more times at most for a held file it has no
    /// line for yet), for display only.
    ///
    /// # Errors
    /// - `ENOENT`, `ENOTDIR`, `EACCES`: reading the directory failed (named in the error).
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let shm = ShmDir::new(dir.path());
    /// ShmOptions::new().dir(shm.clone()).size(4096).create("/doc-ls")?;
    /// let inv = shm.list()?;
    /// assert_eq!(inv.objects[0].name, "/doc-ls");
    /// assert_eq!(inv.objects[0].size, 4096);
    /// assert!(inv.locks.is_empty()); // released locks leave no file
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list(&self) -> Result<Inventory> {
        inventory::list(self)
    }

    /// What `lstat` says about the shared memory object `name`, without opening it.
    ///
    /// # Errors
    /// - `EINVAL`: the name breaks the rules (see [`ShmDir::open`]).
    /// - `ENOENT`: no such object.
    /// - `ENAMETOOLONG`, `EACCES`, `ENOTDIR`: as `lstat(2)`.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{Mode, ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let shm = ShmDir::new(dir.path());
    /// ShmOptions::new().dir(shm.clone()).size(100).mode(Mode::from_bits_truncate(0o640)).create("/doc-stat")?;
    /// let info = shm.stat("/doc-stat")?;
    /// assert_eq!((info.size, info.mode), (100, 0o640));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stat(&self, name: impl ObjectName) -> Result<ObjectInfo> {
        inventory::stat(self, ObjectKind::Shm, name.name_bytes())
    }

    /// [`ShmDir::stat`] for an object of any kind (a semaphore: [`ObjectKind::Sem`]).
    ///
    /// # Errors
    /// As [`ShmDir::stat`].
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ObjectKind, SemOptions, ShmDir};
    /// let dir = tempfile::tempdir()?;
    /// let shm = ShmDir::new(dir.path());
    /// SemOptions::new().dir(shm.clone()).create("/doc-stat-sem")?;
    /// let info = shm.stat_kind(ObjectKind::Sem, "/doc-stat-sem")?;
    /// assert_eq!(info.size as usize, tmpshm::SEM_SIZE);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stat_kind(&self, kind: ObjectKind, name: impl ObjectName) -> Result<ObjectInfo> {
        inventory::stat(self, kind, name.name_bytes())
    }

    /// The lock file of the shared memory object `name` and whether a live process holds it,
    /// probed as [`ShmDir::list`] probes it; `None` when there is no lock file (or, in a layout
    /// without locks, can be none). Looks at that one file only.
    ///
    /// # Errors
    /// - `EINVAL`: the name breaks the rules (see [`ShmDir::open`]).
    /// - `ENAMETOOLONG`, `EACCES`, `ENOTDIR`: as `lstat(2)` of the lock path.
    ///
    /// # Example
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let shm = tmpshm::ShmDir::new(dir.path());
    /// assert!(shm.lock_info("/doc-li")?.is_none()); // no one is creating it
    /// std::fs::write(dir.path().join(".SHMLdoc-li"), b"")?; // left by a dead process
    /// assert_eq!(shm.lock_info("/doc-li")?.unwrap().state, tmpshm::LockState::Stale);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_info(&self, name: impl ObjectName) -> Result<Option<LockInfo>> {
        inventory::lock_info(self, ObjectKind::Shm, name.name_bytes())
    }

    /// [`ShmDir::lock_info`] for an object of any kind.
    ///
    /// # Errors
    /// As [`ShmDir::lock_info`].
    ///
    /// # Example
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let shm = tmpshm::ShmDir::new(dir.path());
    /// assert!(shm.lock_info_kind(tmpshm::ObjectKind::Sem, "/doc-li")?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_info_kind(
        &self,
        kind: ObjectKind,
        name: impl ObjectName,
    ) -> Result<Option<LockInfo>> {
        inventory::lock_info(self, kind, name.name_bytes())
    }

    /// Removes the lock files and temporary files that no live process holds.
    ///
    /// A file is removed only while `gc` holds it itself, following the release step of the
    /// lock protocol: `flock(LOCK_EX|LOCK_NB)` (busy: a live holder, keep it); `fstat` shows
    /// links (0: released meanwhile, nothing to do); `lstat` of the path shows the same inode
    /// (else it was replaced: keep the new one); `unlink` while still holding. An acquirer that
    /// opened the file just before wakes up to `st_nlink == 0` and starts again, exactly as
    /// after a normal release. Files of other users are left alone unless cross-user sharing
    /// is on.
    ///
    /// In a layout whose data files have no prefix ([`Layout::Glibc`]), an object may itself
    /// be called `/.SHMTsomething`; there only names of the exact form a create makes,
    /// `.SHMT<pid>.<n>` (decimal digits), count as temporary files.
    ///
    /// # Errors
    /// - `ENOENT`, `ENOTDIR`, `EACCES`: reading the directory failed. Failures on single files
    ///   (`EPERM`: another user's; `EACCES`: not readable) go into [`GcReport::failed`].
    ///
    /// # Example
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join(".SHMLcrashed"), b"")?; // left by a dead process
    /// let report = tmpshm::ShmDir::new(dir.path()).gc()?;
    /// assert_eq!(report.removed, vec![dir.path().join(".SHMLcrashed")]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gc(&self) -> Result<GcReport> {
        inventory::gc(self)
    }
}
