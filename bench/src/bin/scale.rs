//! Scale: open latency with 10 to 10,000 objects in one directory, the time to list them, and
//! the time to list a directory of lock files that live processes hold.
//!
//! `cargo run --release -p tmpshm-bench --bin scale` (`--quick` for a smoke run) prints a
//! Markdown table for a directory under /dev/shm (tmpfs) and one under /tmp.

use std::path::PathBuf;
use std::time::Instant;

use tmpshm::{Mode, OFlag, ShmDir};

const RW_USER: Mode = Mode::S_IRUSR.union(Mode::S_IWUSR);
use tmpshm_bench::{machine, median, ns_per_op, Rng};

fn main() {
    let quick = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--quick") => true,
        Some(other) => {
            eprintln!("usage: scale [--quick]   (unknown argument {other:?})");
            std::process::exit(2);
        }
    };
    let (steps, rounds, iters): (&[usize], usize, u32) = if quick {
        (&[10, 100], 3, 100)
    } else {
        (&[10, 100, 1000, 10_000], 41, 2000)
    };
    println!("Machine: {}\n", machine());
    println!(
        "| directory | objects | open existing + close ns, median of rounds | best round | ShmDir::list ms |"
    );
    println!("|---|---:|---:|---:|---:|");
    let pid = std::process::id();
    for base in ["/dev/shm", "/tmp"] {
        let dir = PathBuf::from(format!("{base}/tmpshm-scale-{pid}"));
        std::fs::create_dir(&dir).unwrap();
        let shm = ShmDir::new(&dir);
        let name = |i: usize| format!("/o{i}");
        let mut have = 0;
        let mut rng = Rng::new(u64::from(pid));
        for &n in steps {
            while have < n {
                drop(
                    shm.open(
                        &*name(have),
                        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
                        RW_USER,
                    )
                    .unwrap(),
                );
                have += 1;
            }
            // Random existing names, built before timing.
            let picks: Vec<String> = (0..iters)
                .map(|_| name(rng.below(n as u64) as usize))
                .collect();
            let mut samples: Vec<f64> = (0..rounds)
                .map(|_| {
                    let mut it = picks.iter().cycle();
                    ns_per_op(iters, || {
                        drop(
                            shm.open(&**it.next().unwrap(), OFlag::O_RDWR, Mode::empty())
                                .unwrap(),
                        )
                    })
                })
                .collect();
            let best = samples.iter().copied().fold(f64::INFINITY, f64::min);
            let open = median(&mut samples);
            let mut lists: Vec<f64> = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let inv = shm.list().unwrap();
                    assert_eq!(inv.objects.len(), n);
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            println!(
                "| {base} | {n} | {open:.0} | {best:.0} | {:.2} |",
                median(&mut lists)
            );
        }
        for i in 0..have {
            shm.unlink(&*name(i)).unwrap();
        }
        std::fs::remove_dir(&dir).unwrap();
    }
    let held: &[usize] = if quick { &[100] } else { &[1000, 10_000] };
    println!();
    println!("| directory | lock files held by a live process | ShmDir::list ms (median of 5) |");
    println!("|---|---:|---:|");
    for base in ["/dev/shm", "/tmp"] {
        for &n in held {
            let ms = list_held(&PathBuf::from(format!("{base}/tmpshm-held-{pid}")), n);
            println!("| {base} | {n} | {ms:.1} |");
        }
    }
}

/// Times `ShmDir::list` over `n` lock files, each held with `flock` by one child process.
fn list_held(dir: &std::path::Path, n: usize) -> f64 {
    use std::os::fd::AsRawFd;
    raise_fd_limit(n as u64 + 64);
    std::fs::create_dir(dir).unwrap();
    let paths: Vec<PathBuf> = (0..n).map(|i| dir.join(format!(".SHMLheld{i}"))).collect();
    let mut ready = [0; 2];
    // SAFETY: a two-element array for the two fds.
    assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
    // SAFETY: the child only opens, locks, writes one byte and sleeps until killed.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        // Die with the parent: a parent that fails must not leave this child holding its
        // locks, and its stdout, for an hour.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let held: Vec<std::fs::File> = paths
            .iter()
            .map(|p| {
                let f = std::fs::File::create(p).unwrap();
                tmpshm_bench::sys::flock(f.as_raw_fd(), libc::LOCK_EX);
                f
            })
            .collect();
        // SAFETY: writing one byte from a live buffer to our pipe.
        unsafe { libc::write(ready[1], b"!".as_ptr().cast(), 1) };
        std::thread::sleep(std::time::Duration::from_secs(3600));
        drop(held);
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(0) };
    }
    let mut b = 0u8;
    // SAFETY: reading one byte into a live buffer from our pipe.
    assert_eq!(
        unsafe { libc::read(ready[0], (&mut b as *mut u8).cast(), 1) },
        1
    );
    let shm = ShmDir::new(dir);
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let inv = shm.list().unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            // Held is decided by a flock probe; the pid comes from /proc/locks, which the
            // kernel does not read out atomically, so a file whose line was missed while other
            // processes took or dropped locks shows no pid. It never shows another one.
            let held = inv
                .locks
                .iter()
                .filter(|l| match l.state {
                    tmpshm::LockState::Held { pid: None } => true,
                    tmpshm::LockState::Held { pid: Some(p) } => p == child as u32,
                    _ => false,
                })
                .count();
            assert_eq!(held, n, "every lock file listed as held by the child");
            ms
        })
        .collect();
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
        libc::close(ready[0]);
        libc::close(ready[1]);
    }
    std::fs::remove_dir_all(dir).unwrap();
    median(&mut samples)
}

/// Raises the soft limit on open files to at least `want` (up to the hard limit).
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to fill and then pass back.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
