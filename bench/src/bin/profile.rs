//! Runs one tmpshm operation in a tight loop, for `perf record`, `strace -c` or
//! `valgrind --tool=callgrind`:
//! `profile [--capi] <open|create|creat-existing|excl-existing|floor|floor-fcntl|hammer|hammer8|hammer-classes> <iterations> [dir]`.
//! `--capi` calls the C entry point (`tmpshm::capi::shm_open`, what `tmpshm_shm_open` and the
//! preload library run, reading the environment at every call) instead of [`ShmDir`].
//! Prints ns per operation when done.

use std::ffi::CString;
use std::path::PathBuf;

use tmpshm::capi::{self, Names};
use tmpshm::{Mode, OFlag, ShmDir};

const RW_USER: Mode = Mode::S_IRUSR.union(Mode::S_IWUSR);
use tmpshm_bench::ns_per_op;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let capi = args.first().is_some_and(|a| a == "--capi");
    if capi {
        args.remove(0);
    }
    let usage = || -> ! {
        eprintln!(
            "usage: profile [--capi] <open|create|creat-existing|excl-existing|floor|floor-fcntl|hammer|hammer8|hammer-classes> <iterations> [dir]"
        );
        std::process::exit(2)
    };
    let (op, iters) = match args.as_slice() {
        [op, n, ..] => (op.as_str(), n.parse::<u32>().unwrap_or_else(|_| usage())),
        _ => usage(),
    };
    let dir = args.get(2).map_or_else(
        || PathBuf::from(format!("/dev/shm/tmpshm-profile-{}", std::process::id())),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    let shm = ShmDir::new(&dir);
    std::env::set_var(tmpshm::ENV_DIR, &dir);
    let rw = OFlag::O_RDWR;
    drop(shm.open("/existing", rw | OFlag::O_CREAT, RW_USER).unwrap());
    let (existing, fresh) = (
        CString::new("/existing").unwrap(),
        CString::new("/fresh").unwrap(),
    );
    let open = |name: &CString, flags: OFlag| -> Result<(), i32> {
        if capi {
            // SAFETY: a valid C string.
            let fd = unsafe { capi::shm_open(name.as_ptr(), flags.bits(), 0o600, Names::Strict) };
            if fd < 0 {
                return Err(tmpshm_bench::errno());
            }
            // SAFETY: our own new fd.
            unsafe { libc::close(fd) };
            Ok(())
        } else {
            shm.open(name.as_c_str(), flags, RW_USER)
                .map(drop)
                .map_err(|e| e.errno() as i32)
        }
    };
    let unlink = |name: &CString| {
        if capi {
            // SAFETY: a valid C string.
            assert_eq!(unsafe { capi::shm_unlink(name.as_ptr(), Names::Strict) }, 0);
        } else {
            shm.unlink(name.as_c_str()).unwrap();
        }
    };
    let ns = match op {
        "open" => ns_per_op(iters, || open(&existing, rw).unwrap()),
        "creat-existing" => ns_per_op(iters, || open(&existing, rw | OFlag::O_CREAT).unwrap()),
        "excl-existing" => ns_per_op(iters, || {
            let r = open(&existing, rw | OFlag::O_CREAT | OFlag::O_EXCL);
            assert_eq!(r, Err(libc::EEXIST));
        }),
        // The floor of an open: the bare calls of a checked open, on the same file.
        "floor" | "floor-fcntl" => {
            use tmpshm_bench::sys;
            let data =
                CString::new(dir.join(".SHMDexisting").as_os_str().as_encoded_bytes()).unwrap();
            let flags = libc::O_RDWR
                | libc::O_NOFOLLOW
                | libc::O_CLOEXEC
                | libc::O_NOCTTY
                | libc::O_NONBLOCK;
            let fcntl = op == "floor-fcntl";
            ns_per_op(iters, || {
                let fd = sys::open(&data, flags, 0);
                sys::fstat(fd);
                sys::geteuid();
                if fcntl {
                    sys::setfl(fd, 0);
                }
                sys::close(fd);
            })
        }
        // 4 processes on one name, 3/4 open(O_CREAT) + close, 1/4 unlink, `iterations` each:
        // the contention of `compare`, for strace -f and perf.
        "hammer" | "hammer8" => {
            let procs: u64 = if op == "hammer8" { 8 } else { 4 };
            let t = std::time::Instant::now();
            let mut kids = Vec::new();
            for k in 0..procs {
                // SAFETY: single-threaded; the child runs the loop and leaves with _exit.
                match unsafe { libc::fork() } {
                    0 => {
                        let mut rng = tmpshm_bench::Rng::new(0x9e37_79b9 * (k + 1));
                        let name = CString::new("/hammer").unwrap();
                        for _ in 0..iters {
                            if rng.below(4) < 3 {
                                open(&name, rw | OFlag::O_CREAT).unwrap();
                            } else if capi {
                                // SAFETY: a valid C string.
                                unsafe { capi::shm_unlink(name.as_ptr(), Names::Strict) };
                            } else {
                                let _ = shm.unlink(name.as_c_str());
                            }
                        }
                        // SAFETY: leaving the forked child.
                        unsafe { libc::_exit(0) }
                    }
                    pid => kids.push(pid),
                }
            }
            for pid in kids {
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
            let _ = shm.unlink("/hammer");
            t.elapsed().as_nanos() as f64 / (f64::from(iters) * procs as f64)
        }
        // The 4-process mix through a traced ShmDir: where each operation's time went (no lock,
        // a lock taken at once, a lock waited for) and how long the waits were.
        "hammer-classes" => {
            hammer_classes(&dir, iters);
            0.0
        }
        "create" => ns_per_op(iters, || {
            open(&fresh, rw | OFlag::O_CREAT | OFlag::O_EXCL).unwrap();
            unlink(&fresh);
        }),
        _ => usage(),
    };
    shm.unlink("/existing").unwrap();
    if args.get(2).is_none() {
        std::fs::remove_dir(&dir).unwrap();
    }
    let api = if capi { "C ABI" } else { "ShmDir" };
    println!("{op} ({api}): {ns:.0} ns/op over {iters} iterations");
}

/// See `hammer-classes` above: 4 processes, each prints one line per class of operation.
fn hammer_classes(dir: &std::path::Path, iters: u32) {
    use std::cell::Cell;
    use std::time::Instant;
    use tmpshm::Step;
    thread_local! {
        static WAITED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
        static WAIT_NS: Cell<u64> = const { Cell::new(0) };
        static LOCKED: Cell<bool> = const { Cell::new(false) };
        static RELEASED: Cell<bool> = const { Cell::new(false) };
    }
    let mut kids = Vec::new();
    for k in 0..4u64 {
        // SAFETY: single-threaded; the child runs the loop and leaves with _exit.
        match unsafe { libc::fork() } {
            0 => {
                let shm = ShmDir::new(dir).with_trace(|step| match step {
                    Step::LockWait { .. } => WAITED_AT.with(|w| w.set(Some(Instant::now()))),
                    Step::LockAcquired { .. } | Step::LockRetry { .. } => {
                        if let Some(t) = WAITED_AT.with(|w| w.take()) {
                            WAIT_NS.with(|n| n.set(n.get() + t.elapsed().as_nanos() as u64));
                        }
                        if matches!(step, Step::LockAcquired { .. }) {
                            LOCKED.with(|l| l.set(true));
                        } else {
                            RELEASED.with(|l| l.set(true));
                        }
                    }
                    _ => {}
                });
                let mut rng = tmpshm_bench::Rng::new(0x9e37_79b9 * (k + 1));
                // class -> latencies (ns), total wait ns
                let names = [
                    "open, no lock",
                    "created, lock at once",
                    "waited, then created",
                    "waited, released: opened",
                    "unlink",
                ];
                let mut lat: Vec<Vec<u64>> = vec![Vec::new(); names.len()];
                let mut waits = vec![0u64; names.len()];
                for _ in 0..iters {
                    WAIT_NS.with(|n| n.set(0));
                    LOCKED.with(|l| l.set(false));
                    RELEASED.with(|l| l.set(false));
                    let t = Instant::now();
                    let unlink = rng.below(4) == 3;
                    if unlink {
                        let _ = shm.unlink("/hammer");
                    } else {
                        drop(
                            shm.open("/hammer", OFlag::O_RDWR | OFlag::O_CREAT, RW_USER)
                                .unwrap(),
                        );
                    }
                    let ns = t.elapsed().as_nanos() as u64;
                    let w = WAIT_NS.with(|n| n.get());
                    let class = match (
                        unlink,
                        w > 0,
                        LOCKED.with(|l| l.get()),
                        RELEASED.with(|l| l.get()),
                    ) {
                        (true, ..) => 4,
                        (false, false, false, _) => 0,
                        (false, false, true, _) => 1,
                        (false, true, true, _) => 2,
                        (false, true, false, _) => 3,
                    };
                    lat[class].push(ns);
                    waits[class] += w;
                }
                for (i, mut l) in lat.into_iter().enumerate() {
                    l.sort_unstable();
                    let n = l.len().max(1) as u64;
                    println!(
                        "proc {k} | {} | {} ops | mean {} ns | p99 {} ns | max {} ns | mean flock wait {} ns",
                        names[i],
                        l.len(),
                        l.iter().sum::<u64>() / n,
                        tmpshm_bench::quantile(&l, 0.99),
                        l.last().copied().unwrap_or(0),
                        waits[i] / n
                    );
                }
                // SAFETY: leaving the forked child.
                unsafe { libc::_exit(0) }
            }
            pid => kids.push(pid),
        }
    }
    for pid in kids {
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    let _ = ShmDir::new(dir).unlink("/hammer");
}
