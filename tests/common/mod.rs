//! Shared helpers for the integration tests: real directories, real processes.
#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// The uid/gid that privilege tests drop to.
pub const NOBODY: u32 = 65534;

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

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints why a privilege test skips (never pass silently) and returns true if it must skip.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    println!("SKIPPED {test}: needs root to fork a child and drop it to uid/gid {NOBODY}");
    eprintln!("SKIPPED {test}: needs root to fork a child and drop it to uid/gid {NOBODY}");
    true
}

/// Runs `f` in a forked child and returns its exit code. The child exits with whatever `f`
/// returns; a panic in the child becomes exit code 101. The child must do only simple work.
pub fn in_child(f: impl FnOnce() -> i32) -> Pid {
    // SAFETY: the child runs only `f` (plain syscalls through the library) and then `_exit`s,
    // never returning into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: leaving the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    }
}

/// Drops the calling (forked) process to uid/gid 65534.
pub fn become_nobody() {
    nix::unistd::setgroups(&[]).expect("setgroups");
    nix::unistd::setgid(nix::unistd::Gid::from_raw(NOBODY)).expect("setgid");
    nix::unistd::setuid(nix::unistd::Uid::from_raw(NOBODY)).expect("setuid");
}

/// Waits for `pid` at most `limit`; kills it and panics if it is still running then.
pub fn wait_exit(pid: Pid, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
            WaitStatus::Exited(_, code) => return code,
            WaitStatus::Signaled(_, sig, _) => return 128 + sig as i32,
            _ => {}
        }
        if start.elapsed() > limit {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            panic!("child {pid} still running after {limit:?}: hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A pipe for a child to say "ready" (one byte) to its parent.
pub struct Ready {
    r: OwnedFd,
    w: OwnedFd,
}

impl Ready {
    pub fn new() -> Ready {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        Ready { r, w }
    }
    /// The read end, for children that block on it themselves.
    pub fn read_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.r.as_fd()
    }
    /// The write end, for a process that notifies from elsewhere (a tracer callback).
    pub fn write_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.w.as_fd()
    }
    pub fn notify(&self) {
        nix::unistd::write(&self.w, b"!").expect("write");
    }
    /// Waits for the byte, at most `limit`.
    pub fn wait(&self, limit: Duration) {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            self.r.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = nix::poll::PollTimeout::try_from(limit.as_millis() as i32).unwrap();
        let n = nix::poll::poll(&mut fds, ms).expect("poll");
        assert_eq!(n, 1, "child did not signal within {limit:?}");
        let mut b = [0u8; 1];
        nix::unistd::read(&self.r, &mut b).expect("read");
    }
}

/// Names of the entries in `dir`.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Lock files (`.SHML*`) left in `dir`.
pub fn lock_files(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.starts_with(".SHML"))
        .collect()
}
