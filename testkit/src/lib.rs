//! A reference model of tmpshm's `shm_open` and `shm_unlink`: the rules its documentation
//! states (`ShmDir::open`, `ShmDir::unlink`, docs/protocol.md), written out again apart from the
//! library's code, so that a property test or a fuzzer can check every outcome against them.
//!
//! It knows nothing of tmpshm's types: names are bytes, flags and modes are the C values, and
//! an outcome is an errno or what was seen of the returned fd. tmpshm's tests
//! (`tests/props.rs`) and its fuzz target (`fuzz/`) both use it, so the two check the same
//! rules.
//!
//! The model describes one call in an empty directory: [`check_open`] says whether an
//! `open(name, flags, mode)` there did what the rules ask, [`check_unlink`] whether the
//! `unlink(name)` that follows it did.
//!
//! With the `support` feature it also holds [`support`]: what the integration tests of `tmpshm`
//! (the library) and `tmpshm-cli` (the command) share, from forked children with time limits to
//! the shipped C libraries and the C programs of `testkit/programs/`.
//!
//! ```
//! use tmpshm_testkit::{check_open, einval, Layout, Opened};
//! let create = libc::O_CREAT | libc::O_RDWR;
//! assert_eq!(einval(b"/ok", create, 0o600, Layout::Illumos), None);
//! assert_eq!(einval(b"ok", create, 0o600, Layout::Illumos), Some("no leading slash"));
//! let fresh = Opened { regular: true, nlink: 1, cloexec: true };
//! assert_eq!(check_open(b"/ok", create, 0o600, Layout::Illumos, Ok(fresh)), Ok(()));
//! assert!(check_open(b"/ok", create, 0o600, Layout::Illumos, Err(libc::EPERM)).is_err());
//! ```
#![deny(missing_docs)]

#[cfg(feature = "support")]
pub mod support;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;

/// How object names map to files: the layouts the rules describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `<dir>/.SHMD<name>`, with the lock file `<dir>/.SHML<name>`.
    Illumos,
    /// `<dir>/<name>`, no lock file.
    Glibc,
}

impl Layout {
    /// Both layouts.
    pub const ALL: [Layout; 2] = [Layout::Illumos, Layout::Glibc];

    /// What the data file's name starts with, before the name without its `/`.
    pub fn data_prefix(self) -> &'static str {
        match self {
            Layout::Illumos => ".SHMD",
            Layout::Glibc => "",
        }
    }

    /// What the lock file's name starts with, or `None` where there is no lock file.
    pub fn lock_prefix(self) -> Option<&'static str> {
        match self {
            Layout::Illumos => Some(".SHML"),
            Layout::Glibc => None,
        }
    }
}

/// The longest file name the file systems under test take (Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// The flags `open` accepts: the access mode, `O_CREAT`, `O_EXCL`, `O_TRUNC`, and the implied
/// `O_CLOEXEC` and `O_NOFOLLOW`.
pub fn allowed_flags() -> i32 {
    libc::O_ACCMODE
        | libc::O_CREAT
        | libc::O_EXCL
        | libc::O_TRUNC
        | libc::O_CLOEXEC
        | libc::O_NOFOLLOW
}

/// Why the rules refuse `name` with `EINVAL`, or `None` if they accept it.
pub fn name_einval(name: &[u8], layout: Layout) -> Option<&'static str> {
    let rest = match name.split_first() {
        Some((b'/', rest)) => rest,
        _ => return Some("no leading slash"),
    };
    if rest.is_empty() || rest.contains(&b'/') || rest.contains(&0) {
        return Some("name");
    }
    // Without a prefix, "/." and "/.." would name the directory and its parent.
    if layout.data_prefix().is_empty() && (rest == b"." || rest == b"..") {
        return Some("dot name");
    }
    None
}

/// Why the rules refuse `open(name, flags, mode)` with `EINVAL` before touching anything, or
/// `None` if they accept it.
pub fn einval(name: &[u8], flags: i32, mode: u32, layout: Layout) -> Option<&'static str> {
    let acc = flags & libc::O_ACCMODE;
    if acc != libc::O_RDONLY && acc != libc::O_RDWR {
        return Some("access mode");
    }
    if flags & !allowed_flags() != 0 {
        return Some("unknown flag");
    }
    if flags & libc::O_EXCL != 0 && flags & libc::O_CREAT == 0 {
        return Some("O_EXCL without O_CREAT");
    }
    if flags & libc::O_TRUNC != 0 && acc == libc::O_RDONLY {
        return Some("O_TRUNC with O_RDONLY");
    }
    if flags & libc::O_CREAT != 0 && mode & !0o777 != 0 {
        return Some("mode bits");
    }
    name_einval(name, layout)
}

/// Whether the data file of `name` has a longer name than the file system takes
/// (`ENAMETOOLONG`).
pub fn too_long(name: &[u8], layout: Layout) -> bool {
    name.len().saturating_sub(1) + layout.data_prefix().len() > NAME_MAX
}

/// What was seen of an fd that `open` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// It is a regular file.
    pub regular: bool,
    /// Its hard links.
    pub nlink: u64,
    /// `FD_CLOEXEC` is set.
    pub cloexec: bool,
}

impl Opened {
    /// Looks at `fd`.
    ///
    /// # Errors
    /// The failed call, as text.
    pub fn of(fd: BorrowedFd<'_>) -> Result<Opened, String> {
        // SAFETY: F_GETFD takes no argument and only reads the descriptor's flags.
        let fdflags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        if fdflags < 0 {
            return Err(format!("F_GETFD: {}", std::io::Error::last_os_error()));
        }
        // A duplicate has other fd flags, but the same file.
        let meta = std::fs::File::from(fd.try_clone_to_owned().map_err(|e| e.to_string())?)
            .metadata()
            .map_err(|e| format!("fstat: {e}"))?;
        Ok(Opened {
            regular: meta.file_type().is_file(),
            nlink: meta.nlink(),
            cloexec: fdflags & libc::FD_CLOEXEC != 0,
        })
    }
}

/// Checks the outcome of `open(name, flags, mode)` in an empty directory: the fd seen, or the
/// errno.
///
/// `EINVAL` exactly when [`einval`] refuses; otherwise a fresh single-link regular file with
/// `FD_CLOEXEC`, which only `O_CREAT` can make, or `ENOENT` without `O_CREAT`, or
/// `ENAMETOOLONG` for a name [`too_long`] for the file system.
///
/// # Errors
/// What the outcome breaks, as text.
pub fn check_open(
    name: &[u8],
    flags: i32,
    mode: u32,
    layout: Layout,
    result: Result<Opened, i32>,
) -> Result<(), String> {
    let refused = einval(name, flags, mode, layout);
    match (result, refused) {
        (Err(libc::EINVAL), Some(_)) => Ok(()),
        (Err(e), Some(why)) => Err(format!("errno {e}, want EINVAL ({why})")),
        (Ok(_), Some(why)) => Err(format!("accepted despite: {why}")),
        (Ok(seen), None) => {
            if !seen.regular || seen.nlink != 1 {
                return Err(format!(
                    "opened a file that is not a single-link regular file: {seen:?}"
                ));
            }
            if !seen.cloexec {
                return Err("no FD_CLOEXEC".into());
            }
            if flags & libc::O_CREAT == 0 {
                return Err("opened an object in an empty directory without O_CREAT".into());
            }
            Ok(())
        }
        // A valid request fails only when the object is missing or the name too long.
        (Err(libc::ENOENT), None) if flags & libc::O_CREAT == 0 => Ok(()),
        (Err(libc::ENAMETOOLONG), None) if too_long(name, layout) => Ok(()),
        (Err(e), None) => Err(format!("valid request failed with errno {e}")),
    }
}

/// [`check_open`] of an fd, looked at with [`Opened::of`].
///
/// # Errors
/// As [`check_open`], or the failure to look at the fd.
pub fn check_open_fd(
    name: &[u8],
    flags: i32,
    mode: u32,
    layout: Layout,
    result: Result<BorrowedFd<'_>, i32>,
) -> Result<(), String> {
    let seen = match result {
        Ok(fd) => Ok(Opened::of(fd)?),
        Err(e) => Err(e),
    };
    check_open(name, flags, mode, layout, seen)
}

/// Checks the outcome of `unlink(name)` right after [`check_open`]'s call (`created`: that
/// call succeeded).
///
/// # Errors
/// What the outcome breaks, as text.
pub fn check_unlink(
    name: &[u8],
    layout: Layout,
    created: bool,
    result: Result<(), i32>,
) -> Result<(), String> {
    let name_ok = name_einval(name, layout).is_none();
    match result {
        Ok(()) if name_ok && created => Ok(()),
        Err(libc::EINVAL) if !name_ok => Ok(()),
        Err(libc::ENOENT) if name_ok && !created => Ok(()),
        Err(libc::ENAMETOOLONG) if name_ok && too_long(name, layout) => Ok(()),
        other => Err(format!(
            "unlink: {other:?} (name valid: {name_ok}, created: {created})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: i32 = libc::O_RDWR;
    const RO: i32 = libc::O_RDONLY;
    const CREAT: i32 = libc::O_CREAT;
    const FRESH: Opened = Opened {
        regular: true,
        nlink: 1,
        cloexec: true,
    };

    #[test]
    fn names_by_layout() {
        let (il, gl) = (Layout::Illumos, Layout::Glibc);
        let cases: &[(&[u8], Layout, Option<&str>)] = &[
            (b"/a", il, None),
            (b"/a", gl, None),
            (b"/\xff\xfe", il, None),
            (b"", il, Some("no leading slash")),
            (b"a", gl, Some("no leading slash")),
            (b"/", il, Some("name")),
            (b"//a", il, Some("name")),
            (b"/a/", gl, Some("name")),
            (b"/a\0b", il, Some("name")),
            (b"/.", il, None),
            (b"/..", il, None),
            (b"/.", gl, Some("dot name")),
            (b"/..", gl, Some("dot name")),
            (b"/...", gl, None),
        ];
        for (name, layout, want) in cases {
            assert_eq!(name_einval(name, *layout), *want, "{name:?} {layout:?}");
            assert_eq!(einval(name, RW, 0, *layout), *want, "{name:?} {layout:?}");
        }
    }

    #[test]
    fn flags_and_modes() {
        let il = Layout::Illumos;
        let cases: &[(i32, u32, Option<&str>)] = &[
            (RO, 0, None),
            (RW | CREAT | libc::O_EXCL | libc::O_TRUNC, 0o600, None),
            (RW | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0, None),
            (libc::O_WRONLY, 0, Some("access mode")),
            (libc::O_ACCMODE, 0, Some("access mode")),
            (RW | libc::O_APPEND, 0, Some("unknown flag")),
            (RW | libc::O_NONBLOCK, 0, Some("unknown flag")),
            (RW | libc::O_EXCL, 0, Some("O_EXCL without O_CREAT")),
            (RO | libc::O_TRUNC, 0, Some("O_TRUNC with O_RDONLY")),
            (RW | CREAT, 0o4600, Some("mode bits")),
            (RW | CREAT, 0o777, None),
            // The mode matters only when creating.
            (RW, 0o7777, None),
        ];
        for (flags, mode, want) in cases {
            assert_eq!(
                einval(b"/a", *flags, *mode, il),
                *want,
                "{flags:#o} {mode:#o}"
            );
        }
        // Flags are checked before the name.
        assert_eq!(einval(b"bad", libc::O_WRONLY, 0, il), Some("access mode"));
    }

    #[test]
    fn lengths() {
        let name = |n: usize| [b"/".as_slice(), &vec![b'a'; n]].concat();
        assert!(!too_long(&name(250), Layout::Illumos));
        assert!(too_long(&name(251), Layout::Illumos));
        assert!(!too_long(&name(255), Layout::Glibc));
        assert!(too_long(&name(256), Layout::Glibc));
        assert!(!too_long(b"", Layout::Illumos));
    }

    #[test]
    fn open_verdicts() {
        let il = Layout::Illumos;
        let ok = |name: &[u8], flags, mode, r| check_open(name, flags, mode, il, r).is_ok();
        // Refused exactly when the rules refuse.
        assert!(ok(b"bad", RW | CREAT, 0o600, Err(libc::EINVAL)));
        assert!(!ok(b"bad", RW | CREAT, 0o600, Err(libc::ENOENT)));
        assert!(!ok(b"bad", RW | CREAT, 0o600, Ok(FRESH)));
        assert!(!ok(b"/a", RW | CREAT, 0o600, Err(libc::EINVAL)));
        // A valid create gives a fresh file, cloexec, one link, regular.
        assert!(ok(b"/a", RW | CREAT, 0o600, Ok(FRESH)));
        for seen in [
            Opened {
                regular: false,
                ..FRESH
            },
            Opened { nlink: 2, ..FRESH },
            Opened {
                cloexec: false,
                ..FRESH
            },
        ] {
            assert!(!ok(b"/a", RW | CREAT, 0o600, Ok(seen)), "{seen:?}");
        }
        // Nothing to open without O_CREAT in an empty directory.
        assert!(!ok(b"/a", RW, 0, Ok(FRESH)));
        assert!(ok(b"/a", RW, 0, Err(libc::ENOENT)));
        assert!(!ok(b"/a", RW | CREAT, 0o600, Err(libc::ENOENT)));
        // ENAMETOOLONG only for a name too long; nothing else for a valid request.
        let long = [b"/".as_slice(), &[b'a'; 251]].concat();
        assert!(ok(&long, RW | CREAT, 0o600, Err(libc::ENAMETOOLONG)));
        assert!(!ok(b"/a", RW | CREAT, 0o600, Err(libc::ENAMETOOLONG)));
        assert!(!ok(b"/a", RW | CREAT, 0o600, Err(libc::EEXIST)));
    }

    #[test]
    fn unlink_verdicts() {
        let il = Layout::Illumos;
        assert!(check_unlink(b"/a", il, true, Ok(())).is_ok());
        assert!(check_unlink(b"/a", il, false, Err(libc::ENOENT)).is_ok());
        assert!(check_unlink(b"/a", il, false, Ok(())).is_err());
        assert!(check_unlink(b"/a", il, true, Err(libc::ENOENT)).is_err());
        assert!(check_unlink(b"a", il, false, Err(libc::EINVAL)).is_ok());
        assert!(check_unlink(b"a", il, false, Err(libc::ENOENT)).is_err());
        assert!(check_unlink(b"/.", Layout::Glibc, false, Err(libc::EINVAL)).is_ok());
        let long = [b"/".as_slice(), &[b'a'; 251]].concat();
        assert!(check_unlink(&long, il, false, Err(libc::ENAMETOOLONG)).is_ok());
        assert!(check_unlink(b"/a", il, false, Err(libc::ENAMETOOLONG)).is_err());
    }

    #[test]
    fn opened_sees_type_links_and_cloexec() {
        let path = std::env::temp_dir().join(format!("tmpshm-testkit-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let fd = std::os::fd::AsFd::as_fd(&file);
        // std opens with O_CLOEXEC.
        assert_eq!(Opened::of(fd), Ok(FRESH));
        let link = path.with_extension("link");
        std::fs::hard_link(&path, &link).unwrap();
        assert_eq!(Opened::of(fd).unwrap().nlink, 2);
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(&path).unwrap();
        // SAFETY: clears the fd flags of our own open fd.
        assert_eq!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }, 0);
        assert!(!Opened::of(fd).unwrap().cloexec);

        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(!Opened::of(std::os::fd::AsFd::as_fd(&null)).unwrap().regular);
    }
}
