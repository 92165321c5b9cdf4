//! Name rules and path mapping: the first layer of illumos's `pos4obj`.
//!
//! A name is checked here before anything touches the file system, so a bad name
//! never creates a lock file or reaches a syscall.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// Where objects live inside the directory: the file-name prefixes of the data and lock files.
///
/// [`Layout::ILLUMOS`] is the default and the point of this crate. [`Layout::GLIBC`] names files
/// the way glibc does in `/dev/shm` (no prefix, no lock file) so that tmpshm and the system's native
/// `shm_open` can open each other's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    data_prefix: &'static str,
    lock_prefix: Option<&'static str>,
}

impl Layout {
    /// `<dir>/.SHMD<name>` guarded by `<dir>/.SHML<name>`, as illumos libc does.
    pub const ILLUMOS: Layout = Layout {
        data_prefix: ".SHMD",
        lock_prefix: Some(".SHML"),
    };
    /// `<dir>/<name>` with no lock file, as glibc and musl do in `/dev/shm`.
    pub const GLIBC: Layout = Layout {
        data_prefix: "",
        lock_prefix: None,
    };

    /// The prefix of data files (`".SHMD"` for illumos, `""` for glibc).
    pub fn data_prefix(&self) -> &'static str {
        self.data_prefix
    }

    /// The prefix of lock files, or `None` when the layout creates without a lock.
    pub fn lock_prefix(&self) -> Option<&'static str> {
        self.lock_prefix
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout::ILLUMOS
    }
}

/// Checks an object name against the rules and returns the part after the leading `/`.
///
/// The rules (see the README's errno table):
/// - it must start with `/` and contain no other `/` (`EINVAL`);
/// - `"/"` alone is refused (`EINVAL`): it names no object (illumos accepts it as the file
///   `.SHMD`; glibc, musl and NetBSD refuse it);
/// - a NUL byte is refused (`EINVAL`); every other byte is legal, UTF-8 or not;
/// - with a prefix-less layout, `"/."` and `"/.."` are refused (`EINVAL`): they would name the
///   directory itself or its parent. With the illumos layout they are ordinary files
///   (`.SHMD.`, `.SHMD..`).
///
/// Length is not checked here: the directory's own file system enforces `NAME_MAX` (what
/// `pathconf(dir, _PC_NAME_MAX)` reports) when the file is opened, and answers `ENAMETOOLONG`.
pub(crate) fn check(name: &[u8], layout: Layout) -> Result<&[u8], NameError> {
    let rest = match name.split_first() {
        Some((b'/', rest)) => rest,
        Some(_) => return Err(NameError::NoLeadingSlash),
        None => return Err(NameError::Empty),
    };
    if rest.is_empty() {
        return Err(NameError::SlashOnly);
    }
    if rest.contains(&b'/') {
        return Err(NameError::InnerSlash);
    }
    if rest.contains(&0) {
        return Err(NameError::Nul);
    }
    if layout.data_prefix.is_empty() && (rest == b"." || rest == b"..") {
        return Err(NameError::DotName);
    }
    Ok(rest)
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
    pub(crate) fn errno(self) -> Errno {
        Errno::EINVAL
    }

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

/// The files behind one object name in one directory.
#[derive(Debug, Clone)]
pub(crate) struct ObjectPaths {
    pub(crate) data: CString,
    pub(crate) lock: Option<CString>,
}

impl ObjectPaths {
    /// Maps an already-checked name (the bytes after '/') into `dir`.
    ///
    /// `dir` must not contain NUL; the caller checked it once.
    pub(crate) fn new(dir: &[u8], layout: Layout, rest: &[u8]) -> ObjectPaths {
        let join = |prefix: &str| with_joined(dir, prefix, rest, CStr::to_owned);
        ObjectPaths {
            data: join(layout.data_prefix),
            lock: layout.lock_prefix.map(join),
        }
    }
}

/// Calls `f` with `<dir>/<prefix><rest>`, built on the stack when it fits.
///
/// Opening an existing object needs only this one path: building it without the heap (and
/// without the lock path) is what keeps that call close to a bare `open(2)`.
/// Neither `dir` nor `rest` may contain NUL; the caller checked both.
pub(crate) fn with_joined<R>(
    dir: &[u8],
    prefix: &str,
    rest: &[u8],
    f: impl FnOnce(&CStr) -> R,
) -> R {
    const STACK: usize = 384;
    let slash = !dir.ends_with(b"/");
    let len = dir.len() + usize::from(slash) + prefix.len() + rest.len() + 1;
    let mut stack = [0u8; STACK];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= STACK {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    for part in [dir, if slash { b"/" } else { b"" }, prefix.as_bytes(), rest] {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    // The last byte is the 0 the buffer started with.
    f(CStr::from_bytes_with_nul(buf).expect("checked for NUL"))
}

/// Views a C path as a `Path` for error messages and trace output.
pub(crate) fn as_path(c: &CStr) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(c.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules_table() {
        use NameError::*;
        let il = Layout::ILLUMOS;
        let gl = Layout::GLIBC;
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
            assert_eq!(check(name, *layout), *want, "name {:?}", name);
        }
    }

    #[test]
    fn paths_illumos_and_glibc() {
        let p = ObjectPaths::new(b"/tmp", Layout::ILLUMOS, b"blah");
        assert_eq!(p.data.as_bytes(), b"/tmp/.SHMDblah");
        assert_eq!(p.lock.unwrap().as_bytes(), b"/tmp/.SHMLblah");
        let p = ObjectPaths::new(b"/dev/shm/", Layout::GLIBC, b"blah");
        assert_eq!(p.data.as_bytes(), b"/dev/shm/blah");
        assert!(p.lock.is_none());
    }

    #[test]
    fn joined_on_stack_and_heap_agree() {
        for len in [1, 200, 383, 384, 385, 1000] {
            let dir = vec![b'd'; len];
            let built = with_joined(&dir, ".SHMD", b"x", CStr::to_owned);
            let mut want = dir.clone();
            want.extend_from_slice(b"/.SHMDx");
            assert_eq!(built.as_bytes(), want.as_slice(), "dir length {len}");
        }
        let built = with_joined(b"/tmp/", "", b"y", CStr::to_owned);
        assert_eq!(built.as_bytes(), b"/tmp/y");
    }
}
