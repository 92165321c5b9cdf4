//! [`ShmOptions`]: how to open or create a sized object.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::dir::ShmDir;
use crate::error::{At, Fail, FlagError, Op, Result, Why};
use crate::name::{ObjectKind, ObjectName};
use crate::object;
use crate::publish::publish;
use crate::shm::Shm;
use crate::sys::{as_path, StackPath};

/// How to open or create an object: size, mode, access, directory, cleanup.
///
/// [`ShmOptions::create`] publishes the object atomically (a temporary file, sized and
/// reserved, renamed into place under the creation lock), so no opener ever sees it smaller
/// than its size; [`ShmOptions::open`] refuses an object smaller than the size asked for.
///
/// # Example
/// ```
/// use tmpshm::{Access, ShmDir, ShmOptions};
/// let dir = tempfile::tempdir()?;
/// let opts = ShmOptions::new().dir(ShmDir::new(dir.path())).size(4096);
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
    size: Option<usize>,
    mode: Mode,
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
            mode: Mode::S_IRUSR | Mode::S_IWUSR,
            read_only: false,
            unlink_on_drop: false,
        }
    }

    /// The directory (and its settings: layout, cross-user sharing, tracing).
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

    /// The size in bytes: what `create` makes, and the least that `open` accepts.
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::ShmOptions::new().size(4096);
    /// # let _ = opts;
    /// ```
    pub fn size(mut self, bytes: usize) -> ShmOptions {
        self.size = Some(bytes);
        self
    }

    /// The permission bits of a created object, set exactly (the umask does not apply).
    ///
    /// # Example
    /// ```
    /// let opts = tmpshm::ShmOptions::new().mode(tmpshm::Mode::from_bits_truncate(0o640));
    /// # let _ = opts;
    /// ```
    pub fn mode(mut self, mode: Mode) -> ShmOptions {
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

    /// Make the returned [`Shm`] unlink the object when dropped (see
    /// [`Shm::set_unlink_on_drop`]).
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

    /// The size and mode a create needs, checked before anything is touched.
    fn creation(&self, dir: &ShmDir, name: &[u8]) -> Result<(u64, Mode)> {
        let refuse = |e| {
            dir.error(
                Fail::new(Errno::EINVAL, Op::Flags, At::Name).why(Why::Flags(e)),
                None,
                name,
            )
        };
        let size = self.size.ok_or_else(|| refuse(FlagError::NoSize))?;
        if self.mode.bits() & !0o777 != 0 {
            #[allow(clippy::useless_conversion)] // mode_t is u16 on some platforms
            return Err(refuse(FlagError::ModeBits(self.mode.bits().into())));
        }
        let size = u64::try_from(size)
            .ok()
            .filter(|&s| i64::try_from(s).is_ok())
            .ok_or_else(|| refuse(FlagError::TooLarge(size as u64)))?;
        Ok((size, self.mode))
    }

    /// Creates `name` already at its size and mode; `EEXIST` if it exists.
    ///
    /// No opener can ever see the object smaller than `size`, and its blocks are reserved
    /// (`fallocate`), so no write through a mapping can raise `SIGBUS` for want of space. The
    /// fd is read-write.
    ///
    /// # Errors
    /// - `EINVAL`: no size was given; the mode has bits outside `0o777`; the name breaks the
    ///   rules (see [`ShmDir::open`]).
    /// - `EEXIST`: anything is at the data path already (a symbolic link included).
    /// - `ENAMETOOLONG`: the data file name exceeds the file system's `NAME_MAX`.
    /// - `ENOSPC`: the file system has no room for `size` bytes; nothing is left behind.
    /// - `EFBIG`: the size exceeds what the file system allows.
    /// - `EACCES`, `EPERM`, `ELOOP`: the lock file is unusable (see [`ShmDir::open`]); the
    ///   directory is not writable.
    /// - `ENOSYS`: the directory's file system has no `flock(2)`, which the creation lock
    ///   needs.
    /// - `EROFS`, `ENOTDIR`, `EMFILE`, `ENFILE`: as `open(2)`.
    ///
    /// # Example
    /// ```
    /// use tmpshm::{Mode, ShmDir, ShmOptions};
    /// let dir = tempfile::tempdir()?;
    /// let opts = ShmOptions::new()
    ///     .dir(ShmDir::new(dir.path()))
    ///     .size(8192)
    ///     .mode(Mode::from_bits_truncate(0o640));
    /// let shm = opts.create("/doc-create")?;
    /// assert_eq!(shm.len(), 8192);
    /// assert_eq!(opts.create("/doc-create").unwrap_err().raw_os_error(), libc::EEXIST);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(&self, name: impl ObjectName) -> Result<Shm> {
        let name = name.name_bytes();
        let dir = self.resolve_dir()?;
        let (size, mode) = self.creation(&dir, name)?;
        let t = dir.target(name, ObjectKind::Shm, Op::Name)?;
        let call = dir.call();
        let mut data = StackPath::new();
        let data = t
            .data_in(&mut data)
            .map_err(|f| dir.error(f, Some(&t), name))?;
        object::trace_name(&call, &t, data).map_err(|f| dir.error(f, Some(&t), name))?;
        let fd =
            publish(&call, &t, size, mode, |_| Ok(())).map_err(|f| dir.error(f, Some(&t), name))?;
        let path = as_path(data).to_path_buf();
        Ok(Shm::new(
            fd,
            dir,
            owned(name),
            path,
            size as usize,
            true,
            self.unlink_on_drop,
        ))
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
    /// assert_eq!(opts.open("/doc-missing").unwrap_err().raw_os_error(), libc::ENOENT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(&self, name: impl ObjectName) -> Result<Shm> {
        let name = name.name_bytes();
        let dir = self.resolve_dir()?;
        let t = dir.target(name, ObjectKind::Shm, Op::Name)?;
        let access = if self.read_only {
            OFlag::O_RDONLY
        } else {
            OFlag::O_RDWR
        };
        let call = dir.call();
        let mut data = StackPath::new();
        let data = t
            .data_in(&mut data)
            .map_err(|f| dir.error(f, Some(&t), name))?;
        object::trace_name(&call, &t, data).map_err(|f| dir.error(f, Some(&t), name))?;
        let (fd, st) = object::open_checked(&call, data, access, false, true)
            .map_err(|f| dir.error(f, Some(&t), name))?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if let Some(want) = self.size {
            let want = want as u64;
            if size < want {
                let tiny =
                    Fail::new(Errno::EINVAL, Op::Check, At::Data).why(Why::TooSmall { size, want });
                return Err(dir.error(tiny, Some(&t), name));
            }
        }
        let path = as_path(data).to_path_buf();
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        Ok(Shm::new(
            fd,
            dir,
            owned(name),
            path,
            len,
            false,
            self.unlink_on_drop,
        ))
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
    pub fn open_or_create(&self, name: impl ObjectName) -> Result<Shm> {
        let name = name.name_bytes();
        self.creation(&self.resolve_dir()?, name)?;
        loop {
            match self.open(name) {
                Err(e) if e.errno() == Errno::ENOENT => {}
                done => return done,
            }
            match self.create(name) {
                // Created by someone else between our open and our rename: open theirs.
                Err(e) if e.errno() == Errno::EEXIST => continue,
                done => return done,
            }
        }
    }
}

fn owned(name: &[u8]) -> OsString {
    std::ffi::OsStr::from_bytes(name).to_os_string()
}
