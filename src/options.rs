//! The high-level API: [`ShmOptions`] (a builder) and [`Shm`] (an open object that can own it).
//!
//! # Sized, atomic publish
//! With plain `shm_open(O_CREAT)` + `ftruncate`, an object exists at size 0 for a moment, and
//! an opener that maps it then dies of `SIGBUS`. [`ShmOptions::create`] never lets that be seen.
//! Under the creation lock it:
//! 1. creates a temporary file `<dir>/.SHMT<pid>.<n>` with `O_CREAT|O_EXCL|O_NOFOLLOW`, and
//!    takes `flock(LOCK_EX)` on it (so `gc` can tell a live creator's file from a crashed one's);
//! 2. reserves its blocks with `fallocate` (which also sets the size; `ENOSPC` now, never
//!    `SIGBUS` at a later write; `ftruncate` where the file system cannot reserve), and
//!    `fchmod`s it to exactly the mode asked for (no umask);
//! 3. renames it to the data path with `renameat2(RENAME_NOREPLACE)` (`EEXIST` if anything is
//!    there: the kernel decides, atomically, and the file never has a second link);
//! 4. drops the `flock`.
//!
//! The data path therefore names either nothing or a file of the full size and final mode,
//! with one link. A creator killed before step 3 leaves only a `.SHMT` file, which
//! [`ShmDir::list`] shows and [`ShmDir::gc`] removes; one killed after it leaves a finished
//! object.
//!
//! Where `renameat2` is missing (a kernel before 3.15, a system other than Linux or Android)
//! or the file system refuses `RENAME_NOREPLACE` (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`), step 3 is
//! `link(temp, data)` followed by `unlink(temp)`. Only then is there a window in which the
//! object has two links: concurrent openers get `EPERM` for that instant, and a creator killed
//! inside it leaves the object with two links, refused by every open until `gc` removes the
//! temporary name.
//!
//! Why not `O_TMPFILE` + `linkat`: an unprivileged `linkat` of such a file needs `/proc` mounted
//! (`/proc/self/fd/N` with `AT_SYMLINK_FOLLOW`), and not every file system supports it; a named
//! temporary file works on any Unix file system, Android's app directories included.
//!
//! # Unlinking an owned object
//! [`Shm::unlink`] and unlink-on-drop remove the name only if it still names the file the
//! handle has open, and they compare and unlink while holding the creation lock: every tmpshm
//! creator (and illumos libc) takes that lock, so none can re-create the name in between. A
//! creator that takes no lock (the glibc layout, or the system's own `shm_open` in `/dev/shm`)
//! can still slip a new object in between the compare and the unlink.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{open, AtFlags, Flock, FlockArg, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, lstat, Mode};
use nix::unistd::{linkat, unlink};
use nix::NixPath;

use crate::eintr;
use crate::error::{Error, Op, Result};
use crate::map::{Access, Mapping};
use crate::name::{as_path, with_joined, ObjectPaths};
use crate::object::{self, Checks, Request};
use crate::shm::ShmDir;

/// File-name prefix of the temporary files of a sized create (see the module docs).
pub const TEMP_PREFIX: &str = ".SHMT";

/// How to open or create an object: size, mode, access, directory, cleanup.
///
/// # Example
/// ```
/// use tmpshm::{Access, ShmDir, ShmOptions};
/// let dir = tempfile::tempdir()?;
/// let opts = ShmOptions::new().dir(ShmDir::new(dir.path())).size(4096).mode(0o600);
/// let owner = opts.clone().unlink_on_drop(true).create("/doc-opts")?;
/// let other = opts.open("/doc-opts")?; // never sees it at size 0
/// assert_eq!(other.len(), 4096);
/// other.map(Access::ReadWrite)?.write_at(0, b"hi")?;
/// drop(owner); // unlinks "/doc-opts"
/// assert!(!dir.path().join(".SHMDdoc-opts").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ShmOptions {
    dir: Option<ShmDir>,
    size: Option<u64>,
    mode: u32,
    read_only: bool,
    unlink_on_drop: bool,
}

impl Default for ShmOptions {
    fn default() -> Self {
        ShmOptions::new()
    }
}

impl ShmOptions {
    /// Defaults: the environment's directory ([`ShmDir::from_env`]), no size, mode `0o600`,
    /// read-write, no unlink on drop.
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::ShmOptions::new().size(1 << 20);
    /// # let _ = opts;
    /// ```
    pub fn new() -> ShmOptions {
        ShmOptions {
            dir: None,
            size: None,
            mode: 0o600,
            read_only: false,
            unlink_on_drop: false,
        }
    }

    /// The directory (and its options: layout, cross-user sharing, tracing).
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::ShmOptions::new().dir(tmpshm::ShmDir::new("/tmp"));
    /// # let _ = opts;
    /// ```
    pub fn dir(mut self, dir: ShmDir) -> ShmOptions {
        self.dir = Some(dir);
        self
    }

    /// The size: what `create` makes, and the least that `open` accepts.
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::ShmOptions::new().size(4096);
    /// # let _ = opts;
    /// ```
    pub fn size(mut self, bytes: u64) -> ShmOptions {
        self.size = Some(bytes);
        self
    }

    /// The permission bits of a created object, set exactly (the umask does not apply).
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::ShmOptions::new().mode(0o640);
    /// # let _ = opts;
    /// ```
    pub fn mode(mut self, mode: u32) -> ShmOptions {
        self.mode = mode;
        self
    }

    /// Open existing objects `O_RDONLY` (a created object is always read-write).
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::ShmOptions::new().read_only(true);
    /// # let _ = opts;
    /// ```
    pub fn read_only(mut self, yes: bool) -> ShmOptions {
        self.read_only = yes;
        self
    }

    /// Make the returned [`Shm`] unlink the object when dropped (see [`Shm::set_unlink_on_drop`]).
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::ShmOptions::new().unlink_on_drop(true);
    /// # let _ = opts;
    /// ```
    pub fn unlink_on_drop(mut self, yes: bool) -> ShmOptions {
        self.unlink_on_drop = yes;
        self
    }

    fn resolve_dir(&self) -> Result<ShmDir> {
        match &self.dir {
            Some(d) => Ok(d.clone()),
            None => ShmDir::from_env(),
        }
    }

    fn need_size(&self, name: &OsStr) -> Result<u64> {
        self.size.ok_or_else(|| {
            Error::new(Errno::EINVAL, Op::Flags, name)
                .because("creating needs a size: call .size(n) first")
        })
    }

    fn check_mode(&self, name: &OsStr) -> Result<Mode> {
        if self.mode & !0o777 != 0 {
            return Err(Error::new(Errno::EINVAL, Op::Flags, name).because(format!(
                "mode {:#o} has bits outside the permission bits 0o777",
                self.mode
            )));
        }
        Ok(Mode::from_bits_truncate(self.mode))
    }

    /// Creates `name` already at its size and mode; `EEXIST` if it exists.
    ///
    /// No opener can ever see the object smaller than `size` (see the module docs). The fd
    /// is read-write.
    ///
    /// # Errors
    /// - `EINVAL`: no size was given; the mode has bits outside `0o777`; the name breaks the
    ///   rules (see [`ShmDir::open`]).
    /// - `EEXIST`: anything is at the data path already (a symbolic link included).
    /// - `ENAMETOOLONG`: the data file name exceeds the file system's `NAME_MAX`.
    /// - `ENOSPC`: the file system has no room for `size` bytes (they are reserved, see the
    ///   module docs); nothing is left behind.
    /// - `EFBIG`: the size exceeds what the file system allows.
    /// - `EACCES`, `EPERM`, `ELOOP`: the lock file is unusable (see [`ShmDir::open`]); the
    ///   directory is not writable.
    /// - `EROFS`, `ENOTDIR`, `EMFILE`, `ENFILE`: as `open(2)`.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let opts = ShmOptions::new().dir(ShmDir::new(dir.path())).size(8192).mode(0o640);
    /// let shm = opts.create("/doc-create")?;
    /// assert_eq!(shm.len(), 8192);
    /// assert_eq!(opts.create("/doc-create").unwrap_err().raw_os_error(), Some(libc::EEXIST));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create<P: ?Sized + NixPath>(&self, name: &P) -> Result<Shm> {
        let name = name_of(name);
        let size = self.need_size(&name)?;
        let mode = self.check_mode(&name)?;
        let dir = self.resolve_dir()?;
        let paths = dir.paths(name.as_os_str())?;
        let fd = publish(&dir, &paths, size, mode)?;
        Ok(self.handle(dir, name, &paths, fd, size, true))
    }

    /// Opens an existing object, refusing one smaller than the size asked for (if any).
    ///
    /// # Errors
    /// - `ENOENT`: no such object.
    /// - `EINVAL`: the object is smaller than [`ShmOptions::size`]; the name breaks the rules;
    ///   something other than a regular file is at the data path.
    /// - `EACCES`, `EPERM`, `ELOOP`, `ENAMETOOLONG`: as [`ShmDir::open`].
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let opts = ShmOptions::new().dir(ShmDir::new(dir.path()));
    /// assert_eq!(opts.open("/doc-missing").unwrap_err().raw_os_error(), Some(libc::ENOENT));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open<P: ?Sized + NixPath>(&self, name: &P) -> Result<Shm> {
        let name = name_of(name);
        let dir = self.resolve_dir()?;
        let paths = dir.paths(name.as_os_str())?;
        let access = if self.read_only {
            OFlag::O_RDONLY
        } else {
            OFlag::O_RDWR
        };
        let req = Request {
            access,
            truncate: false,
        };
        let fd = object::open_existing(&paths.data, req, &dir.checks())?;
        let size = size_of(&fd, &paths.data)?;
        if let Some(want) = self.size {
            if size < want {
                return Err(
                    Error::new(Errno::EINVAL, Op::Check, as_path(&paths.data)).because(format!(
                        "the object is {size} bytes long, smaller than the {want} bytes asked for"
                    )),
                );
            }
        }
        Ok(self.handle(dir, name, &paths, fd, size, false))
    }

    /// Opens `name`, or creates it at its size if it does not exist.
    ///
    /// An existing object smaller than the size is an error, not grown: it may belong to a
    /// program that agreed on another size, and growing it behind that program's back would
    /// hide the disagreement. [`Shm::created`] tells which way it went.
    ///
    /// # Errors
    /// As [`ShmOptions::open`] (except `ENOENT`) and [`ShmOptions::create`] (except `EEXIST`).
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let opts = ShmOptions::new().dir(ShmDir::new(dir.path())).size(4096);
    /// assert!(opts.open_or_create("/doc-ooc")?.created());
    /// assert!(!opts.open_or_create("/doc-ooc")?.created());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create<P: ?Sized + NixPath>(&self, name: &P) -> Result<Shm> {
        let name = name_of(name);
        self.need_size(&name)?;
        self.check_mode(&name)?;
        loop {
            match self.open(name.as_os_str()) {
                Err(e) if e.errno() == Errno::ENOENT => {}
                done => return done,
            }
            match self.create(name.as_os_str()) {
                // Created by someone else between our open and our rename: open theirs.
                Err(e) if e.errno() == Errno::EEXIST => continue,
                done => return done,
            }
        }
    }

    fn handle(
        &self,
        dir: ShmDir,
        name: OsString,
        paths: &ObjectPaths,
        fd: OwnedFd,
        size: u64,
        created: bool,
    ) -> Shm {
        Shm {
            fd: Some(fd),
            dir,
            name,
            path: as_path(&paths.data).to_path_buf(),
            size,
            created,
            unlink_on_drop: self.unlink_on_drop,
        }
    }
}

fn name_of<P: ?Sized + NixPath>(name: &P) -> OsString {
    name.with_nix_path(|c| OsStr::from_bytes(c.to_bytes()).to_os_string())
        // A NUL inside the name: keep it, so that the name check refuses it with EINVAL.
        .unwrap_or_else(|_| OsString::from("/\0"))
}

fn size_of(fd: &OwnedFd, path: &CStr) -> Result<u64> {
    let st = fstat(fd.as_fd()).map_err(|e| Error::new(e, Op::Check, as_path(path)))?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// Drops a `flock` and hands back the fd; never panics (see [`eintr::unlock_and_close`]).
/// On failure the fd is closed, which releases the lock anyway.
fn release(locked: Flock<OwnedFd>) -> std::result::Result<OwnedFd, Errno> {
    locked.unlock().map_err(|(still, e)| {
        eintr::unlock_and_close(still);
        e
    })
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A flocked temporary file. Dropped while it still has its name (an error on the way), it
/// unlinks the name while holding the `flock` (so `gc` never removes a name in use), then
/// unlocks.
struct Temp<'a> {
    path: CString,
    file: Option<Flock<OwnedFd>>,
    checks: &'a Checks<'a>,
}

impl Temp<'_> {
    fn fd(&self) -> &OwnedFd {
        self.file.as_ref().expect("present until into_fd")
    }

    /// The name is gone (renamed or unlinked): unlock, and hand over the fd.
    fn into_fd(mut self) -> Result<OwnedFd> {
        let locked = self.file.take().expect("present until into_fd");
        release(locked).map_err(|e| Error::new(e, Op::Lock, as_path(&self.path)))
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if let Some(locked) = self.file.take() {
            self.checks.emit_call("unlink (temporary name)", &self.path);
            let _ = eintr::retry(|| unlink(self.path.as_c_str()));
            eintr::unlock_and_close(locked);
        }
    }
}

/// A number no other user can guess, so no one can squat the next temporary names: the
/// sequence number hashed with std's per-process random keys.
fn unpredictable(seq: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(seq);
    h.finish()
}

/// A fresh, flocked temporary file next to the objects. It is created `0600` whatever the
/// object's mode (which `fchmod` sets just before publishing): a file others could open, they
/// could also `flock`, and so freeze this create, and the name's lock with it.
fn make_temp<'a>(dir: &ShmDir, checks: &'a Checks<'a>) -> Result<Temp<'a>> {
    let base = dir.dir().as_os_str().as_bytes();
    let pid = std::process::id();
    let flags = OFlag::O_RDWR
        | OFlag::O_CREAT
        | OFlag::O_EXCL
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    for _ in 0..1000 {
        let n = unpredictable(SEQ.fetch_add(1, Ordering::Relaxed));
        // The directory was checked for NUL by `paths`.
        let path = with_joined(
            base,
            TEMP_PREFIX,
            format!("{pid}.{n}").as_bytes(),
            CStr::to_owned,
        );
        checks.emit_call(
            "open O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC 0600 (temporary file)",
            &path,
        );
        let fd = match eintr::retry(|| open(path.as_c_str(), flags, Mode::S_IRUSR | Mode::S_IWUSR))
        {
            Ok(fd) => fd,
            // Taken (by a crashed earlier process with our pid, or by chance): the next name.
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(Error::new(e, Op::Open, as_path(&path))),
        };
        // Until we hold the flock, a gc may take this fresh file for a crashed creator's: it
        // then holds the flock for an instant (we wait) and may unlink it (we start again).
        let locked = match eintr::flock(fd, FlockArg::LockExclusive) {
            Ok(l) => l,
            Err((_, e)) => {
                let _ = eintr::retry(|| unlink(path.as_c_str()));
                return Err(Error::new(e, Op::Lock, as_path(&path)));
            }
        };
        match fstat(locked.as_fd()) {
            Ok(st) if st.st_nlink == 0 => {
                // Collected: the name is gone, or a new file of someone else is there.
                eintr::unlock_and_close(locked);
                continue;
            }
            Ok(_) => {
                return Ok(Temp {
                    path,
                    file: Some(locked),
                    checks,
                })
            }
            Err(e) => {
                let err = Error::new(e, Op::Lock, as_path(&path));
                drop(Temp {
                    path,
                    file: Some(locked),
                    checks,
                });
                return Err(err);
            }
        }
    }
    Err(Error::new(Errno::EEXIST, Op::Open, dir.dir())
        .because("1000 temporary names in a row were taken; run `tmpshm gc`"))
}

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)`: moves `from` to `to` unless
/// something is at `to`, in one step. Called through `syscall(2)`: nix wraps it only for
/// glibc, and Android's libc only from API level 30.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(clippy::unnecessary_cast)] // RENAME_NOREPLACE is c_uint on Linux, c_int on Android
fn rename_noreplace(from: &CStr, to: &CStr) -> nix::Result<()> {
    // SAFETY: both paths are NUL-terminated and outlive the call, which only reads them; every
    // argument is passed as the `long` that the kernel reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD as libc::c_long,
            from.as_ptr(),
            libc::AT_FDCWD as libc::c_long,
            to.as_ptr(),
            libc::RENAME_NOREPLACE as libc::c_long,
        )
    };
    Errno::result(r).map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn rename_noreplace(_from: &CStr, _to: &CStr) -> nix::Result<()> {
    Err(Errno::ENOSYS)
}

/// How the temporary file reached the data path.
enum Placed {
    /// Renamed: the temporary name is gone.
    Renamed,
    /// Linked (no `renameat2` here): the temporary name is still there.
    Linked,
}

fn taken(e: Errno, data: &CStr) -> Error {
    match e {
        Errno::EEXIST => Error::new(Errno::EEXIST, Op::Open, as_path(data))
            .because("something is already at the data path"),
        e => Error::new(e, Op::Open, as_path(data)),
    }
}

/// Step 3 of the module docs: put the temporary file at `data`, never replacing anything.
fn place(temp: &CStr, data: &CStr, checks: &Checks<'_>) -> Result<Placed> {
    place_via(rename_noreplace, temp, data, checks)
}

/// [`place`] with the rename as a parameter, so that tests can take the fallback.
fn place_via(
    rename: fn(&CStr, &CStr) -> nix::Result<()>,
    temp: &CStr,
    data: &CStr,
    checks: &Checks<'_>,
) -> Result<Placed> {
    let shown = as_path(temp).display();
    checks.emit_call(&format!("renameat2 RENAME_NOREPLACE {shown} ->"), data);
    match eintr::retry(|| rename(temp, data)) {
        Ok(()) => return Ok(Placed::Renamed),
        // No renameat2 in this kernel, or no RENAME_NOREPLACE in this file system.
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {}
        Err(e) => return Err(taken(e, data)),
    }
    checks.emit_call(&format!("link {shown} ->"), data);
    // linkat without AT_SYMLINK_FOLLOW: never follows a link at either path.
    eintr::retry(|| linkat(AT_FDCWD, temp, AT_FDCWD, data, AtFlags::empty()))
        .map_err(|e| taken(e, data))?;
    Ok(Placed::Linked)
}

/// Steps 1–4 of the module docs.
fn publish(dir: &ShmDir, paths: &ObjectPaths, size: u64, mode: Mode) -> Result<OwnedFd> {
    let checks = dir.checks();
    let _guard = dir.lock(paths, &checks)?;
    let temp = make_temp(dir, &checks)?;
    // Any error from here on drops `temp`, which unlinks the temporary name.
    object::grow(temp.fd(), &temp.path, 0, size, &checks)?;
    checks.emit_call(&format!("fchmod {:04o}", mode.bits()), &temp.path);
    eintr::retry(|| fchmod(temp.fd(), mode))
        .map_err(|e| Error::new(e, Op::Open, as_path(&temp.path)))?;
    match place(&temp.path, &paths.data, &checks)? {
        // The fd already names `<dir>/.SHMD<name>` (in /proc/self/fd and /proc/self/maps).
        Placed::Renamed => temp.into_fd(),
        Placed::Linked => {
            checks.emit_call("unlink (temporary name)", &temp.path);
            // Unlinked while we still hold its flock, so that gc never removes a name in use.
            eintr::retry(|| unlink(temp.path.as_c_str()))
                .map_err(|e| Error::new(e, Op::Unlink, as_path(&temp.path)))?;
            let fd = temp.into_fd()?;
            reopen_by_name(fd, paths, &checks)
        }
    }
}

/// After a link: our fd still names the file by its temporary (now deleted) name in
/// /proc/self/fd and /proc/self/maps. Reopen it by its real name, so that tools show
/// `<dir>/.SHMD<name>`; keep the first fd if the object was unlinked or replaced in between.
fn reopen_by_name(fd: OwnedFd, paths: &ObjectPaths, checks: &Checks<'_>) -> Result<OwnedFd> {
    let req = Request {
        access: OFlag::O_RDWR,
        truncate: false,
    };
    match object::open_existing(&paths.data, req, checks) {
        Ok(again) if fds_same_file(again.as_fd(), fd.as_fd()) => Ok(again),
        _ => Ok(fd),
    }
}

fn fds_same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    matches!((fstat(a), fstat(b)), (Ok(x), Ok(y)) if object::same_file(&x, &y))
}

/// An open object: its fd, and (if asked) ownership, i.e. unlinking it on drop.
///
/// # Example
/// ```
/// use tmpshm::{Access, ShmDir, ShmOptions};
/// let dir = tempfile::tempdir()?;
/// let shm = ShmOptions::new().dir(ShmDir::new(dir.path())).size(4096).create("/doc-shm")?;
/// let map = shm.map(Access::ReadWrite)?;
/// map.write_at(0, b"hello")?;
/// shm.unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// With memmap2, for slices: the length check is then yours (`shm.len()` is the size the
/// object had when opened), and so is the promise that no process truncates it meanwhile.
/// ```
/// use tmpshm::{ShmDir, ShmOptions};
/// let dir = tempfile::tempdir()?;
/// let shm = ShmOptions::new().dir(ShmDir::new(dir.path())).size(4096).create("/doc-m2")?;
/// // SAFETY: only this process uses the fresh object, so nobody truncates or writes it.
/// let mut m = unsafe { memmap2::MmapOptions::new().len(shm.len() as usize).map_mut(&shm)? };
/// m[..2].copy_from_slice(b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Shm {
    // `None` only inside `into_fd`, which consumes the handle.
    fd: Option<OwnedFd>,
    dir: ShmDir,
    name: OsString,
    path: PathBuf,
    size: u64,
    created: bool,
    unlink_on_drop: bool,
}

impl Shm {
    /// The object's size when it was opened or created.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the size was 0.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The object name, e.g. `/blah`.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The data file, e.g. `/tmp/.SHMDblah`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this call created the object (see [`ShmOptions::open_or_create`]).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Whether dropping the handle unlinks the object.
    pub fn unlinks_on_drop(&self) -> bool {
        self.unlink_on_drop
    }

    /// Unlink the object when this handle is dropped (or not).
    ///
    /// The drop unlinks only if the data path still names the file this handle has open, so
    /// an object that someone else unlinked and re-created is left alone (see the module docs
    /// for the one gap). Errors on drop are ignored; call [`Shm::unlink`] to see them.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let mut shm = ShmOptions::new().dir(ShmDir::new(dir.path())).size(1).create("/doc-own")?;
    /// shm.set_unlink_on_drop(true);
    /// drop(shm);
    /// assert!(!dir.path().join(".SHMDdoc-own").exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, yes: bool) {
        self.unlink_on_drop = yes;
    }

    /// Maps the whole object (its size when opened), checked as [`Mapping::new`] checks.
    ///
    /// # Errors
    /// As [`Mapping::new`]: `EINVAL` for a zero-length object or one truncated since it was
    /// opened, `EACCES` for `ReadWrite` on a read-only handle, `ENOMEM`.
    ///
    /// # Example
    /// See [`Shm`].
    pub fn map(&self, access: Access) -> Result<Mapping> {
        let len = usize::try_from(self.size).map_err(|_| {
            Error::new(Errno::ENOMEM, Op::Map, &self.path).because("larger than the address space")
        })?;
        Mapping::new(self.fd(), len, access)
    }

    /// Grows the object to at least `len` bytes (never shrinks it: shrinking is what makes
    /// other processes' mappings raise `SIGBUS`), reserving the new blocks (`fallocate`), so
    /// that writes to them cannot fail for want of space. Returns whether it grew.
    ///
    /// # Errors
    /// - `EINVAL`: the handle is read-only.
    /// - `ENOSPC`: the file system has no room; the size is unchanged.
    /// - `EFBIG`: as `fallocate(2)`.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let mut shm = ShmOptions::new().dir(ShmDir::new(dir.path())).size(10).create("/doc-grow")?;
    /// assert!(shm.grow_to(4096)?);
    /// assert!(!shm.grow_to(100)?);
    /// assert_eq!(shm.len(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn grow_to(&mut self, len: u64) -> Result<bool> {
        let path = CString::new(self.path.as_os_str().as_bytes()).unwrap_or_default();
        let fd = self.fd.as_ref().expect("present until into_fd");
        let now = size_of(fd, &path)?;
        if len <= now {
            self.size = now;
            return Ok(false);
        }
        object::grow(fd, &path, now, len, &self.dir.checks())?;
        self.size = len;
        Ok(true)
    }

    /// Unlinks the object now (the memory lives on while fds and mappings do), if the name
    /// still names the file this handle has open.
    ///
    /// The compare and the unlink happen under the creation lock, so no creator that takes it
    /// can put a new object under the name in between (see the module docs).
    ///
    /// # Errors
    /// - `ENOENT`: the object is already gone, or the name now names another object (which is
    ///   left alone).
    /// - `EACCES`, `EROFS`: as [`ShmDir::unlink`].
    /// - `EACCES`, `EPERM`, `ELOOP`, `EINVAL`: the lock file is unusable (see [`ShmDir::open`]).
    ///
    /// # Example
    /// See [`Shm`].
    pub fn unlink(mut self) -> Result<()> {
        self.unlink_on_drop = false;
        self.unlink_if_ours()
    }

    fn unlink_if_ours(&self) -> Result<()> {
        let paths = self.dir.paths(self.name.as_os_str())?;
        let checks = self.dir.checks();
        // Under the lock no tmpshm creator can re-create the name between our check and our
        // unlink. A lock we cannot use at all (planted by another user: EPERM, EACCES, ELOOP,
        // EINVAL) stops every same-user creator too, so then the check needs no lock, and in a
        // sticky directory only we (or root) can replace our own file anyway.
        let _guard = match self.dir.lock(&paths, &checks) {
            Ok(guard) => guard,
            Err(e)
                if matches!(
                    e.errno(),
                    Errno::EPERM | Errno::EACCES | Errno::ELOOP | Errno::EINVAL
                ) =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        let ours = fstat(self.fd()).map_err(|e| Error::new(e, Op::Check, &self.path))?;
        let there = eintr::retry(|| lstat(paths.data.as_c_str()))
            .map_err(|e| Error::new(e, Op::Unlink, &self.path))?;
        if !object::same_file(&ours, &there) {
            return Err(Error::new(Errno::ENOENT, Op::Unlink, &self.path)
                .because("the name now names another object; leaving it alone"));
        }
        object::remove(&paths.data, checks.tracer)
    }

    /// The fd, giving up ownership (no unlink on drop).
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let opts = ShmOptions::new().dir(ShmDir::new(dir.path())).size(1).unlink_on_drop(true);
    /// let fd = opts.create("/doc-into")?.into_fd();
    /// assert!(dir.path().join(".SHMDdoc-into").exists());
    /// # drop(fd);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_fd(mut self) -> OwnedFd {
        self.unlink_on_drop = false;
        self.fd.take().expect("present until into_fd")
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_ref().expect("present until into_fd").as_fd()
    }
}

impl AsRawFd for Shm {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }
}

impl AsFd for Shm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        if self.unlink_on_drop && self.fd.is_some() {
            let _ = self.unlink_if_ours();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn cpath(p: &Path) -> CString {
        CString::new(p.as_os_str().as_bytes()).unwrap()
    }

    fn checks() -> Checks<'static> {
        Checks::new(false, None)
    }

    #[test]
    fn place_renames_and_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let (temp, data) = (d.path().join(".SHMT1.0"), d.path().join(".SHMDx"));
        std::fs::write(&temp, b"new").unwrap();
        std::fs::write(&data, b"old").unwrap();
        let e = place(&cpath(&temp), &cpath(&data), &checks())
            .err()
            .unwrap();
        assert_eq!(e.errno(), Errno::EEXIST);
        assert_eq!(std::fs::read(&data).unwrap(), b"old");
        std::fs::remove_file(&data).unwrap();
        let placed = place(&cpath(&temp), &cpath(&data), &checks()).unwrap();
        assert!(matches!(placed, Placed::Renamed));
        assert!(!temp.exists());
        assert_eq!(std::fs::metadata(&data).unwrap().nlink(), 1);
    }

    #[test]
    fn place_falls_back_to_link_where_renameat2_is_missing() {
        let d = tempfile::tempdir().unwrap();
        let (temp, data) = (d.path().join(".SHMT1.0"), d.path().join(".SHMDx"));
        std::fs::write(&temp, b"new").unwrap();
        for missing in [Errno::ENOSYS, Errno::EINVAL, Errno::EOPNOTSUPP] {
            let no_rename: fn(&CStr, &CStr) -> nix::Result<()> = match missing {
                Errno::ENOSYS => |_, _| Err(Errno::ENOSYS),
                Errno::EINVAL => |_, _| Err(Errno::EINVAL),
                _ => |_, _| Err(Errno::EOPNOTSUPP),
            };
            let placed = place_via(no_rename, &cpath(&temp), &cpath(&data), &checks()).unwrap();
            assert!(matches!(placed, Placed::Linked));
            // The window the fallback has: both names, two links.
            assert_eq!(std::fs::metadata(&data).unwrap().nlink(), 2);
            let e = place_via(no_rename, &cpath(&temp), &cpath(&data), &checks())
                .err()
                .unwrap();
            assert_eq!(e.errno(), Errno::EEXIST);
            std::fs::remove_file(&data).unwrap();
        }
        // Any other rename error is final: no link is tried.
        let e = place_via(
            |_, _| Err(Errno::EACCES),
            &cpath(&temp),
            &cpath(&data),
            &checks(),
        )
        .err()
        .unwrap();
        assert_eq!(e.errno(), Errno::EACCES);
        assert!(!data.exists());
    }
}
