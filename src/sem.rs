//! Named semaphores, the illumos way: `sem_open("/x")` is the file `<dir>/.SEMDx`, created
//! under the lock file `<dir>/.SEMLx`, holding one process-shared `sem_t` of the system's libc.
//!
//! The semaphore is the libc's own: the data file holds exactly one `sem_t`
//! (`size_of::<libc::sem_t>()` bytes: 32 on 64-bit glibc and musl, 16 on 64-bit bionic),
//! initialised with `sem_init(sem, 1, value)` before the file gets its name (the atomic publish
//! of [`crate::publish`]: no opener ever sees an uninitialised one). Every process that maps it
//! waits and posts with the libc's own `sem_wait`/`sem_post`, so processes sharing a semaphore
//! must use the same libc ABI. A file of any other size, or anything but a regular file, is
//! refused and never mapped.
//!
//! Opening maps the file and closes the fd: no fd stays open. A second open of the same
//! semaphore in one process returns the same address until it has been closed as often as
//! opened ([`crate::registry`]).
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, lstat, Mode};

use crate::call::Call;
use crate::dir::ShmDir;
use crate::error::{At, Error, Fail, FlagError, Op, Result, Why};
use crate::name::{ObjectKind, ObjectName, Target};
use crate::object;
use crate::publish::publish;
use crate::registry::{self, Mapped};
use crate::sys::retry;

/// The size of a semaphore's data file: one `sem_t`.
pub const SEM_SIZE: usize = std::mem::size_of::<libc::sem_t>();

/// The largest initial value (`SEM_VALUE_MAX`, from `sysconf`).
pub(crate) fn value_max() -> u32 {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let v = unsafe { libc::sysconf(libc::_SC_SEM_VALUE_MAX) };
    u32::try_from(v).unwrap_or(i32::MAX as u32)
}

/// What a `sem_open` asks for, checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SemRequest {
    pub(crate) create: bool,
    pub(crate) excl: bool,
    /// The permission bits of a created semaphore, as they are to be set (exactly).
    pub(crate) mode: Mode,
    pub(crate) value: u32,
}

impl SemRequest {
    /// `O_CREAT` and `O_EXCL` of `oflag` count (others are ignored, as glibc ignores them);
    /// `mode` and `value` are checked when creating.
    pub(crate) fn new(oflag: OFlag, mode: Mode, value: u32) -> std::result::Result<Self, Fail> {
        let create = oflag.contains(OFlag::O_CREAT);
        let refuse = |e| Err(Fail::new(Errno::EINVAL, Op::Flags, At::Name).why(Why::Flags(e)));
        if create && value > value_max() {
            return refuse(FlagError::SemValue(value));
        }
        if create && mode.bits() & !0o777 != 0 {
            #[allow(clippy::useless_conversion)] // mode_t is u16 on some platforms
            return refuse(FlagError::ModeBits(mode.bits().into()));
        }
        Ok(SemRequest {
            create,
            excl: create && oflag.contains(OFlag::O_EXCL),
            mode,
            value,
        })
    }
}

/// `mode` minus the umask when `oflag` creates, as the kernel does for `open(2)`; else `mode`
/// as it is (it means nothing then). The umask is read only when needed: reading it costs a
/// read of `/proc/self/status`, more than the rest of an open of an existing semaphore.
pub(crate) fn umasked(oflag: OFlag, mode: Mode) -> Mode {
    if oflag.contains(OFlag::O_CREAT) {
        mode & !crate::sys::umask()
    } else {
        mode
    }
}

/// `sem_open(3)` in `target`: the address of the semaphore, mapped (one mapping per process).
pub(crate) fn open(
    call: &Call<'_>,
    target: &Target<'_>,
    req: SemRequest,
) -> std::result::Result<NonNull<libc::sem_t>, Fail> {
    let mut data = crate::sys::StackPath::new();
    let data = target.data_in(&mut data)?;
    object::trace_name(call, target, data)?;
    loop {
        if req.excl {
            // As for shared memory: anything at the path is EEXIST, without a lock file.
            if retry(|| lstat(data)).is_ok() {
                return Err(Fail::new(Errno::EEXIST, Op::Open, At::Data));
            }
        } else {
            // The fd is only mapped and closed: its O_NONBLOCK can stay.
            match object::open_checked(call, data, OFlag::O_RDWR, false, false) {
                Ok((fd, st)) => return attach(&fd, &st, None),
                Err(e) if req.create && e.errno == Errno::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
        // A semaphore this process could not map must not be created either: the caller would
        // get EMFILE and find the name taken. (Another thread may still take the last slot in
        // between; then the create has happened and the open fails, as for any later open.)
        if registry::full() {
            return Err(Fail::new(Errno::EMFILE, Op::Map, At::Data));
        }
        let mut made = None;
        let published = publish(call, target, SEM_SIZE as u64, req.mode, |fd| {
            let m = Mapped::new(fd, SEM_SIZE).map_err(|e| Fail::new(e, Op::Map, At::Data))?;
            // SAFETY: the mapping is SEM_SIZE bytes, page-aligned, and ours alone: no one can
            // open the temporary file before it is renamed into place.
            unsafe { crate::sys::sem_init_shared(m.addr.as_ptr().cast(), req.value) }
                .map_err(|e| Fail::new(e, Op::Open, At::Data))?;
            made = Some(m);
            Ok(())
        });
        match published {
            Ok(fd) => {
                let st = fstat(fd.as_fd()).map_err(|e| Fail::new(e, Op::Check, At::Data))?;
                return attach(&fd, &st, made);
            }
            // Created by someone else meanwhile: open theirs.
            Err(e) if e.errno == Errno::EEXIST && !req.excl => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Checks that `fd` holds a semaphore and returns its address in this process: the mapping
/// already open for that file, else `made` (the creator's own), else a new one.
fn attach(
    fd: &OwnedFd,
    st: &nix::sys::stat::FileStat,
    made: Option<Mapped>,
) -> std::result::Result<NonNull<libc::sem_t>, Fail> {
    if st.st_size != SEM_SIZE as i64 {
        let size = u64::try_from(st.st_size).unwrap_or(0);
        return Err(Fail::new(Errno::EINVAL, Op::Check, At::Data).why(Why::NotASemaphore { size }));
    }
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // dev_t, ino_t differ
    let (dev, ino) = (st.st_dev as u64, st.st_ino as u64);
    let addr = registry::open(dev, ino, || match made {
        Some(m) => Ok(m),
        None => Mapped::new(fd.as_fd(), SEM_SIZE),
    })
    .map_err(|e| Fail::new(e, Op::Map, At::Data))?;
    Ok(addr.cast())
}

/// `sem_open` in `dir` (the Rust API's path from a checked request to a handle).
fn open_in(dir: ShmDir, name: &[u8], req: SemRequest) -> Result<Semaphore> {
    let t = dir.target(name, ObjectKind::Sem, Op::Name)?;
    let addr = open(&dir.call(), &t, req).map_err(|f| dir.error(f, Some(&t), name))?;
    let path = t
        .data()
        .map_err(|f| dir.error(f, Some(&t), name))?
        .as_path()
        .to_path_buf();
    Ok(Semaphore {
        addr,
        name: std::ffi::OsStr::from_bytes(name).to_os_string(),
        path,
        dir,
    })
}

/// [`crate::sem_open`]: the environment's directory, the umask applied to `mode`.
pub(crate) fn open_env(name: &[u8], oflag: OFlag, mode: Mode, value: u32) -> Result<Semaphore> {
    let dir = ShmDir::from_env()?;
    let req = SemRequest::new(oflag, umasked(oflag, mode), value)
        .map_err(|f| dir.error(f, None, name))?;
    open_in(dir, name, req)
}

/// How to open or create a named semaphore: directory, mode, initial value.
///
/// # Example
/// ```
/// use tmpshm::{SemOptions, ShmDir};
/// let dir = tempfile::tempdir()?;
/// let opts = SemOptions::new().dir(ShmDir::new(dir.path()));
/// let sem = opts.clone().value(1).create("/doc-sem")?;   // <dir>/.SEMDdoc-sem
/// sem.wait()?;                                           // 1 -> 0
/// assert!(!sem.try_wait()?);                             // would block
/// let other = opts.open("/doc-sem")?;                    // the same semaphore
/// other.post()?;
/// assert_eq!(sem.value()?, 1);
/// sem.unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SemOptions {
    dir: Option<ShmDir>,
    mode: Mode,
    value: u32,
}

impl Default for SemOptions {
    fn default() -> Self {
        SemOptions::new()
    }
}

impl SemOptions {
    /// Defaults: the environment's directory ([`ShmDir::from_env`]), mode `0o600`, initial
    /// value 0.
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::SemOptions::new().value(3);
    /// # let _ = opts;
    /// ```
    pub fn new() -> SemOptions {
        SemOptions {
            dir: None,
            mode: Mode::S_IRUSR | Mode::S_IWUSR,
            value: 0,
        }
    }

    /// The directory (and its settings: layout, cross-user sharing, tracing).
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::SemOptions::new().dir(tmpshm::ShmDir::new("/tmp"));
    /// # let _ = opts;
    /// ```
    pub fn dir(mut self, dir: ShmDir) -> SemOptions {
        self.dir = Some(dir);
        self
    }

    /// The permission bits of a created semaphore, set exactly (the umask does not apply).
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::SemOptions::new().mode(tmpshm::Mode::from_bits_truncate(0o660));
    /// # let _ = opts;
    /// ```
    pub fn mode(mut self, mode: Mode) -> SemOptions {
        self.mode = mode;
        self
    }

    /// The value a created semaphore starts with (at most `SEM_VALUE_MAX`).
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::SemOptions::new().value(1); // a lock
    /// # let _ = opts;
    /// ```
    pub fn value(mut self, value: u32) -> SemOptions {
        self.value = value;
        self
    }

    fn run(&self, name: &[u8], oflag: OFlag) -> Result<Semaphore> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => ShmDir::from_env()?,
        };
        let req =
            SemRequest::new(oflag, self.mode, self.value).map_err(|f| dir.error(f, None, name))?;
        open_in(dir, name, req)
    }

    /// Creates the semaphore `name` with its value (`O_CREAT|O_EXCL`); `EEXIST` if it exists.
    ///
    /// # Errors
    /// - `EEXIST`: anything is at the data path.
    /// - `EINVAL`: the value exceeds `SEM_VALUE_MAX`; the mode has bits outside `0o777`; the
    ///   name breaks the rules (see [`ShmDir::open`]).
    /// - `ENOSPC`, `ENAMETOOLONG`, `EACCES`, `EPERM`, `ELOOP`, `EMFILE`, `ENFILE`, `ENOSYS`:
    ///   as [`ShmOptions::create`](crate::ShmOptions::create); `EMFILE` also when this process
    ///   has 1024 semaphores open; `ENOSYS` also where the libc has no process-shared
    ///   semaphores (Apple's has no `sem_init`).
    ///
    /// # Example
    /// See [`SemOptions`].
    pub fn create(&self, name: impl ObjectName) -> Result<Semaphore> {
        self.run(name.name_bytes(), OFlag::O_CREAT | OFlag::O_EXCL)
    }

    /// Opens an existing semaphore.
    ///
    /// # Errors
    /// - `ENOENT`: no such semaphore.
    /// - `EINVAL`: the file is not a semaphore (its size is not one `sem_t`); the name breaks
    ///   the rules.
    /// - `EACCES`, `EPERM`, `ELOOP`, `ENAMETOOLONG`, `EMFILE`: as [`ShmDir::open`].
    ///
    /// # Example
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let opts = tmpshm::SemOptions::new().dir(tmpshm::ShmDir::new(dir.path()));
    /// assert_eq!(opts.open("/doc-none").unwrap_err().raw_os_error(), libc::ENOENT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(&self, name: impl ObjectName) -> Result<Semaphore> {
        self.run(name.name_bytes(), OFlag::empty())
    }

    /// Opens `name`, or creates it with its value if it does not exist (`O_CREAT`).
    ///
    /// # Errors
    /// As [`SemOptions::open`] (except `ENOENT`) and [`SemOptions::create`] (except `EEXIST`).
    ///
    /// # Example
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let opts = tmpshm::SemOptions::new().dir(tmpshm::ShmDir::new(dir.path())).value(2);
    /// let a = opts.open_or_create("/doc-ooc")?;
    /// let b = opts.open_or_create("/doc-ooc")?;
    /// assert_eq!(a.as_ptr(), b.as_ptr()); // one mapping per process
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(&self, name: impl ObjectName) -> Result<Semaphore> {
        self.run(name.name_bytes(), OFlag::O_CREAT)
    }

    /// `sem_unlink(3)`: removes the semaphore `name` from the directory; open handles keep
    /// working.
    ///
    /// # Errors
    /// As [`ShmDir::unlink`].
    ///
    /// # Example
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let opts = tmpshm::SemOptions::new().dir(tmpshm::ShmDir::new(dir.path()));
    /// let sem = opts.create("/doc-unlink")?;
    /// opts.unlink("/doc-unlink")?;
    /// sem.post()?; // still works
    /// assert_eq!(opts.unlink("/doc-unlink").unwrap_err().raw_os_error(), libc::ENOENT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "sem_unlink")]
    pub fn unlink(&self, name: impl ObjectName) -> Result<()> {
        let name = name.name_bytes();
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => ShmDir::from_env()?,
        };
        let t = dir.target(name, ObjectKind::Sem, Op::Name)?;
        object::unlink(&dir.call(), &t).map_err(|f| dir.error(f, Some(&t), name))
    }
}

/// An open named semaphore: the system's `sem_t`, mapped from its file. Closed on drop (the
/// process's last close of it unmaps it).
///
/// Waiting and posting are the libc's own `sem_wait`, `sem_post`... on [`Semaphore::as_ptr`],
/// so C code in the same process (and other processes) can share it.
///
/// # Example
/// See [`SemOptions`].
#[derive(Debug)]
pub struct Semaphore {
    addr: NonNull<libc::sem_t>,
    name: OsString,
    path: PathBuf,
    dir: ShmDir,
}

// SAFETY: a process-shared sem_t is made to be used from any thread (and process) at once;
// every operation goes through the libc's thread-safe calls.
unsafe impl Send for Semaphore {}
// SAFETY: as above.
unsafe impl Sync for Semaphore {}

impl Semaphore {
    fn sem(&self) -> *mut libc::sem_t {
        self.addr.as_ptr()
    }

    fn fail(&self, e: Errno) -> Error {
        Error::new(e, Op::Open, &self.path)
    }

    /// `sem_wait(3)`: takes one unit, waiting as long as the value is 0. Signals do not end
    /// the wait (`EINTR` is retried).
    ///
    /// # Errors
    /// `EINVAL`: not a valid semaphore (its file was overwritten).
    pub fn wait(&self) -> Result<()> {
        // SAFETY: `sem` is a live mapping of an initialised sem_t for as long as `self` is.
        retry(|| Errno::result(unsafe { libc::sem_wait(self.sem()) }).map(drop))
            .map_err(|e| self.fail(e))
    }

    /// `sem_trywait(3)`: takes one unit if the value is above 0; `Ok(false)` if it is 0.
    ///
    /// # Errors
    /// `EINVAL`: not a valid semaphore.
    pub fn try_wait(&self) -> Result<bool> {
        // SAFETY: as in `wait`.
        match retry(|| Errno::result(unsafe { libc::sem_trywait(self.sem()) })) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN) => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// `sem_timedwait(3)`: takes one unit, waiting at most `timeout`; `Ok(false)` if it timed
    /// out.
    ///
    /// # Errors
    /// `EINVAL`: not a valid semaphore, or a timeout too large for the clock.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        let deadline = SystemTime::now()
            .checked_add(timeout)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .ok_or_else(|| self.fail(Errno::EINVAL))?;
        let ts = libc::timespec {
            tv_sec: deadline
                .as_secs()
                .try_into()
                .map_err(|_| self.fail(Errno::EINVAL))?,
            // Below 10^9: fits every platform's c_long.
            tv_nsec: deadline.subsec_nanos() as _,
        };
        // SAFETY: as in `wait`; `ts` outlives the call.
        match retry(|| unsafe { crate::sys::sem_timedwait(self.sem(), &ts) }) {
            Ok(_) => Ok(true),
            Err(Errno::ETIMEDOUT) => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// `sem_post(3)`: gives one unit back, waking one waiter.
    ///
    /// # Errors
    /// `EOVERFLOW`: the value is at `SEM_VALUE_MAX`; `EINVAL`: not a valid semaphore.
    pub fn post(&self) -> Result<()> {
        // SAFETY: as in `wait`.
        Errno::result(unsafe { libc::sem_post(self.sem()) })
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    /// `sem_getvalue(3)`: the value now (it may change the moment after).
    ///
    /// # Errors
    /// `EINVAL`: not a valid semaphore.
    pub fn value(&self) -> Result<i32> {
        // SAFETY: as in `wait`.
        unsafe { crate::sys::sem_getvalue(self.sem()) }.map_err(|e| self.fail(e))
    }

    /// `sem_unlink(3)`: removes the name; this and every other open handle keep working.
    ///
    /// # Errors
    /// As [`ShmDir::unlink`] (`ENOENT`: already removed).
    ///
    /// # Example
    /// See [`SemOptions`].
    pub fn unlink(&self) -> Result<()> {
        SemOptions::new().dir(self.dir.clone()).unlink(&self.name)
    }

    /// The semaphore's name, e.g. `/x`.
    pub fn name(&self) -> &std::ffi::OsStr {
        &self.name
    }

    /// Its data file, e.g. `/tmp/.SEMDx`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `sem_t`, for the libc's own calls (valid while `self` lives).
    pub fn as_ptr(&self) -> *mut libc::sem_t {
        self.sem()
    }
}

impl Drop for Semaphore {
    fn drop(&mut self) {
        let _ = registry::close(self.sem().cast());
    }
}
