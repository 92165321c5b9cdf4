//! Helpers for the hardening suites (tests/hardening_*.rs): real processes, bounded time,
//! failures reported from children through a pipe.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// `TMPSHM_LONG=1` selects the long form of every suite.
pub fn long() -> bool {
    std::env::var_os("TMPSHM_LONG").is_some_and(|v| v == "1")
}

/// `short` normally, `long` under `TMPSHM_LONG=1`.
pub fn pick<T>(short: T, long_form: T) -> T {
    if long() {
        long_form
    } else {
        short
    }
}

/// A child process and the read end of the pipe it reports failures on.
pub struct Child {
    pub pid: Pid,
    report: File,
}

/// Forks a child that runs `f` and `_exit`s: 0 if `f` returns `Ok`, 1 if `Err`, after
/// writing the message (a summary, or what went wrong) to the pipe. A panic in the child
/// is reported as an `Err`.
pub fn spawn<S: Into<String>>(f: impl FnOnce() -> Result<S, String>) -> Child {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the child runs only `f` (plain syscalls through the library and the helpers
    // here) and then `_exit`s, never returning into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(r);
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .unwrap_or_else(|_| Err("the child panicked".into()));
            let (code, msg) = match out {
                Ok(summary) => (0, summary.into()),
                Err(msg) => (1, msg),
            };
            let _ = File::from(w).write_all(msg.as_bytes());
            // SAFETY: leaving the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            Child {
                pid: child,
                report: File::from(r),
            }
        }
    }
}

impl Child {
    /// Waits up to `limit` (a hang detector, not a speed test); on timeout kills the child
    /// and fails. Returns the child's summary, or its failure message.
    pub fn wait(mut self, limit: Duration, what: &str) -> Result<String, String> {
        let until = Instant::now() + limit;
        let status = loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                WaitStatus::StillAlive => {
                    if Instant::now() > until {
                        let _ = kill(self.pid, Signal::SIGKILL);
                        let _ = waitpid(self.pid, None);
                        return Err(format!("{what}: still running after {limit:?} (hang)"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                s => break s,
            }
        };
        let mut msg = String::new();
        let _ = self.report.read_to_string(&mut msg);
        match status {
            WaitStatus::Exited(_, 0) => Ok(msg),
            WaitStatus::Exited(_, code) => Err(format!("{what}: exit {code}: {msg}")),
            other => Err(format!("{what}: {other:?}: {msg}")),
        }
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// Waits for all children, failing the test with every message collected; returns their
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

/// The number of open fds of this process (meaningful in a single-threaded child).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The entries of `dir` whose names start with `prefix`.
pub fn entries_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The errno of a tmpshm error as a plain number, for messages.
pub fn errno_of(e: &tmpshm::Error) -> i32 {
    e.errno() as i32
}

/// A small pseudo-random generator (xorshift64*); seeds are printed so a failure reruns.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// A seed from the clock, or `TMPSHM_SEED` to replay a failure.
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

/// `(st_dev, st_ino)` of an fd.
pub fn ident(fd: impl std::os::fd::AsFd) -> (u64, u64) {
    let st = nix::sys::stat::fstat(fd.as_fd()).expect("fstat");
    (st.st_dev, st.st_ino)
}

/// Reads the 8 bytes at `off` (0 if the file is shorter).
pub fn read_u64(f: &File, off: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 8];
    match f.read_at(&mut b, off) {
        Ok(8) => u64::from_le_bytes(b),
        _ => 0,
    }
}

/// Writes 8 bytes at `off`.
pub fn write_u64(f: &File, off: u64, v: u64) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(&v.to_le_bytes(), off)
        .map_err(|e| format!("pwrite at {off}: {e}"))
}
