//! The adversary: as root, a child running as uid 65534 plants symbolic links, hard links,
//! FIFOs, directories, squatted data files and lock files (held or abandoned) at the paths of
//! the victim's names in a sticky, world-writable directory. First each plant alone, with the
//! exact errno expected; then the adversary races the victim in a loop. The victim never
//! follows a link, never truncates a foreign or multiply-linked file, never hangs, and gets a
//! clear errno. Short form here; `TMPSHM_LONG=1` races longer (see docs/hardening.md).

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg, OFlag as NixOFlag};
use nix::sys::stat::{fchmod, Mode};
use tmpshm::{OFlag, ShmDir};
use tmpshm_testkit::support::*;

const BAIT: &[u8] = b"the adversary's data, which no victim call may truncate";
const SECRET: &[u8] = b"root's file outside the object names";

/// What the adversary can put at a path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plant {
    Symlink,
    HardLink,
    Fifo,
    Dir,
    Squat,
    /// A lock file the adversary holds `flock` on (only at lock paths).
    HeldLock,
    /// A lock file nobody holds (only at lock paths).
    AbandonedLock,
}

const DATA_PLANTS: [Plant; 5] = [
    Plant::Symlink,
    Plant::HardLink,
    Plant::Fifo,
    Plant::Dir,
    Plant::Squat,
];
const LOCK_PLANTS: [Plant; 5] = [
    Plant::Symlink,
    Plant::Fifo,
    Plant::Dir,
    Plant::HeldLock,
    Plant::AbandonedLock,
];

/// Plants `what` at `at` as the current (adversary) user. A held lock is returned so the
/// caller decides how long to hold it. A plant that fails (the path is taken) is skipped:
/// the victim's behaviour is what the test checks.
fn plant(what: Plant, at: &Path, secret: &Path, bait: &Path) -> Option<Flock<OwnedFd>> {
    match what {
        Plant::Symlink => drop(std::os::unix::fs::symlink(secret, at)),
        Plant::HardLink => drop(fs::hard_link(bait, at)),
        Plant::Fifo => drop(nix::unistd::mkfifo(at, Mode::from_bits_truncate(0o666))),
        Plant::Dir => drop(fs::create_dir(at)),
        Plant::Squat | Plant::AbandonedLock | Plant::HeldLock => {
            let flags =
                NixOFlag::O_CREAT | NixOFlag::O_EXCL | NixOFlag::O_RDWR | NixOFlag::O_CLOEXEC;
            let fd = nix::fcntl::open(at, flags, Mode::from_bits_truncate(0o666)).ok()?;
            // Open to all (the umask would not let it be), as a squatter would make it.
            let _ = fchmod(fd.as_fd(), Mode::from_bits_truncate(0o666));
            match what {
                Plant::Squat => drop(nix::unistd::write(&fd, BAIT)),
                Plant::HeldLock => return Flock::lock(fd, FlockArg::LockExclusive).ok(),
                _ => {}
            }
        }
    }
    None
}

/// Removes whatever the adversary planted at `at` (its own files only: the sticky bit).
fn unplant(at: &Path) {
    if fs::remove_file(at).is_err() {
        let _ = fs::remove_dir(at);
    }
}

struct Scene {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    secret: PathBuf,
    bait: PathBuf,
}

fn scene() -> Scene {
    let d = shared_tempdir();
    let dir = d.path().to_path_buf();
    let secret = dir.join("secret");
    fs::write(&secret, SECRET).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let bait = dir.join("bait");
    Scene {
        _dir: d,
        dir,
        secret,
        bait,
    }
}

/// Runs `f` as the adversary in a child and waits for it.
fn as_adversary(f: impl FnOnce() -> Result<(), String>) {
    fork_child(move || {
        become_nobody()?;
        f().map(|()| "")
    })
    .wait(Duration::from_secs(30), "adversary")
    .unwrap_or_else(|e| panic!("{e}"));
}

fn intact(s: &Scene) {
    assert_eq!(
        fs::read(&s.secret).unwrap(),
        SECRET,
        "root's file was changed"
    );
    if let Ok(b) = fs::read(&s.bait) {
        assert_eq!(
            b, BAIT,
            "the adversary's bait file was truncated or written"
        );
    }
}

fn errno(r: tmpshm::Result<std::os::fd::OwnedFd>) -> i32 {
    match r {
        Ok(fd) => panic!(
            "opened {:?} despite the plant",
            nix::sys::stat::fstat(fd.as_fd())
        ),
        Err(e) => e.raw_os_error(),
    }
}

#[test]
fn each_plant_alone_gets_a_clear_errno() {
    if skip_unless_root("each_plant_alone_gets_a_clear_errno") {
        return;
    }
    let s = scene();
    let shm = ShmDir::new(&s.dir);
    let rw = OFlag::O_RDWR;
    let trunc = rw | OFlag::O_CREAT | OFlag::O_TRUNC;
    let (bait, secret) = (s.bait.clone(), s.secret.clone());
    as_adversary(move || {
        fs::write(&bait, BAIT).map_err(|e| e.to_string())?;
        let _ = secret;
        Ok(())
    });
    // At the data path: (plant, open O_RDWR|O_CREAT|O_TRUNC, open O_RDONLY, unlink).
    let data_cases = [
        (Plant::Symlink, libc::ELOOP, libc::ELOOP),
        (Plant::HardLink, libc::EPERM, libc::EPERM),
        (Plant::Fifo, libc::EINVAL, libc::EINVAL),
        (Plant::Dir, libc::EINVAL, libc::EINVAL),
        (Plant::Squat, libc::EPERM, libc::EPERM),
    ];
    for (what, want_rw, want_ro) in data_cases {
        let at = s.dir.join(".SHMDp");
        let (at2, secret, bait) = (at.clone(), s.secret.clone(), s.bait.clone());
        as_adversary(move || {
            plant(what, &at2, &secret, &bait);
            Ok(())
        });
        let t = Instant::now();
        assert_eq!(
            errno(shm.open("/p", trunc, perm(0o600))),
            want_rw,
            "{what:?}: O_RDWR|O_CREAT|O_TRUNC"
        );
        assert_eq!(
            errno(shm.open("/p", OFlag::O_RDONLY, Mode::empty())),
            want_ro,
            "{what:?}: O_RDONLY"
        );
        assert_eq!(
            errno(shm.open("/p", rw | OFlag::O_CREAT | OFlag::O_EXCL, perm(0o600))),
            libc::EEXIST,
            "{what:?}: O_EXCL"
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{what:?}: hang");
        intact(&s);
        // Root may remove anything, even in a sticky directory; a directory is refused.
        match (what, shm.unlink("/p")) {
            (Plant::Dir, Err(e)) => assert_eq!(e.raw_os_error(), libc::EINVAL),
            (_, r) => r.unwrap_or_else(|e| panic!("{what:?}: unlink: {e}")),
        }
        unplant(&at);
        intact(&s);
    }
    // A file of ours that the adversary hard-linked elsewhere (it may: mode 0666).
    let fd = shm
        .open("/mine", rw | OFlag::O_CREAT | OFlag::O_EXCL, perm(0o600))
        .unwrap();
    fchmod(fd.as_fd(), Mode::from_bits_truncate(0o666)).unwrap();
    nix::unistd::write(&fd, b"ours").unwrap();
    drop(fd);
    let (mine, copy) = (s.dir.join(".SHMDmine"), s.dir.join("adversary-link"));
    let copy2 = copy.clone();
    as_adversary(move || fs::hard_link(&mine, &copy2).map_err(|e| format!("link: {e}")));
    assert_eq!(
        errno(shm.open("/mine", trunc, perm(0o600))),
        libc::EPERM,
        "multiply-linked"
    );
    assert_eq!(
        fs::read(&copy).unwrap(),
        b"ours",
        "a multiply-linked file was truncated"
    );
    shm.unlink("/mine").unwrap();
    // At the lock path of a name that does not exist yet: creating it must take the lock.
    for what in LOCK_PLANTS {
        let at = s.dir.join(".SHMLq");
        let (at2, secret, bait) = (at.clone(), s.secret.clone(), s.bait.clone());
        // A held lock must stay held while the victim tries: the holder keeps running.
        let holder = fork_child(move || {
            become_nobody()?;
            let held = plant(what, &at2, &secret, &bait);
            if what == Plant::HeldLock {
                std::thread::sleep(Duration::from_secs(60));
            }
            drop(held);
            Ok("")
        });
        let until = Instant::now() + Duration::from_secs(10);
        while !at.exists() && fs::symlink_metadata(&at).is_err() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        if what == Plant::HeldLock {
            std::thread::sleep(Duration::from_millis(50));
        }
        let t = Instant::now();
        let got = errno(shm.open("/q", rw | OFlag::O_CREAT, perm(0o600)));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what:?} at the lock path: hang"
        );
        // O_CREAT|O_NOFOLLOW on another user's symlink in a sticky directory: this kernel
        // answers EACCES even to root (others answer ELOOP); either way it is not followed.
        let want: &[i32] = match what {
            Plant::Symlink => &[libc::ELOOP, libc::EACCES],
            Plant::Fifo | Plant::Dir => &[libc::EINVAL],
            _ => &[libc::EPERM],
        };
        assert!(
            want.contains(&got),
            "{what:?} at the lock path: errno {got}, want {want:?}"
        );
        assert!(
            !s.dir.join(".SHMDq").exists(),
            "{what:?}: created without the lock"
        );
        holder.kill();
        unplant(&at);
        intact(&s);
    }
}

/// The victim's loop: random operations; every result must be a regular file of ours or an
/// expected errno, and no call may take long.
fn victim(dir: &Path, secret: (u64, u64), seed: u64, until: Instant) -> Result<String, String> {
    let shm = ShmDir::new(dir);
    let mut rng = Rng::new(seed);
    let rw = OFlag::O_RDWR;
    let fds = fd_count();
    let mut tally: std::collections::BTreeMap<String, u64> = Default::default();
    while Instant::now() < until {
        let name = ["/v0", "/v1"][rng.below(2) as usize];
        let t = Instant::now();
        let r = match rng.below(5) {
            0 => shm.open(name, rw | OFlag::O_CREAT | OFlag::O_TRUNC, perm(0o600)),
            1 => shm.open(name, OFlag::O_RDONLY, Mode::empty()),
            2 => shm.open(name, rw | OFlag::O_CREAT | OFlag::O_EXCL, perm(0o600)),
            3 => shm.open(name, rw | OFlag::O_CREAT, perm(0o600)),
            _ => match shm.unlink(name) {
                Ok(()) => {
                    *tally.entry("unlinked".into()).or_default() += 1;
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        let took = t.elapsed();
        if took > Duration::from_secs(5) {
            return Err(format!("{name}: one call took {took:?}"));
        }
        match r {
            Ok(fd) => {
                let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| e.to_string())?;
                if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != 0 {
                    return Err(format!(
                        "{name}: got mode {:o} uid {}",
                        st.st_mode, st.st_uid
                    ));
                }
                if (st.st_dev, st.st_ino) == secret {
                    return Err(format!("{name}: followed a link to root's file"));
                }
                *tally.entry("opened".into()).or_default() += 1;
            }
            Err(e) => {
                let n = e.raw_os_error();
                let clear = [
                    libc::ENOENT,
                    libc::EEXIST,
                    libc::EPERM,
                    libc::EACCES,
                    libc::ELOOP,
                    libc::EINVAL,
                ];
                if !clear.contains(&n) {
                    return Err(format!("{name}: unexpected error {e}"));
                }
                *tally.entry(format!("{:?}", e.errno())).or_default() += 1;
            }
        }
    }
    if fd_count() != fds {
        return Err(format!("fd leak: {fds} before, {} after", fd_count()));
    }
    Ok(format!("{tally:?}"))
}

#[test]
fn racing_adversary_never_wins() {
    if skip_unless_root("racing_adversary_never_wins") {
        return;
    }
    let run = pick(Duration::from_millis(1500), Duration::from_secs(60));
    let seed = seed();
    println!("adversary: {run:?}, TMPSHM_SEED={seed}");
    let s = scene();
    let meta = fs::metadata(&s.secret).unwrap();
    let secret_id = (meta.dev(), meta.ino());
    let until = Instant::now() + run;
    let (dir, secret, bait) = (s.dir.clone(), s.secret.clone(), s.bait.clone());
    let adversary = fork_child(move || {
        become_nobody()?;
        fs::write(&bait, BAIT).map_err(|e| e.to_string())?;
        let mut rng = Rng::new(seed ^ 0xad);
        let mut held = Vec::new();
        let mut planted = 0u64;
        while Instant::now() < until {
            planted += 1;
            let name = ["v0", "v1"][rng.below(2) as usize];
            let (at, what) = if rng.below(2) == 0 {
                (
                    dir.join(format!(".SHMD{name}")),
                    DATA_PLANTS[rng.below(5) as usize],
                )
            } else {
                (
                    dir.join(format!(".SHML{name}")),
                    LOCK_PLANTS[rng.below(5) as usize],
                )
            };
            if let Some(fd) = plant(what, &at, &secret, &bait) {
                held.push(fd);
            }
            if rng.below(3) == 0 {
                unplant(&at);
            }
            if held.len() > 2 || rng.below(4) == 0 {
                held.clear();
            }
            std::thread::sleep(Duration::from_micros(rng.below(300)));
        }
        Ok(format!("{planted} plants"))
    });
    let dir = s.dir.clone();
    let victims: Vec<_> = (0..2)
        .map(|i| {
            let dir = dir.clone();
            fork_child(move || victim(&dir, secret_id, seed.wrapping_add(i), until))
        })
        .collect();
    let mut errors = Vec::new();
    for v in victims {
        match v.wait(run + Duration::from_secs(60), "victim") {
            Ok(tally) => println!("adversary: victim calls {tally}"),
            Err(e) => errors.push(e),
        }
    }
    match adversary.wait(run + Duration::from_secs(60), "adversary") {
        Ok(summary) => println!("adversary: {summary}"),
        Err(e) => errors.push(e),
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    intact(&s);
}
