//! Property: random sequences of operations over a few names give the same observable results
//! on the native `shm_open`, on tmpshm's `ShmDir`, and on the preload library's interposers
//! (loaded from the built file).
//!
//! Only operations outside the divergence table are drawn (one leading slash, `O_RDONLY` or
//! `O_RDWR`, `O_TRUNC` only with `O_RDWR`, `O_EXCL` only with `O_CREAT`), so any difference
//! is a bug. `PROPTEST_CASES` sets the number of sequences (default 256).

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::uio::{pread, pwrite};
use proptest::prelude::*;
use tmpshm::ShmDir;
use tmpshm_compat::diff::{Outcome, Side};
use tmpshm_compat::oracle::Native;
use tmpshm_compat::preload::Interposers;

mod support;

const NAMES: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    /// `shm_open` with `O_RDWR` or `O_RDONLY`, optionally `O_CREAT` (then maybe `O_EXCL`)
    /// and, read-write only, `O_TRUNC`.
    Open {
        name: usize,
        rw: bool,
        creat: bool,
        excl: bool,
        trunc: bool,
    },
    Ftruncate {
        fd: usize,
        len: i64,
    },
    Write {
        fd: usize,
        off: i64,
        data: Vec<u8>,
    },
    Read {
        fd: usize,
        off: i64,
        len: usize,
    },
    Unlink {
        name: usize,
    },
    Close {
        fd: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..NAMES, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(name, rw, creat, excl, trunc)| Step::Open {
                name,
                rw,
                creat,
                excl: creat && excl,
                trunc: rw && trunc,
            }
        ),
        2 => (0..8usize, prop_oneof![Just(0i64), 1..64i64, 4000..4200i64])
            .prop_map(|(fd, len)| Step::Ftruncate { fd, len }),
        2 => (0..8usize, 0..80i64, proptest::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(fd, off, data)| Step::Write { fd, off, data }),
        2 => (0..8usize, 0..100i64, 0..24usize).prop_map(|(fd, off, len)| Step::Read { fd, off, len }),
        1 => (0..NAMES).prop_map(|name| Step::Unlink { name }),
        1 => (0..8usize).prop_map(|fd| Step::Close { fd }),
    ]
}

/// One implementation, its open fds, and the names it uses.
struct World {
    side: Side,
    fds: Vec<OwnedFd>,
    names: Vec<CString>,
}

impl World {
    fn fd(&self, i: usize) -> Option<&OwnedFd> {
        if self.fds.is_empty() {
            None
        } else {
            self.fds.get(i % self.fds.len())
        }
    }

    /// Applies a step; returns what a caller sees.
    fn apply(&mut self, s: &Step) -> String {
        let errno = |r: Result<usize, Errno>| match r {
            Ok(n) => format!("ok {n}"),
            Err(e) => format!("{e:?}"),
        };
        match s {
            Step::Open {
                name,
                rw,
                creat,
                excl,
                trunc,
            } => {
                let mut f = if *rw { libc::O_RDWR } else { libc::O_RDONLY };
                for (on, flag) in [
                    (*creat, libc::O_CREAT),
                    (*excl, libc::O_EXCL),
                    (*trunc, libc::O_TRUNC),
                ] {
                    if on {
                        f |= flag;
                    }
                }
                match self.side.open(&self.names[*name], f, 0o640) {
                    Ok(fd) => {
                        let seen = Outcome::of(fd.as_fd()).to_string();
                        self.fds.push(fd);
                        seen
                    }
                    Err(e) => format!("{e:?}"),
                }
            }
            Step::Ftruncate { fd, len } => match self.fd(*fd) {
                None => "no fd".into(),
                Some(fd) => errno(nix::unistd::ftruncate(fd, *len).map(|()| 0)),
            },
            Step::Write { fd, off, data } => match self.fd(*fd) {
                None => "no fd".into(),
                Some(fd) => errno(pwrite(fd.as_fd(), data, *off)),
            },
            Step::Read { fd, off, len } => match self.fd(*fd) {
                None => "no fd".into(),
                Some(fd) => {
                    let mut buf = vec![0u8; *len];
                    match pread(fd.as_fd(), &mut buf, *off) {
                        Ok(n) => format!("read {:?}", &buf[..n]),
                        Err(e) => format!("{e:?}"),
                    }
                }
            },
            Step::Unlink { name } => match self.side.unlink(&self.names[*name]) {
                Ok(()) => "ok".into(),
                Err(e) => format!("{e:?}"),
            },
            Step::Close { fd } => {
                if self.fds.is_empty() {
                    "no fd".into()
                } else {
                    let i = fd % self.fds.len();
                    drop(self.fds.remove(i));
                    "closed".into()
                }
            }
        }
    }

    /// What a read-only reopen of every name shows.
    fn snapshot(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|n| Outcome::of_fd(self.side.open(n, libc::O_RDONLY, 0)).to_string())
            .collect()
    }

    fn clean(&self) {
        for n in &self.names {
            let _ = self.side.unlink(n);
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The preload library, loaded once. The preload side sets the environment at every call:
/// this binary holds this one test, so no other thread reads it meanwhile.
fn interposers() -> Interposers {
    static LIB: std::sync::OnceLock<Interposers> = std::sync::OnceLock::new();
    LIB.get_or_init(|| Interposers::load(&support::library(support::Lib::Preload)).unwrap())
        .clone()
}

/// Whether the test must skip (said once): the native side is glibc's `shm_open`.
fn skipped() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| support::skip_without_glibc("random_sequences_agree"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_agree(steps in proptest::collection::vec(step(), 1..40)) {
        if skipped() {
            return Ok(());
        }
        let names: Vec<CString> = (0..NAMES)
            .map(|i| CString::new(format!("/tsc-prop-{}-{i}", std::process::id())).unwrap())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let preload_dir = tempfile::tempdir().unwrap();
        let mut native = World {
            side: Side::Native(Native::get().unwrap()),
            fds: Vec::new(),
            names: names.clone(),
        };
        let mut ours = World {
            side: Side::Tmpshm(ShmDir::new(dir.path())),
            fds: Vec::new(),
            names: names.clone(),
        };
        let mut preload = World {
            side: Side::Preload {
                lib: interposers(),
                dir: preload_dir.path().to_path_buf(),
                cross_user: false,
            },
            fds: Vec::new(),
            names,
        };
        native.clean();
        let mut log = Vec::new();
        let mut verdict = Ok(());
        for s in &steps {
            let (a, b, c) = (native.apply(s), ours.apply(s), preload.apply(s));
            log.push(format!("{s:?}: {a}"));
            if a != b || a != c {
                verdict = Err(format!(
                    "{s:?}: native {a}, ShmDir {b}, preload {c}\nafter:\n{}",
                    log.join("\n")
                ));
                break;
            }
        }
        if verdict.is_ok() {
            let (a, b, c) = (native.snapshot(), ours.snapshot(), preload.snapshot());
            if a != b || a != c {
                verdict = Err(format!("final state: native {a:?}, ShmDir {b:?}, preload {c:?}"));
            }
        }
        native.clean();
        if let Err(e) = verdict {
            return Err(TestCaseError::fail(e));
        }
    }
}
