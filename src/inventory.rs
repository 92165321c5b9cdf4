//! Listing a directory of objects, and collecting the lock and temporary files that crashed
//! programs left.
//!
//! # Who holds a lock
//! A lock file is held while some process holds `flock(LOCK_EX)` on it (see the lock protocol
//! in the README). [`ShmDir::list`] probes each one with `flock(LOCK_SH|LOCK_NB)` on a
//! read-only fd: refused means held. A probe that succeeds holds a shared lock for an instant;
//! an acquirer arriving then simply blocks in the kernel until the probe closes its fd, and
//! nothing is unlinked, so the probe disturbs no one. On Linux the holder's pid is read from
//! `/proc/locks`.
//!
//! # Collecting
//! [`ShmDir::gc`] removes a lock file (or a `.SHMT` temporary file of a sized create) only
//! while it holds it itself, following the release step of the protocol: `flock(LOCK_EX|LOCK_NB)`
//! (busy: a live holder, keep it); `fstat` shows links (0: released meanwhile, nothing to do);
//! `lstat` of the path shows the same inode (else it was replaced: keep the new one); `unlink`
//! while still holding; close. An acquirer that opened the file just before the unlink wakes up
//! to `st_nlink == 0` and starts again with a fresh file, exactly as after a normal release.
//!
//! # Temporary files in a layout without a data prefix
//! In the illumos layout every `.SHMT*` file is a temporary file: objects are `.SHMD*`. In a
//! layout whose data files have no prefix ([`Layout::GLIBC`](crate::Layout::GLIBC)), an object
//! may itself be called `/.SHMTsomething`; there only names of the exact form that a sized
//! create makes, `.SHMT<pid>.<n>` (decimal digits), count as temporary files, and everything
//! else is an object that `gc` never touches. An object given such a name there on purpose is
//! indistinguishable from a crashed create's file, and `gc` removes it when no one holds it.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{open, FlockArg, OFlag};
use nix::sys::stat::{fstat, lstat, FileStat, Mode};
use nix::unistd::unlink;
use nix::NixPath;

use crate::eintr;
use crate::error::{Error, Op, Result};
use crate::lock;
use crate::name::as_path;
use crate::object::{is_regular, same_file, Checks};
use crate::options::TEMP_PREFIX;
use crate::shm::ShmDir;

/// What kind of file is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file: the only kind tmpshm opens.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO.
    Fifo,
    /// A socket.
    Socket,
    /// A device or anything else.
    Other,
}

impl FileKind {
    fn of(ft: std::fs::FileType) -> FileKind {
        if ft.is_file() {
            FileKind::Regular
        } else if ft.is_dir() {
            FileKind::Directory
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else if ft.is_socket() {
            FileKind::Socket
        } else {
            FileKind::Other
        }
    }

    /// A short lowercase name (`"file"`, `"symlink"`, ...), as `ls --json` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Regular => "file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::Other => "other",
        }
    }
}

/// One object found in the directory (not opened: what `lstat` says about its data file).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object name, e.g. `/blah`.
    pub name: OsString,
    /// The data file.
    pub path: PathBuf,
    /// What is at the path (anything but `Regular` is refused by every open).
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Hard links (more than one: refused by every open; see [`ShmDir::gc`]).
    pub nlink: u64,
    /// Last modification.
    pub modified: SystemTime,
}

/// Whether a process holds a lock or temporary file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// A live process holds `flock` on it; `pid` when `/proc/locks` names it.
    Held {
        /// The holder's pid, if known.
        pid: Option<u32>,
    },
    /// No one holds it: left by a process that died (or an illumos-style locker that has it
    /// right now, which holds no `flock`). [`ShmDir::gc`] removes it.
    Stale,
    /// The probe failed with this errno (for example `EACCES`: not readable for us).
    Unknown(Errno),
}

/// What a lock or temporary file belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuxKind {
    /// The creation lock of the object with this name.
    Lock {
        /// The object name, e.g. `/blah`.
        name: OsString,
    },
    /// The temporary file of a sized create ([`ShmOptions::create`](crate::ShmOptions::create)).
    Temp,
}

/// A lock file or a temporary file found in the directory.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LockInfo {
    /// Lock or temporary file.
    pub kind: AuxKind,
    /// The file.
    pub path: PathBuf,
    /// Owner uid.
    pub uid: u32,
    /// Size in bytes (a lock file is empty).
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
    /// Whether someone holds it.
    pub state: LockState,
}

/// Everything tmpshm-related in a directory, sorted by path.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Inventory {
    /// Data files.
    pub objects: Vec<ObjectInfo>,
    /// Lock files and temporary files.
    pub locks: Vec<LockInfo>,
}

/// What [`ShmDir::gc`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct GcReport {
    /// Files removed (no one held them).
    pub removed: Vec<PathBuf>,
    /// Files kept because a live process holds them.
    pub held: Vec<PathBuf>,
    /// Files that could not be examined or removed, with why.
    pub failed: Vec<Error>,
}

enum Entry {
    Object(OsString),
    Lock(OsString),
    Temp,
}

impl ShmDir {
    fn classify(&self, file: &[u8]) -> Option<Entry> {
        let layout = self.get_layout();
        let slash = |rest: &[u8]| {
            let mut n = b"/".to_vec();
            n.extend_from_slice(rest);
            OsString::from(OsStr::from_bytes(&n))
        };
        if let Some(lp) = layout.lock_prefix() {
            if let Some(rest) = file.strip_prefix(lp.as_bytes()) {
                return (!rest.is_empty()).then(|| Entry::Lock(slash(rest)));
            }
        }
        if let Some(rest) = file.strip_prefix(TEMP_PREFIX.as_bytes()) {
            // Without a data prefix, `.SHMT...` may be an object's name (see the module docs).
            if !layout.data_prefix().is_empty() || is_temp_suffix(rest) {
                return Some(Entry::Temp);
            }
        }
        let rest = file.strip_prefix(layout.data_prefix().as_bytes())?;
        if rest.is_empty() || rest == b"." || rest == b".." {
            return None;
        }
        Some(Entry::Object(slash(rest)))
    }

    /// Every object, lock file and temporary file in the directory, sorted by path.
    ///
    /// Nothing is opened for writing and nothing is removed; lock and temporary files are
    /// probed as the module docs describe.
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
        let dir = self.dir();
        let read_err =
            |e: std::io::Error| io_error(&e, Op::Open, dir).because("reading the directory");
        let mut inv = Inventory::default();
        let checks = self.checks();
        let holders = Holders::default();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let file = entry.file_name();
            let Some(class) = self.classify(file.as_bytes()) else {
                continue;
            };
            let path = entry.path();
            // Gone between readdir and lstat: nothing to report.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            match class {
                Entry::Object(name) => inv.objects.push(ObjectInfo::from_meta(name, path, &meta)),
                Entry::Lock(name) => {
                    let kind = AuxKind::Lock { name };
                    inv.locks
                        .push(LockInfo::probed(kind, path, &meta, &checks, &holders));
                }
                Entry::Temp => {
                    inv.locks.push(LockInfo::probed(
                        AuxKind::Temp,
                        path,
                        &meta,
                        &checks,
                        &holders,
                    ));
                }
            }
        }
        inv.objects.sort_by(|a, b| a.path.cmp(&b.path));
        inv.locks.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(inv)
    }

    /// What `lstat` says about the object `name`, without opening it.
    ///
    /// # Errors
    /// - `EINVAL`: the name breaks the rules (see [`ShmDir::open`]).
    /// - `ENOENT`: no such object.
    /// - `ENAMETOOLONG`, `EACCES`, `ENOTDIR`: as `lstat(2)`.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let shm = ShmDir::new(dir.path());
    /// ShmOptions::new().dir(shm.clone()).size(100).mode(0o640).create("/doc-stat")?;
    /// let info = shm.stat("/doc-stat")?;
    /// assert_eq!((info.size, info.mode), (100, 0o640));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stat<P: ?Sized + NixPath>(&self, name: &P) -> Result<ObjectInfo> {
        let paths = self.paths(name)?;
        let path = as_path(&paths.data).to_path_buf();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_error(&e, Op::Check, &path))?;
        let shown = name
            .with_nix_path(|c| OsStr::from_bytes(c.to_bytes()).to_os_string())
            .unwrap_or_default();
        Ok(ObjectInfo::from_meta(shown, path, &meta))
    }

    /// The lock file of `name` and whether a live process holds it, probed as
    /// [`ShmDir::list`] probes it; `None` when there is no lock file (or, in a layout without
    /// locks, can be none). Looks at that one file only.
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
    pub fn lock_info<P: ?Sized + NixPath>(&self, name: &P) -> Result<Option<LockInfo>> {
        let paths = self.paths(name)?;
        let Some(lock) = paths.lock.as_deref() else {
            return Ok(None);
        };
        let path = as_path(lock).to_path_buf();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&e, Op::Check, &path)),
        };
        let shown = name
            .with_nix_path(|c| OsStr::from_bytes(c.to_bytes()).to_os_string())
            .unwrap_or_default();
        let kind = AuxKind::Lock { name: shown };
        let holders = Holders::default();
        Ok(Some(LockInfo::probed(
            kind,
            path,
            &meta,
            &self.checks(),
            &holders,
        )))
    }

    /// Removes the lock files and temporary files that no live process holds.
    ///
    /// Safe against a holder arriving at the same moment (see the module docs). Files of other
    /// users are left alone unless cross-user sharing is on.
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
        let inv = self.list()?;
        let checks = self.checks();
        let mut report = GcReport::default();
        for lock in inv.locks {
            if let LockState::Held { .. } = lock.state {
                report.held.push(lock.path);
                continue;
            }
            match collect(&lock.path, &checks) {
                Ok(Collected::Removed) => report.removed.push(lock.path),
                Ok(Collected::Held) => report.held.push(lock.path),
                Ok(Collected::Gone) => {}
                Err(e) => report.failed.push(e),
            }
        }
        Ok(report)
    }
}

impl LockInfo {
    fn probed(
        kind: AuxKind,
        path: PathBuf,
        meta: &std::fs::Metadata,
        checks: &Checks<'_>,
        holders: &Holders,
    ) -> Self {
        LockInfo {
            kind,
            uid: meta.uid(),
            size: meta.len(),
            modified: modified(meta),
            state: probe(&path, checks, holders),
            path,
        }
    }
}

/// Whether `rest` (after `.SHMT`) is `<pid>.<n>`, as a sized create names its temporary file.
fn is_temp_suffix(rest: &[u8]) -> bool {
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let mut parts = rest.splitn(2, |&b| b == b'.');
    match (parts.next(), parts.next()) {
        (Some(pid), Some(n)) => digits(pid) && digits(n),
        _ => false,
    }
}

impl ObjectInfo {
    fn from_meta(name: OsString, path: PathBuf, meta: &std::fs::Metadata) -> ObjectInfo {
        ObjectInfo {
            name,
            kind: FileKind::of(meta.file_type()),
            size: meta.len(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            nlink: meta.nlink(),
            modified: modified(meta),
            path,
        }
    }
}

fn io_error(e: &std::io::Error, op: Op, path: &Path) -> Error {
    Error::new(
        Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        op,
        path,
    )
}

fn modified(meta: &std::fs::Metadata) -> SystemTime {
    let (s, ns) = (meta.mtime(), meta.mtime_nsec());
    let since = Duration::new(s.unsigned_abs(), u32::try_from(ns).unwrap_or(0));
    if s >= 0 {
        SystemTime::UNIX_EPOCH + since
    } else {
        SystemTime::UNIX_EPOCH - since
    }
}

fn c_path(path: &Path) -> CString {
    // Paths from read_dir of a NUL-free directory contain no NUL.
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

fn open_quietly(path: &CStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    eintr::retry(|| open(path, flags, Mode::empty()))
}

/// `flock(LOCK_SH|LOCK_NB)` on a read-only fd: refused means held.
fn probe(path: &Path, checks: &Checks<'_>, holders: &Holders) -> LockState {
    let c = c_path(path);
    checks.emit_call("probe flock(LOCK_SH|LOCK_NB)", &c);
    let fd = match open_quietly(&c) {
        Ok(fd) => fd,
        Err(e) => return LockState::Unknown(e),
    };
    let st = match fstat(fd.as_fd()) {
        Ok(st) if is_regular(&st) => st,
        Ok(_) => return LockState::Unknown(Errno::EINVAL),
        Err(e) => return LockState::Unknown(e),
    };
    let state = match eintr::flock(fd, FlockArg::LockSharedNonblock) {
        Ok(probed) => {
            eintr::unlock_and_close(probed);
            LockState::Stale
        }
        Err((_, Errno::EWOULDBLOCK)) => LockState::Held {
            pid: holders.pid(&st),
        },
        Err((_, e)) => LockState::Unknown(e),
    };
    checks.emit_call(
        match state {
            LockState::Held { .. } => "  -> held by a live process",
            LockState::Stale => "  -> free (stale)",
            LockState::Unknown(_) => "  -> unknown",
        },
        &c,
    );
    state
}

/// `/proc/locks`, read at most once per listing (and only if some file is held), however many
/// files are probed: per file it would make a listing quadratic in the number of held locks.
#[derive(Default)]
struct Holders(std::cell::OnceCell<Option<lock::HolderMap>>);

impl Holders {
    /// The pid that `/proc/locks` gives for a `flock` on this inode, for display only.
    fn pid(&self, st: &FileStat) -> Option<u32> {
        self.0
            .get_or_init(lock::flock_holders)
            .as_ref()?
            .get(&lock::holder_key(st))
            .copied()
    }
}

enum Collected {
    Removed,
    Held,
    Gone,
}

/// The release step of the lock protocol, applied to a file no one may hold.
fn collect(path: &Path, checks: &Checks<'_>) -> Result<Collected> {
    let c = c_path(path);
    let fail = |e: Errno| Error::new(e, Op::Unlink, path);
    let fd = match open_quietly(&c) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Collected::Gone),
        Err(e) => return Err(fail(e)),
    };
    let st = fstat(fd.as_fd()).map_err(fail)?;
    if !is_regular(&st) {
        return Err(fail(Errno::EINVAL).because("not a regular file; remove it by hand"));
    }
    if !checks.cross_user && st.st_uid != checks.euid().as_raw() {
        return Err(fail(Errno::EPERM).because(format!(
            "owned by uid {}, not by us; allow cross-user sharing to collect it",
            st.st_uid
        )));
    }
    checks.emit_call("gc flock(LOCK_EX|LOCK_NB)", &c);
    let locked = match eintr::flock(fd, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(Collected::Held),
        Err((_, e)) => return Err(fail(e)),
    };
    let done = (|| {
        let held = fstat(locked.as_fd()).map_err(fail)?;
        if held.st_nlink == 0 {
            return Ok(Collected::Gone);
        }
        match eintr::retry(|| lstat(c.as_c_str())) {
            Ok(now) if same_file(&now, &held) => {}
            // Released and replaced by a new file that we do not hold: leave it.
            Ok(_) | Err(Errno::ENOENT) => return Ok(Collected::Gone),
            Err(e) => return Err(fail(e)),
        }
        checks.emit_call("gc unlink (holding the flock)", &c);
        eintr::retry(|| unlink(c.as_c_str())).map_err(fail)?;
        Ok(Collected::Removed)
    })();
    // Never through nix's `Flock` drop, which panics if unlocking fails.
    eintr::unlock_and_close(locked);
    done
}
