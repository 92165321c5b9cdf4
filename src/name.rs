//! Names and paths: the first layer of illumos's `pos4obj`.
//!
//! An object name is checked here before anything touches the file system, so a bad name never
//! creates a lock file or reaches a syscall. A checked name maps to files in the directory by
//! the object's kind (shared memory `.SHMD`/`.SHML`, semaphores `.SEMD`/`.SEML`) and the
//! layout; the paths are built on the stack.

use crate::error::{At, Fail, Op, Why};
use crate::sys::StackPath;

/// Where objects live inside the directory: the file names of data and lock files.
///
/// # Example
/// ```
/// use tmpshm::{Layout, ObjectKind};
/// assert_eq!(ObjectKind::Shm.data_prefix(Layout::Illumos), ".SHMD");
/// assert_eq!(ObjectKind::Shm.lock_prefix(Layout::Glibc), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Layout {
    /// `<dir>/.SHMD<name>`, created under the lock file `<dir>/.SHML<name>` (semaphores
    /// `.SEMD`/`.SEML`), as illumos libc does. The default, and the point of this crate.
    #[default]
    Illumos,
    /// `<dir>/<name>` (semaphores `<dir>/sem.<name>`) with no lock file, as glibc and musl do
    /// in `/dev/shm`: tmpshm and the system's native calls can then open each other's
    /// objects.
    Glibc,
}

/// The kind of a POSIX object: what its files are called.
///
/// # Example
/// ```
/// use tmpshm::{Layout, ObjectKind};
/// assert_eq!(ObjectKind::Sem.data_prefix(Layout::Illumos), ".SEMD");
/// assert_eq!(ObjectKind::Sem.data_prefix(Layout::Glibc), "sem.");
/// assert_eq!(ObjectKind::Shm.temp_prefix(), ".SHMT");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// Shared memory (`shm_open`).
    Shm,
    /// A named semaphore (`sem_open`).
    Sem,
}

impl ObjectKind {
    /// Every kind.
    pub const ALL: [ObjectKind; 2] = [ObjectKind::Shm, ObjectKind::Sem];

    /// A short lowercase name: `"shm"`, `"sem"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Shm => "shm",
            ObjectKind::Sem => "sem",
        }
    }

    /// The file-name prefix of data files.
    pub fn data_prefix(self, layout: Layout) -> &'static str {
        match (self, layout) {
            (ObjectKind::Shm, Layout::Illumos) => ".SHMD",
            (ObjectKind::Sem, Layout::Illumos) => ".SEMD",
            (ObjectKind::Shm, Layout::Glibc) => "",
            (ObjectKind::Sem, Layout::Glibc) => "sem.",
        }
    }

    /// The file-name prefix of lock files, or `None` in a layout that creates without one.
    pub fn lock_prefix(self, layout: Layout) -> Option<&'static str> {
        match (self, layout) {
            (ObjectKind::Shm, Layout::Illumos) => Some(".SHML"),
            (ObjectKind::Sem, Layout::Illumos) => Some(".SEML"),
            (_, Layout::Glibc) => None,
        }
    }

    /// The file-name prefix of the temporary files of an atomic create (`.SHMT`, `.SEMT`).
    pub fn temp_prefix(self) -> &'static str {
        match self {
            ObjectKind::Shm => ".SHMT",
            ObjectKind::Sem => ".SEMT",
        }
    }
}

/// Anything that names an object: `&str`, `String`, `&String`, `&OsStr`, `OsString`, `&CStr`,
/// `CString`, `&[u8]`, `Vec<u8>`, `&[u8; N]`, `&Path`, `PathBuf`. The name is its bytes (a
/// C string without its NUL); the rules are checked when it is used.
///
/// # Example
/// ```
/// use tmpshm::ObjectName;
/// let owned = String::from("/x");
/// assert_eq!(owned.name_bytes(), b"/x");
/// assert_eq!(c"/x".name_bytes(), b"/x");
/// assert_eq!((&owned).name_bytes(), b"/x");
/// ```
pub trait ObjectName {
    /// The name's bytes.
    fn name_bytes(&self) -> &[u8];
}

impl<T: ObjectName + ?Sized> ObjectName for &T {
    fn name_bytes(&self) -> &[u8] {
        (**self).name_bytes()
    }
}

macro_rules! object_name {
    ($($t:ty => |$s:ident| $e:expr),* $(,)?) => {
        $(impl ObjectName for $t {
            fn name_bytes(&self) -> &[u8] {
                let $s = self;
                $e
            }
        })*
    };
}

object_name! {
    str => |s| s.as_bytes(),
    String => |s| s.as_bytes(),
    std::ffi::OsStr => |s| std::os::unix::ffi::OsStrExt::as_bytes(s),
    std::ffi::OsString => |s| std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()),
    std::ffi::CStr => |s| s.to_bytes(),
    std::ffi::CString => |s| s.as_bytes(),
    [u8] => |s| s,
    Vec<u8> => |s| s,
    std::path::Path => |s| std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()),
    std::path::PathBuf => |s| std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()),
}

impl<const N: usize> ObjectName for [u8; N] {
    fn name_bytes(&self) -> &[u8] {
        self
    }
}

/// Which names are accepted, and how they map to files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// illumos: exactly one leading `/`, no other `/`.
    Strict,
    /// glibc: every leading `/` is dropped (`"x"`, `"/x"`, `"//x"` are one object), then no
    /// other `/`. The interposers of the preload library stand in for glibc's calls.
    Glibc,
}

/// Why a name was refused. Every variant is `EINVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameError {
    Empty,
    NoLeadingSlash,
    SlashOnly,
    InnerSlash,
    Nul,
    DotName,
}

impl NameError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            NameError::Empty => "the name is empty; it must be \"/\" followed by a file name",
            NameError::NoLeadingSlash => "the name must start with '/'",
            NameError::SlashOnly => "\"/\" alone names no object",
            NameError::InnerSlash => "the name may contain no '/' after the first",
            NameError::Nul => "the name contains a NUL byte",
            NameError::DotName => "\"/.\" and \"/..\" name directories in this layout",
        }
    }
}

/// Checks an object name and returns the part that goes into file names.
///
/// The strict rules:
/// - it must start with `/` and contain no other `/` (`EINVAL`);
/// - `"/"` alone is refused: it names no object (illumos accepts it as the file `.SHMD`;
///   glibc, musl and NetBSD refuse it);
/// - a NUL byte is refused; every other byte is legal, UTF-8 or not;
/// - where the data files have no prefix, `"/."` and `"/.."` are refused: they would name the
///   directory itself or its parent. With a prefix they are ordinary files (`.SHMD.`).
///
/// Length is not checked here: the directory's own file system enforces `NAME_MAX` when the
/// file is opened, and answers `ENAMETOOLONG`.
pub(crate) fn check(
    name: &[u8],
    rule: NameRule,
    layout: Layout,
    kind: ObjectKind,
) -> Result<&[u8], NameError> {
    let rest = match rule {
        NameRule::Strict => match name.split_first() {
            Some((b'/', [])) => return Err(NameError::SlashOnly),
            Some((b'/', rest)) => rest,
            Some(_) => return Err(NameError::NoLeadingSlash),
            None => return Err(NameError::Empty),
        },
        NameRule::Glibc => {
            let rest = &name[name.iter().take_while(|&&b| b == b'/').count()..];
            if rest.is_empty() {
                return Err(if name.is_empty() {
                    NameError::Empty
                } else {
                    NameError::SlashOnly
                });
            }
            rest
        }
    };
    // One pass for both bytes (names are short: a loop beats two `memchr` calls). A `/`
    // anywhere is reported before a NUL anywhere, as two scans would.
    let mut nul = false;
    for &b in rest {
        if b == b'/' {
            return Err(NameError::InnerSlash);
        }
        nul |= b == 0;
    }
    if nul {
        return Err(NameError::Nul);
    }
    if kind.data_prefix(layout).is_empty() && (rest == b"." || rest == b"..") {
        return Err(NameError::DotName);
    }
    Ok(rest)
}

/// One checked name in one directory: builds the paths of its files on the stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) dir: &'a [u8],
    pub(crate) layout: Layout,
    pub(crate) kind: ObjectKind,
    /// The name as given.
    pub(crate) name: &'a [u8],
    /// The checked name, as it goes into file names (without its leading `/`).
    pub(crate) rest: &'a [u8],
}

impl<'a> Target<'a> {
    /// Checks `dir` (not empty) and `name`; `op` is the operation a refusal names. The
    /// directory holds no NUL byte: it is a C string's bytes, the default, or the directory of
    /// a `ShmDir`, which refuses every call when its directory holds one.
    #[inline]
    pub(crate) fn new(
        dir: &'a [u8],
        layout: Layout,
        kind: ObjectKind,
        name: &'a [u8],
        rule: NameRule,
        op: Op,
    ) -> Result<Target<'a>, Fail> {
        debug_assert!(!dir.contains(&0), "NUL in a directory from a C string");
        if dir.is_empty() {
            return Err(Fail::new(nix::errno::Errno::EINVAL, op, At::Dir).why(Why::DirPath));
        }
        let rest = check(name, rule, layout, kind)
            .map_err(|e| Fail::new(nix::errno::Errno::EINVAL, op, At::Name).why(Why::Name(e)))?;
        Ok(Target {
            dir,
            layout,
            kind,
            name,
            rest,
        })
    }

    /// Builds `<dir>/<prefix><tail>` in `out`, in place.
    fn join_in<'p>(
        &self,
        out: &'p mut StackPath,
        prefix: &str,
        tail: &[u8],
        at: At,
    ) -> Result<&'p std::ffi::CStr, Fail> {
        let slash: &[u8] = if self.dir.ends_with(b"/") { b"" } else { b"/" };
        if out.set(&[self.dir, slash, prefix.as_bytes(), tail]) {
            Ok(out.as_cstr())
        } else {
            Err(Fail::new(nix::errno::Errno::ENAMETOOLONG, Op::Open, at).why(Why::PathTooLong))
        }
    }

    /// `<dir>/<data prefix><name>`, built in `out` (the hot paths' way: no 4 KiB copy).
    pub(crate) fn data_in<'p>(&self, out: &'p mut StackPath) -> Result<&'p std::ffi::CStr, Fail> {
        self.join_in(out, self.kind.data_prefix(self.layout), self.rest, At::Data)
    }

    /// `<dir>/<lock prefix><name>` built in `out`, or `None` in a layout without lock files.
    pub(crate) fn lock_in<'p>(
        &self,
        out: &'p mut StackPath,
    ) -> Result<Option<&'p std::ffi::CStr>, Fail> {
        match self.kind.lock_prefix(self.layout) {
            Some(prefix) => self.join_in(out, prefix, self.rest, At::Lock).map(Some),
            None => Ok(None),
        }
    }

    /// `<dir>/<data prefix><name>`.
    pub(crate) fn data(&self) -> Result<StackPath, Fail> {
        let mut p = StackPath::new();
        self.data_in(&mut p)?;
        Ok(p)
    }

    /// `<dir>/<lock prefix><name>`, or `None` in a layout without lock files.
    pub(crate) fn lock(&self) -> Result<Option<StackPath>, Fail> {
        let mut p = StackPath::new();
        Ok(self.lock_in(&mut p)?.is_some().then_some(p))
    }

    /// `<dir>/<temp prefix><pid>.<n>`: a temporary file of an atomic create.
    pub(crate) fn temp(&self, pid: u32, n: u64) -> Result<StackPath, Fail> {
        let mut p = StackPath::new();
        self.temp_in(&mut p, pid, n)?;
        Ok(p)
    }

    /// [`Target::temp`], built in `out`.
    pub(crate) fn temp_in<'p>(
        &self,
        out: &'p mut StackPath,
        pid: u32,
        n: u64,
    ) -> Result<&'p std::ffi::CStr, Fail> {
        let mut digits = [0u8; 48];
        let len = temp_suffix(&mut digits, pid, n);
        self.join_in(out, self.kind.temp_prefix(), &digits[..len], At::Temp(n))
    }
}

/// Writes `<pid>.<n>` in decimal into `buf` and returns its length.
fn temp_suffix(buf: &mut [u8; 48], pid: u32, n: u64) -> usize {
    fn decimal(out: &mut [u8], mut v: u64) -> usize {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let len = tmp.len() - i;
        out[..len].copy_from_slice(&tmp[i..]);
        len
    }
    let mut at = decimal(buf, u64::from(pid));
    buf[at] = b'.';
    at += 1;
    at + decimal(&mut buf[at..], n)
}

/// Whether `rest` (after a temp prefix) is `<pid>.<n>`, as an atomic create names its
/// temporary file.
pub(crate) fn is_temp_suffix(rest: &[u8]) -> bool {
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let mut parts = rest.splitn(2, |&b| b == b'.');
    match (parts.next(), parts.next()) {
        (Some(pid), Some(n)) => digits(pid) && digits(n),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules_table() {
        use NameError::*;
        let (il, gl) = (Layout::Illumos, Layout::Glibc);
        let shm = ObjectKind::Shm;
        type Case<'a> = (&'a [u8], Layout, Result<&'a [u8], NameError>);
        let cases: &[Case] = &[
            (b"/blah", il, Ok(b"blah")),
            (b"/a", il, Ok(b"a")),
            (b"", il, Err(Empty)),
            (b"blah", il, Err(NoLeadingSlash)),
            (b"/", il, Err(SlashOnly)),
            (b"//a", il, Err(InnerSlash)),
            (b"/a/b", il, Err(InnerSlash)),
            (b"/a/", il, Err(InnerSlash)),
            (b"/a\0b", il, Err(Nul)),
            // One pass for both: a '/' anywhere wins over a NUL anywhere.
            (b"/a\0b/c", il, Err(InnerSlash)),
            (b"/a/b\0", il, Err(InnerSlash)),
            (b"/.", il, Ok(b".")),
            (b"/..", il, Ok(b"..")),
            (b"/.", gl, Err(DotName)),
            (b"/..", gl, Err(DotName)),
            (b"/...", gl, Ok(b"...")),
            (b"/\xff\xfe", il, Ok(b"\xff\xfe")),
            (b"/sp ace\n", il, Ok(b"sp ace\n")),
            (b"/.SHMDx", il, Ok(b".SHMDx")),
        ];
        for (name, layout, want) in cases {
            assert_eq!(
                check(name, NameRule::Strict, *layout, shm),
                *want,
                "name {name:?}"
            );
        }
        // Semaphores in the glibc layout have a prefix ("sem."), so "." is a file there.
        assert_eq!(
            check(b"/.", NameRule::Strict, gl, ObjectKind::Sem),
            Ok(&b"."[..])
        );
    }

    #[test]
    fn glibc_rule_strips_every_leading_slash() {
        use NameError::*;
        let il = Layout::Illumos;
        let shm = ObjectKind::Shm;
        type Case<'a> = (&'a [u8], Result<&'a [u8], NameError>);
        let cases: &[Case] = &[
            (b"x", Ok(b"x")),
            (b"/x", Ok(b"x")),
            (b"//x", Ok(b"x")),
            (b"", Err(Empty)),
            (b"/", Err(SlashOnly)),
            (b"///", Err(SlashOnly)),
            (b"/a/b", Err(InnerSlash)),
            (b"a/", Err(InnerSlash)),
        ];
        for (name, want) in cases {
            assert_eq!(check(name, NameRule::Glibc, il, shm), *want, "{name:?}");
        }
    }

    #[test]
    fn paths_by_kind_and_layout() {
        let t = |dir, layout, kind| Target {
            dir,
            layout,
            kind,
            name: b"/blah",
            rest: b"blah",
        };
        let p = t(b"/tmp", Layout::Illumos, ObjectKind::Shm);
        assert_eq!(p.data().unwrap().as_cstr().to_bytes(), b"/tmp/.SHMDblah");
        let lock = p.lock().unwrap().unwrap();
        assert_eq!(lock.as_cstr().to_bytes(), b"/tmp/.SHMLblah");
        assert_eq!(
            p.temp(12, 345).unwrap().as_cstr().to_bytes(),
            b"/tmp/.SHMT12.345"
        );
        let p = t(b"/dev/shm/", Layout::Glibc, ObjectKind::Shm);
        assert_eq!(p.data().unwrap().as_cstr().to_bytes(), b"/dev/shm/blah");
        assert!(p.lock().unwrap().is_none());
        let p = t(b"/dev/shm", Layout::Glibc, ObjectKind::Sem);
        assert_eq!(p.data().unwrap().as_cstr().to_bytes(), b"/dev/shm/sem.blah");
        let p = t(b"/tmp", Layout::Illumos, ObjectKind::Sem);
        assert_eq!(
            p.lock().unwrap().unwrap().as_cstr().to_bytes(),
            b"/tmp/.SEMLblah"
        );
    }

    #[test]
    fn temp_suffixes_round_trip() {
        let mut buf = [0u8; 48];
        for (pid, n) in [(0, 0), (1, 9), (4_294_967_295, u64::MAX)] {
            let len = temp_suffix(&mut buf, pid, n);
            let s = std::str::from_utf8(&buf[..len]).unwrap();
            assert_eq!(s, format!("{pid}.{n}"));
            assert!(is_temp_suffix(&buf[..len]));
        }
        assert!(!is_temp_suffix(b"12"));
        assert!(!is_temp_suffix(b"12.x"));
        assert!(!is_temp_suffix(b".3"));
    }
}
