//! What the C entry points say besides the errno, without allocating: a trace line per call
//! (`TMPSHM_TRACE`), and one line per process naming a directory that cannot work.

use std::ffi::CStr;
use std::fmt::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::AccessFlags;

use crate::escape::Escaped;
use crate::sys::{self, retry, StackPath};
use crate::trace::Flags;

/// The environment variable that turns tracing on: `1` or `stderr` for standard error, or an
/// absolute path to append to.
pub const ENV_TRACE: &str = "TMPSHM_TRACE";

/// A line built on the stack; what does not fit is cut (a trace line is never worth a heap
/// allocation).
pub(crate) struct Line {
    buf: [u8; 2048],
    len: usize,
}

impl Line {
    pub(crate) fn new() -> Line {
        Line {
            buf: [0; 2048],
            len: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep the last byte for the newline.
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Where trace lines go.
#[derive(Clone, Copy)]
pub(crate) enum Sink {
    Stderr,
    File(&'static CStr),
}

/// The trace sink `TMPSHM_TRACE` (its value `trace`, read with [`sys::vars`]) chooses, if any.
/// Ignored in a secure-execution process (the invoker could make it append to a file of its
/// choosing).
pub(crate) fn sink(trace: Option<&'static CStr>) -> Option<Sink> {
    let v = trace?;
    if sys::secure_execution() {
        return None;
    }
    match v.to_bytes() {
        b"" | b"0" => None,
        b"1" | b"stderr" => Some(Sink::Stderr),
        p if p.starts_with(b"/") => Some(Sink::File(v)),
        _ => Some(Sink::Stderr),
    }
}

/// Writes `line` and a newline to `sink`, ignoring failures (reporting must never change
/// what the call answers).
pub(crate) fn emit(sink: Sink, mut line: Line) {
    let _ = line.write_char('\n');
    if line.bytes().last() != Some(&b'\n') {
        // Cut short: make room for the newline.
        line.buf[line.len - 1] = b'\n';
    }
    match sink {
        Sink::Stderr => {
            let _ = sys::write_all(sys::stderr(), line.bytes());
        }
        Sink::File(path) => {
            let flags = OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_CLOEXEC
                | OFlag::O_NOFOLLOW;
            let mode = Mode::S_IRUSR | Mode::S_IWUSR;
            if let Ok(fd) = retry(|| nix::fcntl::open(path, flags, mode)) {
                let _ = sys::write_all(fd.as_fd(), line.bytes());
            }
        }
    }
}

/// The arguments of one traced call.
pub(crate) enum Args<'a> {
    /// `(name)`: an unlink.
    Name(Option<&'a [u8]>),
    /// `(name, oflag, mode)`: `shm_open`.
    Open(Option<&'a [u8]>, OFlag, Mode),
    /// `(name, oflag, mode, value)`: `sem_open`.
    SemOpen(Option<&'a [u8]>, OFlag, Mode, u32),
    /// `(sem)`: `sem_close`.
    Addr(usize),
}

/// One traced call: the function and its arguments.
pub(crate) struct Call<'a> {
    pub(crate) func: &'static str,
    pub(crate) args: Args<'a>,
}

impl Call<'_> {
    /// The name argument, if the call has one.
    pub(crate) fn name(&self) -> Option<&[u8]> {
        match self.args {
            Args::Name(n) | Args::Open(n, ..) | Args::SemOpen(n, ..) => n,
            Args::Addr(_) => None,
        }
    }
}

impl fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.func)?;
        let name = |f: &mut fmt::Formatter<'_>, n: Option<&[u8]>| match n {
            Some(n) => write!(f, "\"{}\"", Escaped::new(n)),
            None => f.write_str("NULL"),
        };
        match self.args {
            Args::Name(n) => name(f, n)?,
            Args::Open(n, oflag, mode) => {
                name(f, n)?;
                write!(f, ", {}, {:04o}", Flags(oflag), mode.bits())?;
            }
            Args::SemOpen(n, oflag, mode, value) => {
                name(f, n)?;
                write!(f, ", {}, {:04o}, {value}", Flags(oflag), mode.bits())?;
            }
            Args::Addr(a) => write!(f, "{a:#x}")?,
        }
        f.write_str(")")
    }
}

/// What a traced call returned.
#[derive(Clone, Copy)]
pub(crate) enum Ret {
    Int(i32),
    Ptr(usize),
}

/// `<call> = <result> [<path>]`, to the sink.
pub(crate) fn trace(
    sink: Sink,
    call: &Call<'_>,
    result: Result<Ret, Errno>,
    path: Option<&StackPath>,
) {
    let mut line = Line::new();
    let _ = write!(line, "tmpshm[{}]: {call} = ", std::process::id());
    let _ = match result {
        Ok(Ret::Int(v)) => write!(line, "{v}"),
        Ok(Ret::Ptr(p)) => write!(line, "{p:#x}"),
        Err(e) => match call.args {
            Args::SemOpen(..) => write!(line, "SEM_FAILED {e:?} ({})", e.desc()),
            _ => write!(line, "-1 {e:?} ({})", e.desc()),
        },
    };
    if let Some(p) = path {
        let _ = write!(line, " {}", Escaped::path(p.as_path()));
    }
    emit(sink, line);
}

static DIR_REPORTED: AtomicBool = AtomicBool::new(false);

/// After a failure, says once per process what is wrong with the directory, if that is the
/// cause: a program run on the preload library otherwise sees only an errno about the object
/// name ("No such file or directory: '/psm_1234'").
pub(crate) fn dir_problem(call: &Call<'_>, dir: &[u8], from_env: bool, e: Errno) {
    if !matches!(
        e,
        Errno::ENOENT
            | Errno::ENOTDIR
            | Errno::EACCES
            | Errno::EROFS
            | Errno::ELOOP
            | Errno::EINVAL
    ) {
        return;
    }
    let Some(problem) = diagnose(dir) else {
        return;
    };
    if DIR_REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let mut line = Line::new();
    let var = if from_env {
        "TMPSHM_DIR="
    } else {
        "the default directory "
    };
    let _ = write!(
        line,
        "tmpshm: {var}{} {problem}, so {call} failed with {e:?}; create it (mode 1777 to share \
         it between users), set TMPSHM_DIR to a directory that works, or run the program with \
         `tmpshm exec`",
        Escaped::new(dir),
    );
    emit(Sink::Stderr, line);
}

/// What keeps `dir` from holding objects, if anything.
fn diagnose(dir: &[u8]) -> Option<&'static str> {
    if dir.first() != Some(&b'/') {
        return Some("is not an absolute path");
    }
    let path = StackPath::join(&[dir])?;
    match retry(|| nix::sys::stat::stat(path.as_cstr())) {
        Err(Errno::ENOENT) => Some("does not exist"),
        Err(Errno::ENOTDIR) => Some("is below something that is not a directory"),
        Err(Errno::EACCES) => Some("cannot be reached by this user"),
        Err(_) => Some("cannot be examined"),
        Ok(st) if !crate::vet::is_dir(&st) => Some("is not a directory"),
        Ok(_) => match nix::unistd::access(path.as_cstr(), AccessFlags::W_OK | AccessFlags::X_OK) {
            Err(Errno::EROFS) => Some("is on a read-only file system"),
            Err(_) => Some("is not writable for this user"),
            Ok(()) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_not_grown() {
        let mut l = Line::new();
        for _ in 0..100 {
            let _ = l.write_str("0123456789abcdef0123456789abcdef");
        }
        assert_eq!(l.len, l.buf.len() - 1);
    }

    #[test]
    fn directories_are_diagnosed() {
        let d = tempfile::tempdir().unwrap();
        let bytes = |p: &std::path::Path| p.as_os_str().as_encoded_bytes().to_vec();
        assert_eq!(diagnose(&bytes(d.path())), None);
        assert_eq!(diagnose(b"relative"), Some("is not an absolute path"));
        assert_eq!(
            diagnose(&bytes(&d.path().join("missing"))),
            Some("does not exist")
        );
        let f = d.path().join("file");
        std::fs::write(&f, b"").unwrap();
        assert_eq!(diagnose(&bytes(&f)), Some("is not a directory"));
    }
}
