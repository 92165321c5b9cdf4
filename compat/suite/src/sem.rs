//! The differential suite for named semaphores: glibc's own `sem_open`, `sem_close` and
//! `sem_unlink` (in `/dev/shm`, reached through the loader as [`crate::oracle`] reaches
//! `shm_open`) against tmpshm's C entry points, case by case, compared by what a caller sees.
//!
//! Two subjects ([`SemSubject`]), one table (`compat/divergences-sem.txt`, [`TABLE`]):
//! - [`SemSubject::Strict`]: `tmpshm::capi::sem_open(.., Names::Strict)`, which is what
//!   `libtmpshm`'s `tmpshm_sem_open` runs: illumos's name rules. Every name of this pass
//!   carries the word `strict`.
//! - [`SemSubject::Preload`]: the preload library's `sem_open`/`sem_close`/`sem_unlink`, loaded
//!   from its file: glibc's name rules. Every name of this pass carries the word `glibc-names`.
//!
//! A case is a name x an operation (`oflag` x mode x value, or `sem_unlink`) x a prior state.
//! What is compared: success or the errno; for a success, the value (`sem_getvalue`), the
//! file's permission bits, and whether a second open of the name returns the same address;
//! then what a plain open of the name shows afterwards. An entry applies to a pass when its
//! `user` is the pass's and its `names` select at least one name of the pass; an applicable
//! entry that explains nothing is stale and fails the pass.
//!
//! The value is read only where the mapping's file still holds a whole `sem_t`: glibc passes
//! `O_TRUNC` on to `open(2)`, and a truncated semaphore raises `SIGBUS` when touched.

use std::ffi::CStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libc::{c_char, c_int, c_uint, c_void, mode_t};
use nix::errno::Errno;
use tmpshm::capi::Names;

use crate::diff::{names, Name};
use crate::matrix::{self, for_user, Matrix, Pass, PriorState, FOREIGN_UID};
use crate::oracle::{libc_handle, lookup, object_of, Native};
use crate::preload::Library;
use crate::table::{selects, Entry, Table, TableFile};

/// The table of the semaphore passes.
pub const TABLE: TableFile = TableFile {
    path: "compat/divergences-sem.txt",
    source: include_str!("../../divergences-sem.txt"),
    column: "tmpshm",
    doc_marker: "divergences-sem",
};

type SemOpenFn = unsafe extern "C" fn(*const c_char, c_int, ...) -> *mut libc::sem_t;
type SemCloseFn = unsafe extern "C" fn(*mut libc::sem_t) -> c_int;
type SemUnlinkFn = unsafe extern "C" fn(*const c_char) -> c_int;

/// `sem_open`, `sem_close` and `sem_unlink` of one library.
#[derive(Clone, Copy)]
pub struct SemFns {
    open: SemOpenFn,
    close: SemCloseFn,
    unlink: SemUnlinkFn,
}

impl fmt::Debug for SemFns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemFns")
            .field("open", &(self.open as *const c_void))
            .finish_non_exhaustive()
    }
}

impl SemFns {
    /// The three functions as `handle` defines them.
    fn lookup(handle: *mut c_void, what: &str) -> Result<SemFns, String> {
        let open = lookup(handle, c"sem_open", what)?;
        let close = lookup(handle, c"sem_close", what)?;
        let unlink = lookup(handle, c"sem_unlink", what)?;
        // SAFETY: the symbols are `sem_open(const char *, int, ...)`, `sem_close(sem_t *)` and
        // `sem_unlink(const char *)`, with exactly these C signatures.
        Ok(unsafe {
            SemFns {
                open: std::mem::transmute::<*mut c_void, SemOpenFn>(open),
                close: std::mem::transmute::<*mut c_void, SemCloseFn>(close),
                unlink: std::mem::transmute::<*mut c_void, SemUnlinkFn>(unlink),
            }
        })
    }

    /// glibc's own functions, inside the loaded `libc.so.6` (never an interposer's).
    ///
    /// # Errors
    /// A message when `libc.so.6` is not loaded or lacks them.
    ///
    /// # Example
    /// ```
    /// # if tmpshm_compat::oracle::needs_glibc().is_some() { return Ok(()); }
    /// let glibc = tmpshm_compat::sem::SemFns::glibc()?;
    /// assert!(glibc.defining_object()?.to_string_lossy().contains("libc.so"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn glibc() -> Result<SemFns, String> {
        SemFns::lookup(libc_handle()?, "libc.so.6")
    }

    /// The preload library at `path` (loaded `RTLD_LOCAL`, for the life of the process), after
    /// checking that it defines all three functions itself.
    ///
    /// # Errors
    /// A message when it cannot be loaded or does not define them.
    ///
    /// # Example
    /// ```
    /// let e = tmpshm_compat::sem::SemFns::preload("/nonexistent.so".as_ref()).unwrap_err();
    /// assert!(e.contains("cannot load"));
    /// ```
    pub fn preload(path: &Path) -> Result<SemFns, String> {
        let lib = Library::load(path)?;
        let fns = SemFns::lookup(lib.handle, &lib.what)?;
        lib.defines(&[
            ("sem_open", fns.open as *const c_void),
            ("sem_close", fns.close as *const c_void),
            ("sem_unlink", fns.unlink as *const c_void),
        ])?;
        Ok(fns)
    }

    /// The file that defines this `sem_open`.
    ///
    /// # Errors
    /// A message when the loader cannot say.
    pub fn defining_object(&self) -> Result<PathBuf, String> {
        object_of(self.open as *const c_void)
    }
}

/// One implementation under comparison.
#[derive(Debug, Clone)]
pub enum SemSide {
    /// glibc's functions, in `/dev/shm`.
    Glibc(SemFns),
    /// tmpshm's C entry points with these name rules. Every call first sets `TMPSHM_DIR=dir`
    /// and `TMPSHM_CROSS_USER` as `cross_user` says: use it from a single thread.
    Capi {
        /// Name rules.
        names: Names,
        /// Functions loaded from the preload library, or `None` for `tmpshm::capi` itself.
        lib: Option<SemFns>,
        /// The directory.
        dir: PathBuf,
        /// Accept other users' semaphores.
        cross_user: bool,
    },
}

impl SemSide {
    fn env(&self) {
        if let SemSide::Capi {
            dir, cross_user, ..
        } = self
        {
            crate::preload::set_env(dir, *cross_user);
        }
    }

    /// The file this side keeps the semaphore `name` in (for a name it accepts).
    ///
    /// # Example
    /// ```
    /// use tmpshm_compat::sem::{SemFns, SemSide};
    /// # if tmpshm_compat::oracle::needs_glibc().is_some() { return Ok(()); }
    /// let glibc = SemSide::Glibc(SemFns::glibc()?);
    /// assert_eq!(glibc.path_of(c"//x").unwrap(), std::path::Path::new("/dev/shm/sem.x"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn path_of(&self, name: &CStr) -> Option<PathBuf> {
        let b = name.to_bytes();
        let all = |b: &[u8]| {
            let at = b.iter().position(|&c| c != b'/').unwrap_or(b.len());
            b[at..].to_vec()
        };
        let (dir, file) = match self {
            SemSide::Glibc(_) => (Path::new("/dev/shm"), [b"sem.", &all(b)[..]].concat()),
            SemSide::Capi { names, dir, .. } => {
                let rest = match names {
                    Names::Strict => b.strip_prefix(b"/")?.to_vec(),
                    Names::Glibc => all(b),
                };
                (dir.as_path(), [b".SEMD", &rest[..]].concat())
            }
        };
        Some(dir.join(std::ffi::OsStr::from_bytes(&file)))
    }

    /// `sem_open(name, oflag, mode, value)`.
    ///
    /// # Errors
    /// The errno this side sets.
    ///
    /// # Example
    /// ```
    /// use tmpshm_compat::sem::SemSide;
    /// let dir = tempfile::tempdir().unwrap();
    /// let side = SemSide::Capi {
    ///     names: tmpshm::capi::Names::Strict,
    ///     lib: None,
    ///     dir: dir.path().into(),
    ///     cross_user: false,
    /// };
    /// let p = side.open(c"/doc", libc::O_CREAT, 0o600, 1).unwrap();
    /// assert_eq!(side.open(c"/doc", 0, 0, 0), Ok(p));
    /// // SAFETY: opened twice above, closed twice.
    /// unsafe {
    ///     side.close(p).unwrap();
    ///     side.close(p).unwrap();
    /// }
    /// side.unlink(c"/doc").unwrap();
    /// ```
    pub fn open(
        &self,
        name: &CStr,
        oflag: c_int,
        mode: u32,
        value: u32,
    ) -> Result<*mut libc::sem_t, Errno> {
        self.env();
        Errno::clear();
        let (mode, value) = (mode as mode_t, value as c_uint);
        let p = match self {
            // SAFETY: a valid C string; the variadic arguments are the mode and the value, as
            // sem_open reads them (as mode_t and unsigned int) when O_CREAT is given.
            SemSide::Glibc(f) => unsafe { (f.open)(name.as_ptr(), oflag, mode, value) },
            SemSide::Capi { lib: Some(f), .. } => {
                // SAFETY: as above, for the preload library's sem_open.
                unsafe { (f.open)(name.as_ptr(), oflag, mode, value) }
            }
            SemSide::Capi {
                names, lib: None, ..
            } => {
                // SAFETY: a valid C string.
                unsafe { tmpshm::capi::sem_open(name.as_ptr(), oflag, mode, value, *names) }
            }
        };
        if p.is_null() || p == libc::SEM_FAILED {
            Err(Errno::last())
        } else {
            Ok(p)
        }
    }

    /// `sem_close(sem)`.
    ///
    /// # Safety
    /// `sem` was returned by this side's [`SemSide::open`] and not closed since as often as
    /// it was returned (glibc's `sem_close` of anything else is undefined).
    ///
    /// # Errors
    /// The errno this side sets.
    pub unsafe fn close(&self, sem: *mut libc::sem_t) -> Result<(), Errno> {
        let rc = match self {
            // SAFETY: the side's own sem_close of an address its sem_open returned, as our
            // caller promises.
            SemSide::Glibc(f) | SemSide::Capi { lib: Some(f), .. } => unsafe { (f.close)(sem) },
            // SAFETY: any address is accepted and checked.
            SemSide::Capi { lib: None, .. } => unsafe { tmpshm::capi::sem_close(sem) },
        };
        Errno::result(rc).map(drop)
    }

    /// `sem_unlink(name)`.
    ///
    /// # Errors
    /// The errno this side sets.
    pub fn unlink(&self, name: &CStr) -> Result<(), Errno> {
        self.env();
        let rc = match self {
            // SAFETY: a valid C string.
            SemSide::Glibc(f) | SemSide::Capi { lib: Some(f), .. } => unsafe {
                (f.unlink)(name.as_ptr())
            },
            SemSide::Capi {
                names, lib: None, ..
            } => {
                // SAFETY: a valid C string.
                unsafe { tmpshm::capi::sem_unlink(name.as_ptr(), *names) }
            }
        };
        Errno::result(rc).map(drop)
    }
}

/// The inode of the file mapped at `addr` in this process (from `/proc/self/maps`).
fn inode_at(addr: *mut libc::sem_t) -> Option<u64> {
    let a = addr as usize;
    // Bytes: a mapped file's name need not be UTF-8.
    let maps = std::fs::read("/proc/self/maps").ok()?;
    String::from_utf8_lossy(&maps).lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (lo, hi) = f.first()?.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        (lo..hi).contains(&a).then(|| f.get(4)?.parse().ok())?
    })
}

/// The file that names the semaphore mapped at `addr`: `path`, if it is the mapped inode
/// (glibc maps its temporary file before it links it to the name, so the mapping's own path
/// in `/proc/self/maps` is a deleted one).
fn file_at(addr: *mut libc::sem_t, path: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    let ino = inode_at(addr)?;
    let meta = std::fs::symlink_metadata(path).ok()?;
    (meta.ino() == ino).then(|| (path.to_path_buf(), meta))
}

/// What a caller sees of a semaphore, or the errno it got instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SemOutcome {
    /// An open semaphore.
    Sem {
        /// `sem_getvalue`, or `None` when its file no longer holds a whole `sem_t`.
        value: Option<i32>,
        /// Its file's permission bits, or `None` when the file is gone.
        mode: Option<u32>,
        /// A second `sem_open(name, 0)` returned the same address.
        same: bool,
    },
    /// Success without a semaphore (`sem_unlink`).
    Done,
    /// Failure.
    Err(Errno),
}

impl SemOutcome {
    /// `ok` or the errno's name, as the table writes results.
    pub fn summary(&self) -> String {
        match self {
            SemOutcome::Err(e) => format!("{e:?}"),
            _ => "ok".to_string(),
        }
    }

    /// Observes an open semaphore (then closes the second open, not the first).
    fn of(side: &SemSide, name: &CStr, sem: *mut libc::sem_t) -> SemOutcome {
        let file = side.path_of(name).and_then(|p| file_at(sem, &p));
        let whole = file
            .as_ref()
            .is_some_and(|(_, m)| m.len() >= std::mem::size_of::<libc::sem_t>() as u64);
        let value = whole.then(|| {
            let mut v = -1;
            // SAFETY: a mapping of a file holding a whole sem_t, as this side's sem_open
            // returned it.
            unsafe { libc::sem_getvalue(sem, &mut v) };
            v
        });
        let same = match side.open(name, 0, 0, 0) {
            Ok(again) => {
                // SAFETY: just opened on this side.
                let _ = unsafe { side.close(again) };
                again == sem
            }
            Err(_) => false,
        };
        SemOutcome::Sem {
            value,
            mode: file.map(|(_, m)| m.mode() & 0o7777),
            same,
        }
    }
}

impl fmt::Display for SemOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SemOutcome::Sem { value, mode, same } => {
                let v = value.map_or("short".to_string(), |v| v.to_string());
                let m = mode.map_or("-".to_string(), |m| format!("{m:o}"));
                write!(f, "sem(value={v} mode={m} same={same})")
            }
            SemOutcome::Done => write!(f, "ok"),
            SemOutcome::Err(e) => write!(f, "{e:?}"),
        }
    }
}

/// One case's observation on one side: the result, then what `sem_open(name, 0)` shows.
pub type SemObservation = matrix::Observation<SemOutcome>;

/// An operation: `sem_open(name, oflag, mode, value)` with `Some((oflag, mode, value))`, or
/// `sem_unlink(name)`; labels such as `open|CREAT|EXCL mode=644 value=max+1`, or `unlink`.
pub type SemOp = matrix::Op<(c_int, u32, u32)>;

/// `SEM_VALUE_MAX` of this system.
pub fn value_max() -> u32 {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let v = unsafe { libc::sysconf(libc::_SC_SEM_VALUE_MAX) };
    u32::try_from(v).unwrap_or(i32::MAX as u32)
}

/// The operations: no flag, `O_CREAT`, `O_CREAT|O_EXCL` with every mode and value; `O_EXCL`
/// alone; extra bits (`O_TRUNC`, `O_APPEND`, `O_NONBLOCK`, `O_WRONLY`); `sem_unlink`.
///
/// # Example
/// ```
/// let ops = tmpshm_compat::sem::ops();
/// assert!(ops.iter().any(|o| o.label == "open|CREAT|EXCL mode=600 value=max+1"));
/// ```
pub fn ops() -> Vec<SemOp> {
    let max = value_max();
    let values = [
        (0, "0"),
        (1, "1"),
        (max, "max"),
        (max.wrapping_add(1), "max+1"),
    ];
    let mut v = Vec::new();
    let creates = [
        (libc::O_CREAT, "open|CREAT"),
        (libc::O_CREAT | libc::O_EXCL, "open|CREAT|EXCL"),
    ];
    for (flags, label) in creates {
        for mode in [0o600, 0o644, 0o4600] {
            for (value, vl) in values {
                v.push(SemOp {
                    label: format!("{label} mode={mode:o} value={vl}"),
                    open: Some((flags, mode, value)),
                });
            }
        }
    }
    let others = [
        ("open", 0),
        ("open|EXCL", libc::O_EXCL),
        ("open|TRUNC", libc::O_TRUNC),
        ("open|CREAT|TRUNC", libc::O_CREAT | libc::O_TRUNC),
        ("open|CREAT|APPEND", libc::O_CREAT | libc::O_APPEND),
        ("open|NONBLOCK", libc::O_NONBLOCK),
        ("open|WRONLY", libc::O_WRONLY),
    ];
    for (label, flags) in others {
        v.push(SemOp {
            label: format!("{label} mode=600 value=1"),
            open: Some((flags, 0o600, 1)),
        });
    }
    // Mode and value mean nothing without O_CREAT.
    v.push(SemOp {
        label: "open mode=4777 value=max+1".to_string(),
        open: Some((0, 0o4777, max.wrapping_add(1))),
    });
    v.push(SemOp {
        label: "unlink".to_string(),
        open: None,
    });
    v
}

/// A prior state of the semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemState {
    /// No semaphore.
    Absent,
    /// Mode 0600, value 0.
    Present,
    /// Mode 0600, value 3.
    Valued,
    /// Value 3, mode 0666: ours, but other users may read and write it.
    OthersRw,
    /// Value 3, mode 0600, owned by uid/gid [`FOREIGN_UID`] (needs root).
    Foreign,
    /// As [`SemState::Foreign`], with cross-user sharing on: no entry may name it.
    ForeignShared,
}

impl SemState {
    /// All states.
    pub const ALL: [SemState; 6] = [
        SemState::Absent,
        SemState::Present,
        SemState::Valued,
        SemState::OthersRw,
        SemState::Foreign,
        SemState::ForeignShared,
    ];

    /// Builds the state on one side: created through the side's own `sem_open`, then its
    /// file changed.
    fn setup(self, side: &SemSide, name: &CStr) -> Result<(), String> {
        if self == SemState::Absent {
            return Ok(());
        }
        let value = if self == SemState::Present { 0 } else { 3 };
        let p = side
            .open(name, libc::O_CREAT | libc::O_EXCL, 0o600, value)
            .map_err(|e| e.to_string())?;
        let file = side.path_of(name).and_then(|path| file_at(p, &path));
        // SAFETY: just opened on this side.
        let _ = unsafe { side.close(p) };
        let (path, _) = file.ok_or("the new semaphore's file is not mapped")?;
        if self == SemState::OthersRw {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
                .map_err(|e| e.to_string())?;
        }
        if self.foreign() {
            let id = FOREIGN_UID;
            std::os::unix::fs::chown(&path, Some(id), Some(id)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl PriorState for SemState {
    fn all() -> &'static [SemState] {
        &SemState::ALL
    }

    fn word(self) -> &'static str {
        match self {
            SemState::Absent => "absent",
            SemState::Present => "present",
            SemState::Valued => "valued",
            SemState::OthersRw => "others-rw",
            SemState::Foreign => "foreign",
            SemState::ForeignShared => "foreign-shared",
        }
    }

    fn foreign(self) -> bool {
        matches!(self, SemState::Foreign | SemState::ForeignShared)
    }

    fn shared(self) -> bool {
        self == SemState::ForeignShared
    }
}

/// Runs one operation on one side and observes it.
pub fn observe(side: &SemSide, name: &CStr, op: &SemOp) -> SemObservation {
    // Observes what an open returned, then closes it.
    let seen = |opened: Result<*mut libc::sem_t, Errno>| match opened {
        Ok(p) => {
            let o = SemOutcome::of(side, name, p);
            // SAFETY: opened just before on this side.
            let _ = unsafe { side.close(p) };
            o
        }
        Err(e) => SemOutcome::Err(e),
    };
    let result = match op.open {
        Some((oflag, mode, value)) => seen(side.open(name, oflag, mode, value)),
        None => match side.unlink(name) {
            Ok(()) => SemOutcome::Done,
            Err(e) => SemOutcome::Err(e),
        },
    };
    let after = seen(side.open(name, 0, 0, 0));
    SemObservation { result, after }
}

/// What is compared with glibc's functions.
#[derive(Debug, Clone)]
pub enum SemSubject {
    /// `tmpshm::capi` with illumos's names (`tmpshm_sem_open`); its names carry `strict`.
    Strict,
    /// The preload library's functions (glibc's names), and its file; its names carry
    /// `glibc-names`.
    Preload(SemFns, PathBuf),
}

impl SemSubject {
    /// `strict` or `preload`.
    pub fn word(&self) -> &'static str {
        match self {
            SemSubject::Strict => "strict",
            SemSubject::Preload(..) => "preload",
        }
    }

    /// The word every name of the subject's pass carries.
    fn name_word(&self) -> &'static str {
        match self {
            SemSubject::Strict => "strict",
            SemSubject::Preload(..) => "glibc-names",
        }
    }
}

/// One case where the sides differ.
pub type SemDivergence = matrix::Divergence<SemOutcome>;

/// The outcome of a pass.
pub type SemReport = matrix::Report<SemOutcome>;

/// Takes a lock that serialises the passes on this machine: the names `/.` and `/..` are the
/// same in every pass on glibc's side (`/dev/shm/sem..`, `/dev/shm/sem...`), so concurrent
/// passes (tests in parallel, another user's) would trip over each other's semaphores. The
/// lock file is in the temporary directory, readable by all (a `flock` needs no more), so
/// passes of root and of another user share it.
fn serialise() -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = std::env::temp_dir().join("tmpshm-compat-sem.lock");
    let what = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = loop {
        match std::fs::File::open(&path) {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(what(e)),
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(what(e)),
        }
    };
    // SAFETY: flock on a live fd.
    let rc = nix::errno::Errno::result(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) });
    rc.map_err(|e| format!("flock {}: {e}", path.display()))?;
    Ok(file)
}

impl Matrix for SemSubject {
    type Side = SemSide;
    type Args = (c_int, u32, u32);
    type State = SemState;
    type Outcome = SemOutcome;

    const DIR_PREFIX: &'static str = "tmpshm-compat-sem-";
    const TAG: &'static str = "sem";

    fn word(&self) -> &'static str {
        SemSubject::word(self)
    }

    fn title(&self) -> &'static str {
        match self {
            SemSubject::Strict => "sem strict",
            SemSubject::Preload(..) => "sem preload",
        }
    }

    fn native(&self) -> Result<(SemSide, String), String> {
        let glibc = SemFns::glibc()?;
        let is = format!(
            "glibc {} sem_open ({})",
            Native::libc_version(),
            glibc.defining_object()?.display()
        );
        Ok((SemSide::Glibc(glibc), is))
    }

    fn describe(&self) -> String {
        match self {
            SemSubject::Strict => "tmpshm::capi (Names::Strict)".to_string(),
            SemSubject::Preload(_, p) => p.display().to_string(),
        }
    }

    fn side(&self, dir: &Path, cross_user: bool) -> SemSide {
        let (names, lib) = match self {
            SemSubject::Strict => (Names::Strict, None),
            SemSubject::Preload(f, _) => (Names::Glibc, Some(*f)),
        };
        SemSide::Capi {
            names,
            lib,
            dir: dir.to_path_buf(),
            cross_user,
        }
    }

    /// [`crate::diff::names`], each with the subject's word.
    fn names(&self, tag: &str) -> Vec<Name> {
        let mut v = names(tag);
        for n in &mut v {
            n.words.push(self.name_word());
        }
        v
    }

    fn ops(&self) -> Vec<SemOp> {
        ops()
    }

    /// The pass's user, and a name of the pass: an entry for the other subject's name rules
    /// does not apply.
    fn applies(&self, entry: &Entry, pass: Pass, names: &[Name]) -> bool {
        for_user(entry, pass) && names.iter().any(|n| selects(&entry.names, &n.words, n.len))
    }

    fn lock(&self) -> Result<Option<std::fs::File>, String> {
        serialise().map(Some)
    }

    fn setup(side: &SemSide, state: SemState, name: &CStr) -> bool {
        state.setup(side, name).is_ok()
    }

    fn observe(side: &SemSide, name: &CStr, op: &SemOp) -> SemObservation {
        observe(side, name, op)
    }

    fn unlink(side: &SemSide, name: &CStr) -> Result<(), Errno> {
        side.unlink(name)
    }

    fn summary(outcome: &SemOutcome) -> String {
        outcome.summary()
    }
}

/// Runs the whole matrix in this process as its current user, `subject` against glibc's
/// functions, and checks it against `table`. One pass runs at a time on a machine (a lock file
/// in the temporary directory). Sets the umask to 022 and changes the
/// environment at every call: call it from a single-threaded process.
///
/// # Errors
/// A message when glibc's functions or a temporary directory are unavailable.
pub fn run(table: &Table, subject: &SemSubject) -> Result<SemReport, String> {
    matrix::run(table, subject)
}
