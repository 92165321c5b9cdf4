//! Side-by-side benchmark: tmpshm against the system's native `shm_open`, on the same tmpfs.
//!
//! `cargo run --release -p tmpshm-bench --bin compare` prints Markdown tables of nanoseconds
//! per operation and ratios to native; `--quick` is a smoke run that only checks it works.
//! Every figure is the median of several rounds, and the rounds interleave the contenders, so
//! a burst of load from elsewhere hits all of them alike.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tmpshm::{Mode, OFlag, ShmDir};
use tmpshm_bench::{machine, median, native_open, native_unlink, ns_per_op, quantile, Rng};

/// One contender: the native call, or tmpshm in a directory.
enum Target {
    Native { prefix: String },
    Tmpshm { shm: ShmDir },
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Native { .. } => "native /dev/shm".into(),
            Target::Tmpshm { shm } => format!("tmpshm {}", shm.dir().display()),
        }
    }

    /// The name of object `what` for this contender (native names share /dev/shm with
    /// everyone, so they carry the pid).
    fn name(&self, what: &str) -> CString {
        match self {
            Target::Native { prefix } => CString::new(format!("/{prefix}-{what}")).unwrap(),
            Target::Tmpshm { .. } => CString::new(format!("/{what}")).unwrap(),
        }
    }

    fn open(&self, name: &CString, flags: OFlag, mode: u32) -> Result<(), i32> {
        match self {
            Target::Native { .. } => native_open(name, flags.bits(), mode).map(drop),
            Target::Tmpshm { shm } => shm
                .open(name.as_c_str(), flags, Mode::from_bits_retain(mode))
                .map(drop)
                .map_err(|e| e.errno() as i32),
        }
    }

    fn unlink(&self, name: &CString) -> Result<(), i32> {
        match self {
            Target::Native { .. } => native_unlink(name),
            Target::Tmpshm { shm } => shm.unlink(name.as_c_str()).map_err(|e| e.errno() as i32),
        }
    }
}

struct Config {
    rounds: usize,
    iters: u32,
    hammer: Duration,
    procs: usize,
}

const RW: OFlag = OFlag::O_RDWR;

fn must(r: Result<(), i32>, what: &str) {
    if let Err(e) = r {
        eprintln!("{what}: {}", std::io::Error::from_raw_os_error(e));
        std::process::exit(1);
    }
}

/// Median and best ns/op over `cfg.rounds` rounds of each micro-operation, for every target.
fn micro(targets: &[Target], cfg: &Config) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let mut samples = vec![[Vec::new(), Vec::new(), Vec::new()]; targets.len()];
    for t in targets {
        must(
            t.open(&t.name("existing"), RW | OFlag::O_CREAT, 0o600),
            "setup",
        );
    }
    for _ in 0..cfg.rounds {
        for (t, s) in targets.iter().zip(samples.iter_mut()) {
            let existing = t.name("existing");
            let fresh = t.name("fresh");
            s[0].push(ns_per_op(cfg.iters, || {
                must(t.open(&existing, RW, 0), "open existing")
            }));
            s[1].push(ns_per_op(cfg.iters / 2, || {
                must(
                    t.open(&fresh, RW | OFlag::O_CREAT | OFlag::O_EXCL, 0o600),
                    "create",
                );
                must(t.unlink(&fresh), "unlink");
            }));
            s[2].push(ns_per_op(cfg.iters, || {
                must(
                    t.open(&existing, RW | OFlag::O_CREAT, 0o600),
                    "open O_CREAT",
                )
            }));
        }
    }
    for t in targets {
        must(t.unlink(&t.name("existing")), "cleanup");
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let mins = samples
        .iter()
        .map(|s| [best(&s[0]), best(&s[1]), best(&s[2])])
        .collect();
    let medians = samples
        .into_iter()
        .map(|mut s| [median(&mut s[0]), median(&mut s[1]), median(&mut s[2])])
        .collect();
    (medians, mins)
}

struct Hammer {
    ops_per_s: f64,
    p99_ns: u64,
    max_ns: u64,
    errors: u64,
}

/// The worker of one hammering process: mixed ops on one name until `until`; latencies
/// (ns) go to `out` as little-endian u32s after two u64 counters (ops, unexpected errors).
fn hammer_worker(
    t: &Target,
    name: &CString,
    seed: u64,
    start: Instant,
    until: Instant,
    out: &Path,
) {
    let mut rng = Rng::new(seed);
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut errors = 0u64;
    while Instant::now() < start {
        std::hint::spin_loop();
    }
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        let r = if rng.below(3) < 2 {
            t.open(name, RW | OFlag::O_CREAT, 0o600)
        } else {
            match t.unlink(name) {
                Err(libc::ENOENT) => Ok(()),
                other => other,
            }
        };
        let ns = t0.elapsed().as_nanos();
        if r.is_err() {
            errors += 1;
        }
        lat.push(u32::try_from(ns).unwrap_or(u32::MAX));
    }
    let mut buf = Vec::with_capacity(16 + lat.len() * 4);
    buf.extend_from_slice(&(lat.len() as u64).to_le_bytes());
    buf.extend_from_slice(&errors.to_le_bytes());
    for l in lat {
        buf.extend_from_slice(&l.to_le_bytes());
    }
    let ok = fs::File::create(out)
        .and_then(|mut f| f.write_all(&buf))
        .is_ok();
    // SAFETY: _exit ends the forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

fn hammer(t: &Target, cfg: &Config, scratch: &Path) -> Hammer {
    let name = t.name("hammer");
    let start = Instant::now() + Duration::from_millis(100);
    let until = start + cfg.hammer;
    let mut pids = Vec::new();
    for i in 0..cfg.procs {
        let out = scratch.join(format!("hammer-{i}"));
        // SAFETY: this program is single-threaded, so the child may run ordinary code.
        match unsafe { libc::fork() } {
            0 => hammer_worker(t, &name, 0x9e37_79b9 * (i as u64 + 1), start, until, &out),
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            pid => pids.push((pid, out)),
        }
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for (pid, out) in pids {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "hammer worker failed: status {status:#x}"
        );
        let mut buf = Vec::new();
        fs::File::open(&out).unwrap().read_to_end(&mut buf).unwrap();
        fs::remove_file(&out).unwrap();
        errors += u64::from_le_bytes(buf[8..16].try_into().unwrap());
        all.extend(
            buf[16..]
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes(c.try_into().unwrap()))),
        );
    }
    let _ = t.unlink(&name);
    all.sort_unstable();
    Hammer {
        ops_per_s: all.len() as f64 / cfg.hammer.as_secs_f64(),
        p99_ns: quantile(&all, 0.99),
        max_ns: all.last().copied().unwrap_or(0),
        errors,
    }
}

/// A labelled sequence of bare syscalls.
type Floor<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// The bare syscalls each tmpshm operation must make, timed on the same files: the floor
/// under its figures, and so the bound on its ratio to native.
fn floors(
    shm_dir: &Path,
    native_open: f64,
    ours_open: f64,
    native_create: f64,
    ours_create: f64,
    cfg: &Config,
) {
    use tmpshm_bench::sys;
    let pid = std::process::id();
    let native = CString::new(format!("/dev/shm/tmpshm-bench-{pid}-floor")).unwrap();
    let data = CString::new(format!("{}/.SHMDfloor", shm_dir.display())).unwrap();
    let lock = CString::new(format!("{}/.SHMLfloor", shm_dir.display())).unwrap();
    let fresh = CString::new(format!("{}/.SHMDfresh", shm_dir.display())).unwrap();
    let plain = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let ours = plain | libc::O_NOCTTY;
    sys::close(sys::open(&native, plain | libc::O_CREAT, 0o600));
    sys::close(sys::open(&data, plain | libc::O_CREAT, 0o600));
    let steps: [Floor<'_>; 6] = [
        ("open(/dev/shm/x) + close: what glibc does", Box::new(|| sys::close(sys::open(&native, plain, 0)))),
        ("open(<dir>/.SHMDx) + close: one more path component", Box::new(|| sys::close(sys::open(&data, ours, 0)))),
        ("... + fstat (type, owner, links)", Box::new(|| {
            let fd = sys::open(&data, ours, 0);
            sys::fstat(fd);
            sys::close(fd);
        })),
        ("... + geteuid: the floor of tmpshm's open", Box::new(|| {
            let fd = sys::open(&data, ours, 0);
            sys::fstat(fd);
            sys::geteuid();
            sys::close(fd);
        })),
        ("open(O_CREAT\\|O_EXCL) + close + unlink: what glibc does", Box::new(|| {
            sys::close(sys::open(&fresh, plain | libc::O_CREAT | libc::O_EXCL, 0o600));
            sys::unlink(&fresh);
        })),
        ("... + the lock: open(O_CREAT) + flock + fstat + unlink + flock(LOCK_UN) + close, + geteuid: the floor of tmpshm's create", Box::new(|| {
            sys::geteuid();
            let l = sys::open(&lock, libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK, 0o666);
            sys::flock(l, libc::LOCK_EX | libc::LOCK_NB);
            sys::fstat(l);
            sys::close(sys::open(&fresh, ours | libc::O_CREAT | libc::O_EXCL, 0o600));
            sys::unlink(&lock);
            sys::flock(l, libc::LOCK_UN);
            sys::close(l);
            sys::unlink(&fresh);
        })),
    ];
    let mut samples = vec![Vec::new(); steps.len()];
    for _ in 0..cfg.rounds {
        for ((_, f), s) in steps.iter().zip(samples.iter_mut()) {
            s.push(ns_per_op(cfg.iters / 2, f));
        }
    }
    sys::unlink(&native);
    sys::unlink(&data);
    println!("| bare syscalls, same files (where the time goes) | ns | ratio to the native call |");
    println!("|---|---:|---:|");
    for (i, ((what, _), s)) in steps.iter().zip(samples.iter_mut()).enumerate() {
        let base = if i < 4 { native_open } else { native_create };
        let m = median(s);
        println!("| {what} | {m:.0} | {:.2}x |", m / base);
    }
    println!(
        "| tmpshm open existing + close (from the first table) | {ours_open:.0} | {:.2}x |",
        ours_open / native_open
    );
    println!(
        "| tmpshm create + close + unlink (from the first table) | {ours_create:.0} | {:.2}x |",
        ours_create / native_create
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(bad) = args.iter().find(|a| *a != "--quick") {
        eprintln!("usage: compare [--quick]   (unknown argument {bad:?})");
        std::process::exit(2);
    }
    let cfg = if quick {
        Config {
            rounds: 1,
            iters: 200,
            hammer: Duration::from_millis(200),
            procs: 4,
        }
    } else {
        Config {
            rounds: 41,
            iters: 4_000,
            hammer: Duration::from_secs(3),
            procs: 4,
        }
    };
    let pid = std::process::id();
    let shm_dir = PathBuf::from(format!("/dev/shm/tmpshm-bench-{pid}"));
    let tmp_dir = PathBuf::from(format!("/tmp/tmpshm-bench-{pid}"));
    for d in [&shm_dir, &tmp_dir] {
        fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    let targets = [
        Target::Native {
            prefix: format!("tmpshm-bench-{pid}"),
        },
        Target::Tmpshm {
            shm: ShmDir::new(&shm_dir),
        },
        Target::Tmpshm {
            shm: ShmDir::new(&tmp_dir),
        },
    ];
    println!("Machine: {}", machine());
    println!(
        "tmpshm directories: {} ({}), {} ({}); {} rounds x {} iterations; hammer {} processes x {:?}\n",
        shm_dir.display(),
        tmpshm_bench::fs_type(&shm_dir),
        tmp_dir.display(),
        tmpshm_bench::fs_type(&tmp_dir),
        cfg.rounds,
        cfg.iters,
        cfg.procs,
        cfg.hammer
    );
    let (m, best) = micro(&targets, &cfg);
    let ops = [
        ("open existing + close", Some(1.3)),
        ("create (O_CREAT\\|O_EXCL) + close + unlink", Some(2.5)),
        ("open O_CREAT of an existing object + close", None),
    ];
    println!(
        "| operation (median of rounds) | {} ns | {} ns (ratio) | {} ns (ratio) | goal | ratio of the best rounds (/dev/shm) |",
        targets[0].label(),
        targets[1].label(),
        targets[2].label()
    );
    println!("|---|---:|---:|---:|---|---:|");
    for (i, (op, goal)) in ops.iter().enumerate() {
        let native = m[0][i];
        let goal = goal.map_or("—".to_string(), |g| {
            let r = m[1][i] / native;
            format!("≤ {g}x: {}", if r <= g { "met" } else { "missed" })
        });
        println!(
            "| {op} | {:.0} | {:.0} ({:.2}x) | {:.0} ({:.2}x) | {goal} | {:.0} / {:.0} = {:.2}x |",
            native,
            m[1][i],
            m[1][i] / native,
            m[2][i],
            m[2][i] / native,
            best[1][i],
            best[0][i],
            best[1][i] / best[0][i]
        );
    }
    println!();
    floors(&shm_dir, m[0][0], m[1][0], m[0][1], m[1][1], &cfg);
    println!();
    println!("| {} processes, one name, 2/3 open(O_CREAT)+close, 1/3 unlink | ops/s (ratio) | p99 µs | max µs | unexpected errors |", cfg.procs);
    println!("|---|---:|---:|---:|---:|");
    let h: Vec<Hammer> = targets.iter().map(|t| hammer(t, &cfg, &tmp_dir)).collect();
    for (t, r) in targets.iter().zip(&h) {
        println!(
            "| {} | {:.0} ({:.2}x) | {:.1} | {:.1} | {} |",
            t.label(),
            r.ops_per_s,
            r.ops_per_s / h[0].ops_per_s,
            r.p99_ns as f64 / 1000.0,
            r.max_ns as f64 / 1000.0,
            r.errors
        );
    }
    println!(
        "\nGoals (tmpshm on /dev/shm): hammer ≥ 0.25x native ops/s: {}; p99 < 1 ms: {}",
        if h[1].ops_per_s >= 0.25 * h[0].ops_per_s {
            "met"
        } else {
            "missed"
        },
        if h[1].p99_ns < 1_000_000 {
            "met"
        } else {
            "missed"
        }
    );
    let mut failed = h.iter().any(|r| r.errors > 0);
    for d in [&shm_dir, &tmp_dir] {
        let left: Vec<_> = fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        if !left.is_empty() {
            eprintln!("left behind in {}: {left:?}", d.display());
            failed = true;
        }
        let _ = fs::remove_dir_all(d);
    }
    if failed {
        eprintln!("FAILED: unexpected errors or files left behind");
        std::process::exit(1);
    }
}
