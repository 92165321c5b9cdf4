//! What the integration tests of `tmpshm` (the library) and `tmpshm-cli` (the command) share:
//! real directories, real processes, bounded time.
//!
//! - [`in_fresh_process`] runs a test again alone in a new process of its binary.
//! - [`fork_child`] runs a closure in a forked child; [`Child::code`] gives its exit code and
//!   [`Child::wait`] its report (`Ok(summary)` or `Err(what went wrong)`), each within a time
//!   limit that turns a hang into a failure. A child never outlives its test: dropping an
//!   unreaped [`Child`] kills it (and its process group, if it made one).
//! - [`Ready`]: a pipe for "I am ready" between processes.
//! - [`become_nobody`], [`shared_tempdir`], [`skip_unless_root`]: tests of another user.
//! - [`long`] and [`pick`]: `TMPSHM_LONG=1` selects the long form of every suite.
//! - [`Rng`] and [`seed`]: randomised tests print their seed; `TMPSHM_SEED` replays one.
//! - [`clib`]: the shipped C libraries and C programs built against them.
//! - [`seccomp`]: `flock(2)` failing as on a file system without it.
//! - [`workspace_root`] and [`programs_dir`]: where the sources are, whichever package's test
//!   runs; [`program`] builds the C and C++ programs of `testkit/programs/`.

pub mod clib;
pub mod seccomp;

use std::fmt::Display;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Gid, Pid, Uid};

/// The uid/gid that tests of another user drop to.
pub const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------------------------
// The long form, skips.

/// `TMPSHM_LONG=1` selects the long form of every suite.
pub fn long() -> bool {
    std::env::var_os("TMPSHM_LONG").is_some_and(|v| v == "1")
}

/// `short` normally, `long_form` under `TMPSHM_LONG=1`.
pub fn pick<T>(short: T, long_form: T) -> T {
    if long() {
        long_form
    } else {
        short
    }
}

/// Says that `test` (or a part of it) is skipped, and why, on stdout and stderr: a skip never
/// passes silently, whichever stream the runner shows.
pub fn skip(test: &str, why: impl Display) {
    println!("SKIPPED {test}: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Returns true (after saying why) if `test` must skip because it needs root.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    skip(
        test,
        format_args!("needs root to fork a child and drop it to uid/gid {NOBODY}"),
    );
    true
}

// ---------------------------------------------------------------------------------------------
// Directories and modes.

/// A fresh directory for one test; world-writable and sticky like /tmp, so a child running
/// as another user can plant files in it.
pub fn shared_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("tmpshm-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

/// The names of the entries in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The lock files (`.SHML*`) in `dir`, sorted.
pub fn lock_files(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.starts_with(".SHML"))
        .collect()
}

/// A mode with exactly these bits, refused ones included, as a C caller passes a `mode_t`.
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on some platforms
pub fn perm(bits: u32) -> Mode {
    Mode::from_bits_retain(bits as libc::mode_t)
}

/// The number of open fds of this process. Other tests of the binary run in threads of the
/// same process, so count only in a forked child, where no other test runs.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// What a child's closure returns: an exit code, or a report.
pub trait Outcome {
    /// The exit code and the text sent to the parent.
    fn finish(self) -> (i32, String);
}

/// The exit code itself; nothing is reported.
impl Outcome for i32 {
    fn finish(self) -> (i32, String) {
        (self, String::new())
    }
}

/// `Ok(summary)` exits 0, `Err(message)` exits 1; either text goes to the parent.
impl<S: Into<String>> Outcome for Result<S, String> {
    fn finish(self) -> (i32, String) {
        match self {
            Ok(summary) => (0, summary.into()),
            Err(message) => (1, message),
        }
    }
}

/// The exit code of a child that panicked.
pub const PANICKED: i32 = 101;

/// A forked child; see [`fork_child`].
pub struct Child {
    pid: Pid,
    report: File,
    /// The process that forked it: only that one waits for it or kills it.
    parent: Pid,
    reaped: bool,
}

/// Forks a child that runs `f` and `_exit`s with its [`Outcome`]. A panic in the child exits
/// with [`PANICKED`] and reports the panic message.
///
/// The child must do only simple work: it is a copy of a process whose other threads (other
/// tests) are gone.
pub fn fork_child<R: Outcome>(f: impl FnOnce() -> R) -> Child {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // The parent reads the report once the child is gone, without waiting for end-of-file: a
    // child forked meanwhile by another test may hold a copy of the write end.
    fcntl(r.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("fcntl");
    let parent = getpid();
    // SAFETY: the child runs only `f` and then `_exit`s, never returning into the test
    // harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(r);
            let (code, text) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(outcome) => outcome.finish(),
                Err(payload) => {
                    let msg = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    (PANICKED, format!("the child panicked: {msg}"))
                }
            };
            let _ = std::io::Write::write_all(&mut File::from(w), text.as_bytes());
            // SAFETY: leaving the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Child {
            pid: child,
            report: File::from(r),
            parent,
            reaped: false,
        },
    }
}

/// Runs the test `name` again in a new process of this test binary (`--exact`, one thread),
/// where no other test's threads exist: nothing forked inherits their resources, and nothing
/// else reads or changes the environment. Says whether this is that process: the caller then
/// does the work; otherwise the child's exit (a crash included) has been checked.
pub fn in_fresh_process(name: &str) -> bool {
    const MARK: &str = "TMPSHM_TEST_FRESH_PROCESS";
    if std::env::var_os(MARK).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(MARK, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in a new process: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Runs `f` in a forked child and returns its exit code (see [`Child::code`]).
pub fn run_in_child<R: Outcome>(limit: Duration, f: impl FnOnce() -> R) -> i32 {
    fork_child(f).code(limit)
}

/// How a child ended.
enum End {
    Exited(i32),
    Signaled(Signal),
    Hung,
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits at most `limit` (a hang detector, not a speed test); a child still running then
    /// is killed.
    fn end(&mut self, limit: Duration) -> End {
        let until = Instant::now() + limit;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                WaitStatus::Exited(_, code) => {
                    self.reaped = true;
                    return End::Exited(code);
                }
                WaitStatus::Signaled(_, sig, _) => {
                    self.reaped = true;
                    return End::Signaled(sig);
                }
                _ => {}
            }
            if Instant::now() > until {
                self.kill_now();
                return End::Hung;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What the child sent, read once it is gone.
    fn text(&mut self) -> String {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.report.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The exit code, or 128 + the signal that killed the child. Fails the test if the child
    /// is still running after `limit`. Whatever the child reported is printed (a panic
    /// message, say), so that it shows with the test's output.
    pub fn code(mut self, limit: Duration) -> i32 {
        let end = self.end(limit);
        let text = self.text();
        if !text.is_empty() {
            eprintln!("child {}: {text}", self.pid);
        }
        match end {
            End::Exited(code) => code,
            End::Signaled(sig) => 128 + sig as i32,
            End::Hung => panic!("child {} still running after {limit:?}: hung", self.pid),
        }
    }

    /// The child's report: its summary if it exited 0, else what went wrong (its message,
    /// how it ended, or that it hung past `limit`), prefixed with `what`.
    pub fn wait(mut self, limit: Duration, what: &str) -> Result<String, String> {
        let end = self.end(limit);
        let text = self.text();
        match end {
            End::Exited(0) => Ok(text),
            End::Exited(code) => Err(format!("{what}: exit {code}: {text}")),
            End::Signaled(sig) => Err(format!("{what}: killed by {sig:?}: {text}")),
            End::Hung => Err(format!("{what}: still running after {limit:?} (hang)")),
        }
    }

    /// SIGKILLs the child (and its process group, if it made one) and reaps it.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        if self.reaped || getpid() != self.parent {
            return;
        }
        // Until it is reaped its pid is not reused, so a process group with that id can only
        // be one the child made.
        let _ = killpg(self.pid, Signal::SIGKILL);
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
        self.reaped = true;
    }
}

impl Drop for Child {
    /// A failing test leaves no process behind.
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Waits for all `children`, failing the test with every message collected; returns their
/// summaries.
pub fn wait_all(children: Vec<Child>, limit: Duration, what: &str) -> Vec<String> {
    let (ok, errors): (Vec<_>, Vec<_>) = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.wait(limit, &format!("{what} #{i}")))
        .partition(Result::is_ok);
    let errors: Vec<String> = errors.into_iter().filter_map(Result::err).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    ok.into_iter().filter_map(Result::ok).collect()
}

/// Drops the calling (forked) process to uid/gid 65534.
pub fn become_nobody() -> Result<(), String> {
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setgid(Gid::from_raw(NOBODY)).map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setuid(Uid::from_raw(NOBODY)).map_err(|e| format!("setuid: {e}"))
}

/// A pipe for a process to say "ready" (one byte) to another.
pub struct Ready {
    r: OwnedFd,
    w: OwnedFd,
}

impl Ready {
    /// A new pipe; both ends are inherited by children forked after this.
    pub fn new() -> Ready {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        Ready { r, w }
    }

    /// The read end, for children that block on it themselves.
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.r.as_fd()
    }

    /// The write end, for a process that notifies from elsewhere (a tracer callback).
    pub fn write_fd(&self) -> BorrowedFd<'_> {
        self.w.as_fd()
    }

    /// Sends the byte.
    pub fn notify(&self) {
        nix::unistd::write(&self.w, b"!").expect("write");
    }

    /// Waits for the byte, at most `limit`.
    pub fn wait(&self, limit: Duration) {
        let mut fds = [nix::poll::PollFd::new(
            self.r.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = nix::poll::PollTimeout::try_from(limit.as_millis() as i32).unwrap();
        let n = nix::poll::poll(&mut fds, ms).expect("poll");
        assert_eq!(n, 1, "no ready signal within {limit:?}");
        let mut b = [0u8; 1];
        nix::unistd::read(&self.r, &mut b).expect("read");
    }
}

impl Default for Ready {
    fn default() -> Ready {
        Ready::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness that can be replayed.

/// A small pseudo-random generator (xorshift64*); tests print their seed so that a failure
/// can be rerun with `TMPSHM_SEED`.
pub struct Rng(u64);

impl Rng {
    /// A generator that replays the same numbers for the same `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// `TMPSHM_SEED` to replay a failure, else a seed from the clock.
pub fn seed() -> u64 {
    std::env::var("TMPSHM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

// ---------------------------------------------------------------------------------------------
// Real programs: the preload library, programs compiled from testkit/programs/, bounded runs.

/// The workspace root (the directory of the `tmpshm` package), computed from this crate's own
/// place in it (`<root>/testkit`), so that it is the same for the tests of every package.
pub fn workspace_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace root")
        .to_path_buf()
}

/// The C, C++ and Python programs the tests run: `<root>/testkit/programs`.
pub fn programs_dir() -> std::path::PathBuf {
    workspace_root().join("testkit/programs")
}

/// The cargo target directory of this test binary (`<target>/<profile>/deps/<test>`).
pub fn cargo_target_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("a test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

fn newest_mtime(p: &Path, newest: &mut std::time::SystemTime) {
    let Ok(meta) = std::fs::metadata(p) else {
        return;
    };
    if meta.is_dir() {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            newest_mtime(&e.path(), newest);
        }
    } else if let Ok(m) = meta.modified() {
        *newest = (*newest).max(m);
    }
}

/// Whether `built` exists and is at least as new as every file of `sources`.
pub(crate) fn fresh(built: &Path, sources: &[std::path::PathBuf]) -> bool {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for s in sources {
        newest_mtime(s, &mut newest);
    }
    built
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|m| m >= newest)
}

/// `libtmpshm_preload.so`, up to date with the sources, as an absolute path: `$TMPSHM_PRELOAD`
/// (the variable `tmpshm exec` reads) if set, else [`clib::library`]`(Lib::Preload)`.
pub fn preload_library() -> std::path::PathBuf {
    match std::env::var_os("TMPSHM_PRELOAD").filter(|p| !p.is_empty()) {
        Some(p) => std::path::absolute(p).expect("an absolute path"),
        None => clib::library(clib::Lib::Preload),
    }
}

/// How to build a program of [`programs_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// A C program: `cc -std=c11 ... -pthread`.
    C,
    /// A C shared library (`-shared -fPIC`), for `LD_PRELOAD`.
    CShared,
    /// A C++ program: `c++ -std=c++17 ... -pthread -lrt`.
    Cxx,
}

/// Compiles `<programs_dir>/<source>` into `<target>/tmpshm-programs/<out>` unless a build
/// newer than the source is there, and returns it. The directory is under the target
/// directory (readable by every user, so a test may run the program as another one). Panics
/// with the compiler's output if it fails; callers that can skip check
/// [`compiler_missing`] first.
pub fn program(source: &str, out: &str, build: Build) -> std::path::PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let src = programs_dir().join(source);
    let dir = cargo_target_dir().join("tmpshm-programs");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join(out);
    if fresh(&exe, std::slice::from_ref(&src)) {
        return exe;
    }
    let (compiler, args): (String, &[&str]) = match build {
        Build::C => (
            std::env::var("CC").unwrap_or_else(|_| "cc".into()),
            &[
                "-std=c11",
                "-D_GNU_SOURCE",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-O1",
                "-pthread",
            ],
        ),
        Build::CShared => (
            std::env::var("CC").unwrap_or_else(|_| "cc".into()),
            &[
                "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-shared", "-fPIC",
            ],
        ),
        Build::Cxx => (
            std::env::var("CXX").unwrap_or_else(|_| "c++".into()),
            &[
                "-std=c++17",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-O1",
                "-pthread",
            ],
        ),
    };
    // Built under another name and renamed: a program is never seen half written.
    let partial = dir.join(format!(".{out}.{}", std::process::id()));
    let o = std::process::Command::new(&compiler)
        .args(args)
        .arg("-o")
        .arg(&partial)
        .arg(&src)
        .args(if build == Build::Cxx {
            &["-lrt"][..]
        } else {
            &[]
        })
        .output()
        .unwrap_or_else(|e| panic!("run {compiler}: {e} (install gcc and g++)"));
    assert!(
        o.status.success(),
        "{compiler} {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&partial, &exe).unwrap();
    exe
}

/// Why a program of kind `build` cannot be compiled here (no compiler), if so.
pub fn compiler_missing(build: Build) -> Option<String> {
    let (var, default) = match build {
        Build::C | Build::CShared => ("CC", "cc"),
        Build::Cxx => ("CXX", "c++"),
    };
    let compiler = std::env::var(var).unwrap_or_else(|_| default.into());
    match std::process::Command::new(&compiler)
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => None,
        _ => Some(format!("no working {compiler} (apt-get install gcc g++)")),
    }
}

/// The file `prog` names, searched in `$PATH` as a shell does, if any.
pub fn in_path(prog: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(prog))
        .find(|c| std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// Runs `cmd` in a process group of its own with its output in files, waiting at most
/// `limit` (a hang detector, not a speed test): past it the whole group is killed and the
/// test fails with what the program printed so far.
pub fn run_limited(cmd: &mut std::process::Command, limit: Duration) -> std::process::Output {
    use std::io::Seek;
    use std::os::unix::process::CommandExt;
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if Instant::now() > until {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let pgid = Pid::from_raw(child.id() as i32);
    // Whatever it started and left running goes with it.
    let _ = killpg(pgid, Signal::SIGKILL);
    let Some(status) = status else {
        let _ = child.wait();
        let mut text = String::new();
        let _ = err
            .rewind()
            .and_then(|()| err.read_to_string(&mut text).map(drop));
        panic!("{cmd:?} still running after {limit:?} (killed); stderr:\n{text}")
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    out.rewind().unwrap();
    out.read_to_end(&mut stdout).unwrap();
    err.rewind().unwrap();
    err.read_to_end(&mut stderr).unwrap();
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// stdout and stderr of `o`, for a failure message.
pub fn show_output(o: &std::process::Output) -> String {
    format!(
        "{}\n--- stdout:\n{}--- stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The tmpshm files (`.SHMD`, `.SHML`, `.SHMT`, `.SEMD`, `.SEML`, `.SEMT`...) in `dir`.
pub fn tmpshm_files(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.starts_with(".SHM") || n.starts_with(".SEM"))
        .collect()
}

/// A set-user-ID-root copy of `program` (same file name) in a 0755 directory of its own, or
/// `None` (the reason printed) where the file system would ignore the bit. The caller runs it
/// as another user ([`become_nobody`]) to stand for an invoker without privileges.
pub fn setuid_copy(test: &str, program: &Path) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let st = nix::sys::statvfs::statvfs(d.path()).unwrap();
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID) {
        skip(
            test,
            format_args!("{} is mounted nosuid", d.path().display()),
        );
        return None;
    }
    let copy = d.path().join(program.file_name().expect("a program file"));
    copy_program(program, &copy);
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    Some((d, copy))
}

/// `cmd` without the variables that steer tmpshm or the loader (`LD_PRELOAD`, `TMPSHM_DIR`,
/// `TMPSHM_CROSS_USER`, `TMPSHM_NAMES`, `TMPSHM_TRACE`, `TMPSHM_PRELOAD`), whatever the
/// environment the tests run in sets.
pub fn without_tmpshm_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for v in [
        "LD_PRELOAD",
        "TMPSHM_DIR",
        "TMPSHM_CROSS_USER",
        "TMPSHM_NAMES",
        "TMPSHM_TRACE",
        "TMPSHM_PRELOAD",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

/// Copies a program (or library) to `to`, in a `cp` process of its own: the file being written
/// is then never open in this multi-threaded test process, where a fork by another test would
/// pass its write end to a child, and running the copy would fail with `ETXTBSY` for as long
/// as that child lives.
pub fn copy_program(from: impl AsRef<Path>, to: impl AsRef<Path>) {
    let status = std::process::Command::new("cp")
        .arg("--")
        .arg(from.as_ref())
        .arg(to.as_ref())
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cp {} {}",
        from.as_ref().display(),
        to.as_ref().display()
    );
}
