//! Stress, scale and fd leaks.
//!
//! Stress: several processes run a random mix of create-exclusive, open-or-create, open and
//! unlink on a few names for a bounded time. Invariants, checked by every process: at most
//! one `O_EXCL` creator per lifetime of a name; no errno but the expected ones; data written
//! under a name is read back by a second opener of the same file; no fd leaked (counted in
//! /proc/self/fd). Checked at the end: no lock file left.
//! Scale: 10,000 objects in one directory.
//! Fd leaks: many operations, successes and every kind of failure, leak no fd and leave no
//! lock file.
//! Short form here; `TMPSHM_LONG=1` runs longer with more processes (see docs/hardening.md).

use std::fs::File;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tmpshm::{Access, Mapping, Mode, OFlag, ShmDir};
use tmpshm_testkit::support::*;

const NAMES: [&str; 3] = ["/s0", "/s1", "/s2"];
/// Offset 0 holds the token of the O_EXCL creator of this file; workers write at 8 + 8 * i.
const CLAIM: u64 = 0;

/// `(st_dev, st_ino)` of an fd.
fn ident(fd: impl std::os::fd::AsFd) -> (u64, u64) {
    let st = nix::sys::stat::fstat(fd.as_fd()).expect("fstat");
    (st.st_dev, st.st_ino)
}

/// Reads the 8 bytes at `off` (0 if the file is shorter).
fn read_u64(f: &File, off: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 8];
    match f.read_at(&mut b, off) {
        Ok(8) => u64::from_le_bytes(b),
        _ => 0,
    }
}

/// Writes 8 bytes at `off`.
fn write_u64(f: &File, off: u64, v: u64) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(&v.to_le_bytes(), off)
        .map_err(|e| format!("pwrite at {off}: {e}"))
}

/// Marks `f` as created by `token`; fails if another O_EXCL creator already claimed it.
fn claim(f: File, token: u64) -> Result<(), String> {
    // The flock orders two (buggy) creators of the same file; openers never take it.
    let locked = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| format!("flock: {e}"))?;
    let before = read_u64(&locked, CLAIM);
    if before != 0 {
        return Err(format!(
            "two O_EXCL creators of one file: {before:#x} then {token:#x}"
        ));
    }
    write_u64(&locked, CLAIM, token)
}

fn worker(dir: &Path, index: u64, seed: u64, until: Instant) -> Result<String, String> {
    let shm = ShmDir::new(dir);
    let fds_before = fd_count();
    let mut rng = Rng::new(seed);
    let rw = OFlag::O_RDWR;
    let mut n = 0u64;
    let mut created = 0u64;
    while Instant::now() < until {
        n += 1;
        let token = (u64::from(std::process::id()) << 32) | n;
        let name = NAMES[rng.below(NAMES.len() as u64) as usize];
        let unexpected = |op: &str, e: &tmpshm::Error| Err(format!("{op} {name}: {e}"));
        match rng.below(4) {
            0 => match shm.open(name, rw | OFlag::O_CREAT | OFlag::O_EXCL, perm(0o600)) {
                Ok(fd) => {
                    claim(File::from(fd), token)?;
                    created += 1;
                }
                Err(e) if e.raw_os_error() == libc::EEXIST => {}
                Err(e) => return unexpected("create O_EXCL", &e),
            },
            1 => match shm.open(name, rw | OFlag::O_CREAT, perm(0o600)) {
                Ok(fd) => {
                    let first = File::from(fd);
                    let off = 8 + 8 * index;
                    write_u64(&first, off, token)?;
                    match shm.open(name, OFlag::O_RDONLY, Mode::empty()) {
                        Ok(second) => {
                            let same = ident(&second) == ident(&first);
                            let got = read_u64(&File::from(second), off);
                            if same && got != token {
                                return Err(format!(
                                    "{name}: wrote {token:#x}, a second opener of the same file read {got:#x}"
                                ));
                            }
                        }
                        Err(e) if e.raw_os_error() == libc::ENOENT => {}
                        Err(e) => return unexpected("reopen", &e),
                    }
                }
                Err(e) => return unexpected("open O_CREAT", &e),
            },
            2 => match shm.open(name, OFlag::O_RDONLY, Mode::empty()) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == libc::ENOENT => {}
                Err(e) => return unexpected("open", &e),
            },
            _ => match shm.unlink(name) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == libc::ENOENT => {}
                Err(e) => return unexpected("unlink", &e),
            },
        }
    }
    let fds_after = fd_count();
    if fds_after != fds_before {
        return Err(format!(
            "fd leak: {fds_before} fds before, {fds_after} after {n} operations"
        ));
    }
    if n < 10 {
        return Err(format!("only {n} operations ran; the test proved nothing"));
    }
    Ok(format!("{n} operations, {created} exclusive creations"))
}

#[test]
fn stress_mixed_operations_keep_the_invariants() {
    let procs: u64 = pick(4, 8);
    let run = pick(Duration::from_millis(1500), Duration::from_secs(60));
    let seed = seed();
    println!("stress: {procs} processes x {run:?}, TMPSHM_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let until = Instant::now() + run;
    let children = (0..procs)
        .map(|i| {
            let path = dir.path().to_path_buf();
            fork_child(move || worker(&path, i, seed.wrapping_add(i), until))
        })
        .collect();
    let summaries = wait_all(children, run + Duration::from_secs(60), "stress worker");
    println!("stress: {}", summaries.join("; "));
    let locks = lock_files(dir.path());
    assert!(locks.is_empty(), "lock files left behind: {locks:?}");
    let shm = ShmDir::new(dir.path());
    for name in NAMES {
        let _ = shm.unlink(name);
    }
    let rest = entries(dir.path());
    assert!(rest.is_empty(), "unexpected files: {rest:?}");
}

#[test]
fn scale_ten_thousand_objects_in_one_directory() {
    let n = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(dir.path());
    let rw = OFlag::O_RDWR;
    let name = |i: usize| format!("/scale-{i:05}");
    let t = Instant::now();
    for i in 0..n {
        shm.open(&*name(i), rw | OFlag::O_CREAT | OFlag::O_EXCL, perm(0o600))
            .unwrap_or_else(|e| panic!("create #{i}: {e}"));
    }
    let created = t.elapsed();
    // Every object opens; the time of the first and last thousand is printed, not asserted
    // (the benchmark's `scale` binary measures it properly).
    let mut times = Vec::new();
    for chunk in [0..1000, n - 1000..n] {
        let t = Instant::now();
        for i in chunk {
            shm.open(&*name(i), rw, Mode::empty())
                .unwrap_or_else(|e| panic!("open #{i}: {e}"));
        }
        times.push(t.elapsed() / 1000);
    }
    let t = Instant::now();
    let inv = shm.list().unwrap();
    let listing = t.elapsed();
    assert_eq!(inv.objects.len(), n);
    assert!(inv
        .objects
        .iter()
        .enumerate()
        .all(|(i, o)| o.name == *name(i)));
    assert!(inv.locks.is_empty(), "{:?}", inv.locks);
    assert!(lock_files(dir.path()).is_empty());
    for i in 0..n {
        shm.unlink(&*name(i))
            .unwrap_or_else(|e| panic!("unlink #{i}: {e}"));
    }
    assert!(entries(dir.path()).is_empty());
    println!(
        "scale: {n} objects created in {created:?}; open {:?} per call (first 1000) vs {:?} (last 1000); ShmDir::list {listing:?}",
        times[0], times[1]
    );
}

#[test]
fn no_fd_leak_and_no_lock_file_over_many_operations() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let p = d.path();
    symlink("/etc/passwd", p.join(".SHMDlink")).unwrap();
    symlink("/etc/passwd", p.join(".SHMLlocklink")).unwrap();
    std::fs::create_dir(p.join(".SHMDdir")).unwrap();
    nix::unistd::mkfifo(&p.join(".SHMDfifo"), Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::write(p.join("target"), b"x").unwrap();
    std::fs::hard_link(p.join("target"), p.join(".SHMDhard")).unwrap();
    let rw = OFlag::O_RDWR;
    let c = OFlag::O_CREAT;
    let x = OFlag::O_EXCL;
    // Counted in a forked child, where no other test of this binary opens fds meanwhile.
    let ops = fork_child(|| {
        let before = fd_count();
        for i in 0..500 {
            let name = format!("/obj{}", i % 7);
            let fd = shm.open(name.as_str(), c | rw, perm(0o600)).unwrap();
            nix::unistd::ftruncate(&fd, 4096).unwrap();
            let m = Mapping::new(&fd, 4096, Access::ReadWrite).unwrap();
            m.write_at(0, b"data").unwrap();
            assert!(Mapping::new(&fd, 8192, Access::ReadWrite).is_err());
            drop((m, fd));
            let _ = shm
                .open(name.as_str(), c | x | rw, perm(0o600))
                .unwrap_err();
            drop(
                shm.open(name.as_str(), OFlag::O_RDONLY, Mode::empty())
                    .unwrap(),
            );
            drop(
                shm.open(name.as_str(), rw | OFlag::O_TRUNC, Mode::empty())
                    .unwrap(),
            );
            for bad in [
                "/link",
                "/dir",
                "/fifo",
                "/hard",
                "/locklink",
                "bad",
                "/a/b",
                "",
            ] {
                let _ = shm.open(bad, OFlag::O_RDONLY, Mode::empty()).unwrap_err();
                let _ = shm.open(bad, c | rw, perm(0o600)).unwrap_err();
                let _ = shm.open(bad, c | x | rw, perm(0o600)).unwrap_err();
            }
            let _ = shm.open("/w", OFlag::O_WRONLY, Mode::empty()).unwrap_err();
            let _ = shm.open("/missing", rw, Mode::empty()).unwrap_err();
            if i % 3 == 0 {
                shm.unlink(name.as_str()).unwrap();
                let _ = shm.unlink(name.as_str()).unwrap_err();
            }
        }
        assert_eq!(fd_count(), before, "fds leaked");
        Ok::<_, String>("")
    });
    ops.wait(Duration::from_secs(120), "the operations")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        lock_files(p),
        vec![".SHMLlocklink".to_string()],
        "only our plant is left"
    );
}
