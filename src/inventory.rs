//! What is in a directory of objects, and collecting the lock and temporary files that crashed
//! programs left: [`ShmDir::list`], [`ShmDir::stat`], [`ShmDir::lock_info`], [`ShmDir::gc`].

use std::cell::OnceCell;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, lstat, FileStat, Mode};

use crate::call::Call;
use crate::dir::ShmDir;
use crate::error::{Error, Op, Result, Role};
use crate::name::{is_temp_suffix, ObjectKind};
use crate::sys::{self, retry, HolderMap};
use crate::vet::{is_regular, same_file};

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
    ///
    /// # Example
    /// ```
    /// assert_eq!(tmpshm::FileKind::Fifo.as_str(), "fifo");
    /// ```
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
    /// Shared memory or a semaphore.
    pub kind: ObjectKind,
    /// The object name, e.g. `/blah`.
    pub name: OsString,
    /// The data file.
    pub path: PathBuf,
    /// What is at the path (anything but `Regular` is refused by every open).
    pub file: FileKind,
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
    /// A live process holds `flock` on it; `pid` when `/proc/locks` names it (for display
    /// only: see [`ShmDir::list`]).
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
        /// The kind of the object.
        kind: ObjectKind,
        /// The object name, e.g. `/blah`.
        name: OsString,
    },
    /// The temporary file of an atomic create.
    Temp {
        /// The kind of the object being created.
        kind: ObjectKind,
    },
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
    Object(ObjectKind, OsString),
    Lock(ObjectKind, OsString),
    Temp(ObjectKind),
}

fn slashed(rest: &[u8]) -> OsString {
    let mut n = b"/".to_vec();
    n.extend_from_slice(rest);
    OsString::from(OsStr::from_bytes(&n))
}

/// What the file called `file` is in this directory, if anything of ours. Lock and temporary
/// prefixes are tried before data prefixes, which may be empty (the glibc layout).
fn classify(dir: &ShmDir, file: &[u8]) -> Option<Entry> {
    let layout = dir.layout();
    for kind in ObjectKind::ALL {
        if let Some(lp) = kind.lock_prefix(layout) {
            if let Some(rest) = file.strip_prefix(lp.as_bytes()) {
                return (!rest.is_empty()).then(|| Entry::Lock(kind, slashed(rest)));
            }
        }
        if let Some(rest) = file.strip_prefix(kind.temp_prefix().as_bytes()) {
            // Without a data prefix, `.SHMT...` may be an object's name: only the exact form
            // a create makes counts as a temporary file there.
            if !kind.data_prefix(layout).is_empty() || is_temp_suffix(rest) {
                return Some(Entry::Temp(kind));
            }
        }
    }
    // Longest data prefix first, so that "sem.x" is a semaphore, not the object "/sem.x".
    let mut kinds = ObjectKind::ALL;
    kinds.sort_by_key(|k| std::cmp::Reverse(k.data_prefix(layout).len()));
    for kind in kinds {
        if let Some(rest) = file.strip_prefix(kind.data_prefix(layout).as_bytes()) {
            if rest.is_empty() || rest == b"." || rest == b".." {
                return None;
            }
            return Some(Entry::Object(kind, slashed(rest)));
        }
    }
    None
}

/// [`ShmDir::list`].
pub(crate) fn list(dir: &ShmDir) -> Result<Inventory> {
    let path = dir.dir();
    let read_err = |e: std::io::Error| io_error(&e, Op::List, path);
    let mut inv = Inventory::default();
    let call = dir.call();
    let holders = Holders::default();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let file = entry.file_name();
        let Some(class) = classify(dir, file.as_bytes()) else {
            continue;
        };
        let path = entry.path();
        // Gone between readdir and lstat: nothing to report.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        match class {
            Entry::Object(kind, name) => inv.objects.push(object_info(kind, name, path, &meta)),
            Entry::Lock(kind, name) => {
                let kind = AuxKind::Lock { kind, name };
                inv.locks.push(probed(kind, path, &meta, &call, &holders));
            }
            Entry::Temp(kind) => {
                let kind = AuxKind::Temp { kind };
                inv.locks.push(probed(kind, path, &meta, &call, &holders));
            }
        }
    }
    inv.objects.sort_by(|a, b| a.path.cmp(&b.path));
    inv.locks.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(inv)
}

/// [`ShmDir::stat`] for any kind.
pub(crate) fn stat(dir: &ShmDir, kind: ObjectKind, name: &[u8]) -> Result<ObjectInfo> {
    let t = dir.target(name, kind, Op::Name)?;
    let data = t.data().map_err(|f| dir.error(f, Some(&t), name))?;
    let path = data.as_path().to_path_buf();
    let meta = std::fs::symlink_metadata(&path).map_err(|e| io_error(&e, Op::Check, &path))?;
    Ok(object_info(
        kind,
        OsStr::from_bytes(name).to_os_string(),
        path,
        &meta,
    ))
}

/// [`ShmDir::lock_info`] for any kind.
pub(crate) fn lock_info(dir: &ShmDir, kind: ObjectKind, name: &[u8]) -> Result<Option<LockInfo>> {
    let t = dir.target(name, kind, Op::Name)?;
    let Some(lock) = t.lock().map_err(|f| dir.error(f, Some(&t), name))? else {
        return Ok(None);
    };
    let path = lock.as_path().to_path_buf();
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&e, Op::Check, &path)),
    };
    let aux = AuxKind::Lock {
        kind,
        name: OsStr::from_bytes(name).to_os_string(),
    };
    Ok(Some(probed(
        aux,
        path,
        &meta,
        &dir.call(),
        &Holders::default(),
    )))
}

/// [`ShmDir::gc`].
pub(crate) fn gc(dir: &ShmDir) -> Result<GcReport> {
    let inv = list(dir)?;
    let call = dir.call();
    let mut report = GcReport::default();
    for lock in inv.locks {
        if let LockState::Held { .. } = lock.state {
            report.held.push(lock.path);
            continue;
        }
        let role = match lock.kind {
            AuxKind::Lock { .. } => Role::Lock,
            AuxKind::Temp { .. } => Role::Temp,
        };
        match collect(&lock.path, role, &call) {
            Ok(Collected::Removed) => report.removed.push(lock.path),
            Ok(Collected::Held) => report.held.push(lock.path),
            Ok(Collected::Gone) => {}
            Err(e) => report.failed.push(e),
        }
    }
    Ok(report)
}

fn probed(
    kind: AuxKind,
    path: PathBuf,
    meta: &std::fs::Metadata,
    call: &Call<'_>,
    holders: &Holders,
) -> LockInfo {
    let role = match kind {
        AuxKind::Lock { .. } => Role::Lock,
        AuxKind::Temp { .. } => Role::Temp,
    };
    LockInfo {
        kind,
        uid: meta.uid(),
        size: meta.len(),
        modified: modified(meta),
        state: probe(&path, role, call, holders),
        path,
    }
}

fn object_info(
    kind: ObjectKind,
    name: OsString,
    path: PathBuf,
    meta: &std::fs::Metadata,
) -> ObjectInfo {
    ObjectInfo {
        kind,
        name,
        file: FileKind::of(meta.file_type()),
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        nlink: meta.nlink(),
        modified: modified(meta),
        path,
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

fn open_quietly(call: &Call<'_>, role: Role, path: &CStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    call.open(role, path, flags, Mode::empty())
}

/// `flock(LOCK_SH|LOCK_NB)` on a read-only fd: refused means held.
fn probe(path: &Path, role: Role, call: &Call<'_>, holders: &Holders) -> LockState {
    let c = c_path(path);
    let fd = match open_quietly(call, role, &c) {
        Ok(fd) => fd,
        Err(e) => return LockState::Unknown(e),
    };
    let st = match fstat(fd.as_fd()) {
        Ok(st) if is_regular(&st) => st,
        Ok(_) => return LockState::Unknown(Errno::EINVAL),
        Err(e) => return LockState::Unknown(e),
    };
    match call.probe(role, &c, fd.as_fd()) {
        Ok(false) => LockState::Stale,
        Ok(true) => LockState::Held {
            pid: holders.pid(&st),
        },
        Err(e) => LockState::Unknown(e),
    }
}

/// `/proc/locks`, read once per listing (and only if some file is held), however many files
/// are probed: per file it would make a listing quadratic in the number of held locks.
///
/// The kernel serves the file a page at a time and does not freeze the lock list in between,
/// so while other processes take and release locks, a line can be missed. A held file without
/// a line gets a few fresh reads (at most [`Holders::REREADS`] per listing), after which its
/// holder stays unknown.
#[derive(Default)]
struct Holders {
    map: OnceCell<Option<HolderMap>>,
    rereads: std::cell::Cell<u32>,
}

impl Holders {
    const REREADS: u32 = 3;

    /// The pid that `/proc/locks` gives for a `flock` on this inode, for display only.
    fn pid(&self, st: &FileStat) -> Option<u32> {
        let key = sys::holder_key(st);
        if let Some(pid) = self.map.get_or_init(sys::flock_holders).as_ref()?.get(&key) {
            return Some(*pid);
        }
        while self.rereads.get() < Self::REREADS {
            self.rereads.set(self.rereads.get() + 1);
            if let Some(pid) = sys::flock_holders()?.get(&key) {
                return Some(*pid);
            }
        }
        None
    }
}

enum Collected {
    Removed,
    Held,
    Gone,
}

/// The release step of the lock protocol, applied to a file no one may hold.
fn collect(path: &Path, role: Role, call: &Call<'_>) -> Result<Collected> {
    let c = c_path(path);
    let fail = |e: Errno| Error::new(e, Op::Unlink, path);
    let fd = match open_quietly(call, role, &c) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Collected::Gone),
        Err(e) => return Err(fail(e)),
    };
    let st = fstat(fd.as_fd()).map_err(fail)?;
    if !is_regular(&st) {
        return Err(fail(Errno::EINVAL).because("not a regular file; remove it by hand"));
    }
    if !call.cross_user && st.st_uid != call.euid().as_raw() {
        return Err(fail(Errno::EPERM).because(format!(
            "owned by uid {}, not by us; allow cross-user sharing to collect it",
            st.st_uid
        )));
    }
    let locked = match call.lock(role, &c, fd, false) {
        Ok(l) => l,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(Collected::Held),
        Err((_, e)) => {
            let f = crate::lock::flock_error(e, crate::error::At::Lock);
            return Err(f.into_error(Some(path.to_path_buf())));
        }
    };
    let held = fstat(locked.as_fd()).map_err(fail)?;
    if held.st_nlink == 0 {
        return Ok(Collected::Gone);
    }
    match retry(|| lstat(c.as_c_str())) {
        Ok(now) if same_file(&now, &held) => {}
        // Released and replaced by a new file that we do not hold: leave it.
        Ok(_) | Err(Errno::ENOENT) => return Ok(Collected::Gone),
        Err(e) => return Err(fail(e)),
    }
    call.unlink(role, &c).map_err(fail)?;
    // `locked` unlocks and closes here, after the unlink.
    Ok(Collected::Removed)
}
