//! The differential suite: the same operation, from the same prior state, on the native
//! `shm_open` (in `/dev/shm`, unique names) and on tmpshm (in its own directory), compared
//! by what a caller can observe.
//!
//! Two subjects are compared with the native calls, each against its own table
//! ([`Subject`]): [`tmpshm::ShmDir`] with illumos's names, and the preload library's
//! interposers with glibc's (what an unmodified program gets under `LD_PRELOAD`).
//!
//! A case is a name x an operation x a prior state. Its observation on each side is the
//! result (an fd's file type, size, mode, `FD_CLOEXEC`, access mode and first bytes, or the
//! errno) and what a read-only reopen shows afterwards. Every difference must be explained by
//! an entry of the divergence table ([`crate::table`]), and every entry that applies to the
//! pass must explain at least one difference: a fixed divergence makes its entry fail.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::fstat;
use nix::sys::uio::{pread, pwrite};
use tmpshm::{Mode, OFlag, ShmDir};

use crate::matrix::{self, Matrix, PriorState, FOREIGN_UID};
use crate::oracle::Native;
use crate::preload::{self, Interposers};
use crate::table::Table;

/// One implementation under comparison.
#[derive(Debug, Clone)]
pub enum Side {
    /// libc's `shm_open`, in `/dev/shm`.
    Native(Native),
    /// tmpshm in a directory of its own (illumos layout).
    Tmpshm(ShmDir),
    /// The preload library's interposers, in `dir`, with glibc's names. Every call first sets
    /// the environment they read: `TMPSHM_DIR=dir`, `TMPSHM_CROSS_USER=1` exactly when
    /// `cross_user`, no `TMPSHM_NAMES`. So use this side from a single thread (changing the
    /// environment while another thread reads it is a data race in C).
    Preload {
        /// The loaded library.
        lib: Interposers,
        /// Its directory.
        dir: PathBuf,
        /// Accept other users' objects.
        cross_user: bool,
    },
}

/// What is compared with the native calls.
#[derive(Debug, Clone)]
pub enum Subject {
    /// [`ShmDir`], illumos names (the table `compat/divergences.txt`).
    ShmDir,
    /// The preload library's `shm_open`/`shm_unlink`, glibc names (the table
    /// `compat/divergences-preload.txt`).
    Preload(Interposers),
}

impl Subject {
    /// `shmdir` or `preload`, as reports name the subject.
    ///
    /// # Example
    /// ```
    /// assert_eq!(tmpshm_compat::diff::Subject::ShmDir.word(), "shmdir");
    /// ```
    pub fn word(&self) -> &'static str {
        match self {
            Subject::ShmDir => "shmdir",
            Subject::Preload(_) => "preload",
        }
    }
}

impl Side {
    /// Sets the environment a preload side's calls read (see [`Side::Preload`]).
    fn env(&self) {
        if let Side::Preload {
            dir, cross_user, ..
        } = self
        {
            preload::set_env(dir, *cross_user);
        }
    }

    /// `shm_open(name, oflag, mode)` on this side.
    ///
    /// # Errors
    /// The errno this side answers.
    ///
    /// # Example
    /// ```
    /// use tmpshm_compat::diff::Side;
    /// let dir = tempfile::tempdir().unwrap();
    /// let side = Side::Tmpshm(tmpshm::ShmDir::new(dir.path()));
    /// assert_eq!(side.open(c"/x", libc::O_RDONLY, 0).unwrap_err(), nix::errno::Errno::ENOENT);
    /// ```
    pub fn open(&self, name: &CStr, oflag: i32, mode: u32) -> Result<OwnedFd, Errno> {
        self.env();
        match self {
            Side::Native(n) => n.open(name, oflag, mode),
            Side::Tmpshm(d) => {
                let (flags, mode) = (OFlag::from_bits_retain(oflag), Mode::from_bits_retain(mode));
                Ok(d.open(name, flags, mode)?)
            }
            Side::Preload { lib, .. } => lib.open(name, oflag, mode),
        }
    }

    /// `shm_unlink(name)` on this side.
    ///
    /// # Errors
    /// The errno this side answers.
    ///
    /// # Example
    /// ```
    /// use tmpshm_compat::diff::Side;
    /// let dir = tempfile::tempdir().unwrap();
    /// let side = Side::Tmpshm(tmpshm::ShmDir::new(dir.path()));
    /// assert_eq!(side.unlink(c"/x").unwrap_err(), nix::errno::Errno::ENOENT);
    /// ```
    pub fn unlink(&self, name: &CStr) -> Result<(), Errno> {
        self.env();
        match self {
            Side::Native(n) => n.unlink(name),
            Side::Tmpshm(d) => Ok(d.unlink(name)?),
            Side::Preload { lib, .. } => lib.unlink(name),
        }
    }
}

/// What a caller can see of an fd, or the errno it got instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An fd: file type letter (`f` regular, `d` directory, `?` other), size, mode bits
    /// (`& 0o7777`), `FD_CLOEXEC`, access mode, and the first bytes (when readable).
    Fd {
        /// `f`, `d` or `?`.
        kind: char,
        /// `st_size`.
        size: i64,
        /// `st_mode & 0o7777`.
        mode: u32,
        /// `FD_CLOEXEC` is set.
        cloexec: bool,
        /// `O_ACCMODE` of the file status flags.
        access: i32,
        /// Up to 16 bytes read at offset 0, or `None` when the fd cannot be read.
        data: Option<Vec<u8>>,
    },
    /// Success without an fd (`shm_unlink`).
    Done,
    /// Failure.
    Err(Errno),
}

impl Outcome {
    /// Observes an open result.
    ///
    /// # Example
    /// ```
    /// use tmpshm_compat::diff::Outcome;
    /// let o = Outcome::of_fd(Err(nix::errno::Errno::ENOENT));
    /// assert_eq!(o.summary(), "ENOENT");
    /// ```
    pub fn of_fd(r: Result<OwnedFd, Errno>) -> Outcome {
        match r {
            Ok(fd) => Outcome::of(fd.as_fd()),
            Err(e) => Outcome::Err(e),
        }
    }

    /// Observes an fd that stays open.
    ///
    /// # Example
    /// ```
    /// use std::os::fd::AsFd;
    /// let f = tempfile::tempfile().unwrap();
    /// let o = tmpshm_compat::diff::Outcome::of(f.as_fd());
    /// assert!(o.to_string().starts_with("fd(f size=0"));
    /// ```
    pub fn of(fd: BorrowedFd<'_>) -> Outcome {
        let Ok(st) = fstat(fd) else {
            return Outcome::Err(Errno::EBADF);
        };
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => 'f',
            libc::S_IFDIR => 'd',
            _ => '?',
        };
        // SAFETY: fcntl on a live borrowed fd, with commands that only read flags.
        let (fdflags, flflags) = unsafe {
            (
                libc::fcntl(fd.as_raw_fd(), libc::F_GETFD),
                libc::fcntl(fd.as_raw_fd(), libc::F_GETFL),
            )
        };
        let mut buf = [0u8; 16];
        let data = match pread(fd, &mut buf, 0) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(_) => None,
        };
        Outcome::Fd {
            kind,
            size: st.st_size,
            mode: st.st_mode & 0o7777,
            cloexec: fdflags >= 0 && fdflags & libc::FD_CLOEXEC != 0,
            access: flflags & libc::O_ACCMODE,
            data,
        }
    }

    /// `ok` or the errno's name, as the table writes results.
    ///
    /// # Example
    /// ```
    /// assert_eq!(tmpshm_compat::diff::Outcome::Done.summary(), "ok");
    /// ```
    pub fn summary(&self) -> String {
        match self {
            Outcome::Err(e) => format!("{e:?}"),
            _ => "ok".to_string(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Fd {
                kind,
                size,
                mode,
                cloexec,
                access,
                data,
            } => {
                let acc = match *access {
                    libc::O_RDONLY => "RDONLY",
                    libc::O_WRONLY => "WRONLY",
                    libc::O_RDWR => "RDWR",
                    _ => "?",
                };
                write!(
                    f,
                    "fd({kind} size={size} mode={mode:o} cloexec={cloexec} {acc} data={})",
                    match data {
                        Some(d) => format!("{:?}", String::from_utf8_lossy(d)),
                        None => "-".to_string(),
                    }
                )
            }
            Outcome::Done => write!(f, "ok"),
            Outcome::Err(e) => write!(f, "{e:?}"),
        }
    }
}

/// The result of one case on one side, and what a read-only reopen shows after it.
pub type Observation = matrix::Observation<Outcome>;

/// A name of the matrix: bytes, class id, words for selectors, and length class.
#[derive(Debug, Clone)]
pub struct Name {
    /// The class (`ordinary`, `no-slash`, `len251`, ...).
    pub id: String,
    /// The bytes passed to `shm_open`.
    pub bytes: CString,
    /// Words a table selector may use.
    pub words: Vec<&'static str>,
    /// Bytes after the leading slash, for length classes.
    pub len: Option<usize>,
}

/// The length classes: bytes after the slash, around tmpshm's limit (250 on a file system with
/// `NAME_MAX` 255), glibc's (255 and 259), and `PATH_MAX`.
pub const LENGTHS: &[usize] = &[
    249, 250, 251, 252, 254, 255, 256, 257, 259, 260, 261, 1000, 4095, 4096, 5000,
];

/// The names of the matrix; `tag` makes them unique to this run.
///
/// # Example
/// ```
/// let names = tmpshm_compat::diff::names("t1");
/// assert!(names.iter().any(|n| n.id == "dotdot" && n.bytes.as_bytes() == b"/.."));
/// ```
pub fn names(tag: &str) -> Vec<Name> {
    let mk = |id: &str, bytes: Vec<u8>, words: &[&'static str]| Name {
        id: id.to_string(),
        bytes: CString::new(bytes).expect("no NUL in matrix names"),
        words: words.to_vec(),
        len: None,
    };
    let u = |i: usize| format!("tsc-{tag}-{i}").into_bytes();
    let cat = |parts: &[&[u8]]| parts.concat();
    let mut v = vec![
        mk("ordinary", cat(&[b"/", &u(0)]), &["ordinary", "valid"]),
        mk("no-slash", u(1), &["no-slash"]),
        mk("double-slash", cat(&[b"//", &u(2)]), &["double-slash"]),
        mk("inner-slash", cat(&[b"/", &u(3), b"/x"]), &["inner-slash"]),
        mk(
            "trailing-slash",
            cat(&[b"/", &u(4), b"/"]),
            &["trailing-slash"],
        ),
        mk("empty", Vec::new(), &["empty"]),
        mk("slash", b"/".to_vec(), &["slash"]),
        mk("dot", b"/.".to_vec(), &["dot"]),
        mk("dotdot", b"/..".to_vec(), &["dotdot"]),
        mk(
            "non-utf8",
            cat(&[b"/", &u(5), b"\xff\xfe"]),
            &["non-utf8", "valid"],
        ),
        mk(
            "space-newline",
            cat(&[b"/", &u(6), b" \n"]),
            &["space-newline", "valid"],
        ),
        mk(
            "leading-dot",
            cat(&[b"/.", &u(7)]),
            &["leading-dot", "valid"],
        ),
    ];
    for (i, &len) in LENGTHS.iter().enumerate() {
        let mut rest = u(100 + i);
        rest.resize(len, b'x');
        let mut n = mk(&format!("len{len}"), cat(&[b"/", &rest]), &["len"]);
        n.len = Some(len);
        v.push(n);
    }
    v
}

/// An operation of the matrix: `Some((oflag, mode))` for an open, `None` for `shm_unlink`;
/// labels such as `RDWR|CREAT|EXCL` or `RDWR|CREAT mode=1640` or `unlink`.
pub type Op = matrix::Op<(i32, u32)>;

/// The mode used for creation unless an operation says otherwise.
pub const CREATE_MODE: u32 = 0o640;

/// The operations: every access mode with every subset of `O_CREAT`, `O_EXCL`, `O_TRUNC`;
/// extra flags and mode bits; `shm_unlink`.
///
/// # Example
/// ```
/// let ops = tmpshm_compat::diff::ops();
/// assert!(ops.iter().any(|o| o.label == "WRONLY|CREAT|EXCL|TRUNC"));
/// ```
pub fn ops() -> Vec<Op> {
    let mut v = Vec::new();
    for (acc, an) in [
        (libc::O_RDONLY, "RDONLY"),
        (libc::O_WRONLY, "WRONLY"),
        (libc::O_RDWR, "RDWR"),
    ] {
        for bits in 0..8u32 {
            let mut f = acc;
            let mut label = an.to_string();
            for (i, (flag, fname)) in [
                (libc::O_CREAT, "CREAT"),
                (libc::O_EXCL, "EXCL"),
                (libc::O_TRUNC, "TRUNC"),
            ]
            .into_iter()
            .enumerate()
            {
                if bits & (1 << i) != 0 {
                    f |= flag;
                    label = format!("{label}|{fname}");
                }
            }
            v.push(Op {
                label,
                open: Some((f, CREATE_MODE)),
            });
        }
    }
    let extra = [
        ("RDWR|CREAT mode=1640", libc::O_RDWR | libc::O_CREAT, 0o1640),
        ("RDWR|CREAT mode=4640", libc::O_RDWR | libc::O_CREAT, 0o4640),
        (
            "RDWR|CREAT mode=100640",
            libc::O_RDWR | libc::O_CREAT,
            0o100640,
        ),
        ("RDWR|CLOEXEC", libc::O_RDWR | libc::O_CLOEXEC, 0),
        ("RDWR|NOFOLLOW", libc::O_RDWR | libc::O_NOFOLLOW, 0),
        ("RDWR|APPEND", libc::O_RDWR | libc::O_APPEND, 0),
        (
            "RDWR|CREAT|APPEND",
            libc::O_RDWR | libc::O_CREAT | libc::O_APPEND,
            CREATE_MODE,
        ),
        ("RDONLY|NONBLOCK", libc::O_RDONLY | libc::O_NONBLOCK, 0),
    ];
    for (label, f, mode) in extra {
        v.push(Op {
            label: label.to_string(),
            open: Some((f, mode)),
        });
    }
    v.push(Op {
        label: "unlink".to_string(),
        open: None,
    });
    v
}

/// A prior state of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No object.
    Absent,
    /// Created with mode 0600, size 0.
    Present,
    /// Mode 0600 holding [`PRIOR_DATA`].
    Data,
    /// Mode 0400 holding [`PRIOR_DATA`].
    ReadOnly,
    /// Mode 0666 holding [`PRIOR_DATA`]: ours, but other users may read and write it.
    OthersRw,
    /// Mode 0600 holding [`PRIOR_DATA`], owned by uid/gid [`FOREIGN_UID`] (needs root).
    Foreign,
    /// As [`State::Foreign`], with tmpshm's cross-user sharing on (`TMPSHM_CROSS_USER=1`):
    /// then tmpshm must behave as glibc does, so no table entry may name this state.
    ForeignShared,
}

/// What a prior state's object holds.
pub const PRIOR_DATA: &[u8] = b"prior-data";

impl State {
    /// All states.
    pub const ALL: [State; 7] = [
        State::Absent,
        State::Present,
        State::Data,
        State::ReadOnly,
        State::OthersRw,
        State::Foreign,
        State::ForeignShared,
    ];

    /// Builds the state on one side.
    fn setup(self, side: &Side, name: &CStr) -> Result<(), Errno> {
        if self == State::Absent {
            return Ok(());
        }
        let mode = if self == State::ReadOnly {
            0o400
        } else {
            0o600
        };
        let fd = side.open(name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, mode)?;
        if self != State::Present {
            pwrite(fd.as_fd(), PRIOR_DATA, 0)?;
        }
        if self == State::OthersRw {
            // fchmod: the umask would take the group and other write bits away.
            nix::sys::stat::fchmod(fd.as_fd(), nix::sys::stat::Mode::from_bits_truncate(0o666))?;
        }
        if self.foreign() {
            // fchown: the fd is the file this side created, whatever path it chose.
            let id = (
                nix::unistd::Uid::from_raw(FOREIGN_UID),
                nix::unistd::Gid::from_raw(FOREIGN_UID),
            );
            nix::unistd::fchown(&fd, Some(id.0), Some(id.1))?;
        }
        Ok(())
    }
}

impl PriorState for State {
    fn all() -> &'static [State] {
        &State::ALL
    }

    fn word(self) -> &'static str {
        match self {
            State::Absent => "absent",
            State::Present => "present",
            State::Data => "data",
            State::ReadOnly => "readonly",
            State::OthersRw => "others-rw",
            State::Foreign => "foreign",
            State::ForeignShared => "foreign-shared",
        }
    }

    fn foreign(self) -> bool {
        matches!(self, State::Foreign | State::ForeignShared)
    }

    fn shared(self) -> bool {
        self == State::ForeignShared
    }
}

/// Runs one operation on one side and observes it.
///
/// # Example
/// ```
/// use tmpshm_compat::diff::{observe, ops, Side};
/// let dir = tempfile::tempdir().unwrap();
/// let side = Side::Tmpshm(tmpshm::ShmDir::new(dir.path()));
/// let unlink = ops().pop().unwrap();
/// assert_eq!(observe(&side, c"/x", &unlink).result.summary(), "ENOENT");
/// ```
pub fn observe(side: &Side, name: &CStr, op: &Op) -> Observation {
    let result = match op.open {
        Some((flags, mode)) => Outcome::of_fd(side.open(name, flags, mode)),
        None => match side.unlink(name) {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Err(e),
        },
    };
    let after = Outcome::of_fd(side.open(name, libc::O_RDONLY, 0));
    Observation { result, after }
}

/// One case where the two sides differ.
pub type Divergence = matrix::Divergence<Outcome>;

/// The outcome of a pass.
pub type Report = matrix::Report<Outcome>;

impl Matrix for Subject {
    type Side = Side;
    type Args = (i32, u32);
    type State = State;
    type Outcome = Outcome;

    const DIR_PREFIX: &'static str = "tmpshm-compat-";
    const TAG: &'static str = "";

    fn word(&self) -> &'static str {
        Subject::word(self)
    }

    fn title(&self) -> &'static str {
        Subject::word(self)
    }

    fn native(&self) -> Result<(Side, String), String> {
        let oracle = Native::get()?;
        let is = format!(
            "glibc {} ({})",
            Native::libc_version(),
            oracle.defining_object()?.display()
        );
        Ok((Side::Native(oracle), is))
    }

    fn describe(&self) -> String {
        match self {
            Subject::ShmDir => "tmpshm::ShmDir".to_string(),
            Subject::Preload(lib) => lib.path().display().to_string(),
        }
    }

    fn side(&self, dir: &Path, cross_user: bool) -> Side {
        match self {
            Subject::ShmDir => Side::Tmpshm(ShmDir::new(dir).with_cross_user(cross_user)),
            Subject::Preload(lib) => Side::Preload {
                lib: lib.clone(),
                dir: dir.to_path_buf(),
                cross_user,
            },
        }
    }

    fn names(&self, tag: &str) -> Vec<Name> {
        names(tag)
    }

    fn ops(&self) -> Vec<Op> {
        ops()
    }

    fn setup(side: &Side, state: State, name: &CStr) -> bool {
        state.setup(side, name).is_ok()
    }

    fn observe(side: &Side, name: &CStr, op: &Op) -> Observation {
        observe(side, name, op)
    }

    fn unlink(side: &Side, name: &CStr) -> Result<(), Errno> {
        side.unlink(name)
    }

    fn summary(outcome: &Outcome) -> String {
        outcome.summary()
    }
}

/// Runs the whole matrix in this process as its current user, `subject` against the native
/// calls, and checks it against `table`. Sets the umask to 022 (both sides then see the same
/// mode rule); for [`Subject::Preload`], changes the environment at every call (see
/// [`Side::Preload`]): call it from a single-threaded process.
///
/// # Errors
/// A message when libc's functions or a temporary directory are unavailable.
///
/// # Example
/// ```no_run
/// use tmpshm_compat::{diff, table};
/// let report = diff::run(&table::SHMDIR.table()?, &diff::Subject::ShmDir)?;
/// assert!(report.ok(), "{report}");
/// # Ok::<(), String>(())
/// ```
pub fn run(table: &Table, subject: &Subject) -> Result<Report, String> {
    matrix::run(table, subject)
}
