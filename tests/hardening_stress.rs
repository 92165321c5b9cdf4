//! Hardening suite 1 (stress) and 6 (scale).
//!
//! Stress: several processes run a random mix of create-exclusive, open-or-create, open and
//! unlink on a few names for a bounded time. Invariants, checked by every process: at most
//! one `O_EXCL` creator per lifetime of a name; no errno but the expected ones; data written
//! under a name is read back by a second opener of the same file; no fd leaked (counted in
//! /proc/self/fd). Checked at the end: no lock file left.
//! Short form here; `TMPSHM_LONG=1` runs longer with more processes (see the README).

mod hardening_util;

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tmpshm::{OFlag, ShmDir};

use hardening_util::{
    entries_with_prefix, errno_of, fd_count, ident, pick, read_u64, seed, spawn, wait_all,
    write_u64, Rng,
};

const NAMES: [&str; 3] = ["/s0", "/s1", "/s2"];
/// Offset 0 holds the token of the O_EXCL creator of this file; workers write at 8 + 8 * i.
const CLAIM: u64 = 0;

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
            0 => match shm.open(name, rw | OFlag::O_CREAT | OFlag::O_EXCL, 0o600) {
                Ok(fd) => {
                    claim(File::from(fd), token)?;
                    created += 1;
                }
                Err(e) if errno_of(&e) == libc::EEXIST => {}
                Err(e) => return unexpected("create O_EXCL", &e),
            },
            1 => match shm.open(name, rw | OFlag::O_CREAT, 0o600) {
                Ok(fd) => {
                    let first = File::from(fd);
                    let off = 8 + 8 * index;
                    write_u64(&first, off, token)?;
                    match shm.open(name, OFlag::O_RDONLY, 0) {
                        Ok(second) => {
                            let same = ident(&second) == ident(&first);
                            let got = read_u64(&File::from(second), off);
                            if same && got != token {
                                return Err(format!(
                                    "{name}: wrote {token:#x}, a second opener of the same file read {got:#x}"
                                ));
                            }
                        }
                        Err(e) if errno_of(&e) == libc::ENOENT => {}
                        Err(e) => return unexpected("reopen", &e),
                    }
                }
                Err(e) => return unexpected("open O_CREAT", &e),
            },
            2 => match shm.open(name, OFlag::O_RDONLY, 0) {
                Ok(_) => {}
                Err(e) if errno_of(&e) == libc::ENOENT => {}
                Err(e) => return unexpected("open", &e),
            },
            _ => match shm.unlink(name) {
                Ok(()) => {}
                Err(e) if errno_of(&e) == libc::ENOENT => {}
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
            spawn(move || worker(&path, i, seed.wrapping_add(i), until))
        })
        .collect();
    let summaries = wait_all(children, run + Duration::from_secs(60), "stress worker");
    println!("stress: {}", summaries.join("; "));
    let locks = entries_with_prefix(dir.path(), ".SHML");
    assert!(locks.is_empty(), "lock files left behind: {locks:?}");
    let shm = ShmDir::new(dir.path());
    for name in NAMES {
        let _ = shm.unlink(name);
    }
    let rest = entries_with_prefix(dir.path(), "");
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
        shm.open(&*name(i), rw | OFlag::O_CREAT | OFlag::O_EXCL, 0o600)
            .unwrap_or_else(|e| panic!("create #{i}: {e}"));
    }
    let created = t.elapsed();
    // Every object opens; the time of the first and last thousand is printed, not asserted
    // (the benchmark's `scale` binary measures it properly).
    let mut times = Vec::new();
    for chunk in [0..1000, n - 1000..n] {
        let t = Instant::now();
        for i in chunk {
            shm.open(&*name(i), rw, 0)
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
    assert!(entries_with_prefix(dir.path(), ".SHML").is_empty());
    for i in 0..n {
        shm.unlink(&*name(i))
            .unwrap_or_else(|e| panic!("unlink #{i}: {e}"));
    }
    assert!(entries_with_prefix(dir.path(), "").is_empty());
    println!(
        "scale: {n} objects created in {created:?}; open {:?} per call (first 1000) vs {:?} (last 1000); ShmDir::list {listing:?}",
        times[0], times[1]
    );
}
