//! Side-by-side benchmark: tmpshm against the system's native `shm_open`, with the floors
//! under each operation, in one run.
//!
//! `cargo run --release -p tmpshm-bench --bin compare` prints Markdown tables; `--quick` is a
//! smoke run that only checks it works.
//!
//! - Micro-operations, one table per tmpshm directory (a fresh directory on the tmpfs of
//!   `/dev/shm`, and one under `/tmp`, the default directory): every row of a table is timed in
//!   every round, in an order rotated round by round, so that a burst of load from elsewhere
//!   hits all rows alike; each figure is the median of the rounds' ns per operation, and each
//!   ratio is a ratio of medians taken in the same run.
//! - tmpshm rows come twice: through the C ABI (`tmpshm::capi::shm_open`, what
//!   `tmpshm_shm_open` and the preload library run; it reads the environment at every call)
//!   and through the Rust API (`ShmDir`).
//! - Floors: the bare system calls that an operation cannot avoid, on the same files, so that
//!   what remains above a floor is visibly the code around the calls.
//! - Contention: N processes on one name, 3/4 `open(O_CREAT)`+close and 1/4 unlink, through
//!   the C ABI, against native, in rounds that alternate the contenders.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tmpshm::capi::{self, Names};
use tmpshm::{Mode, OFlag, ShmDir};
use tmpshm_bench::{machine, median, native_open, native_unlink, ns_per_op, quantile, sys, Rng};

struct Config {
    rounds: usize,
    iters: u32,
    hammer: Duration,
    hammer_rounds: usize,
    procs: &'static [usize],
}

const RW: libc::c_int = libc::O_RDWR;
const CREAT: libc::c_int = libc::O_CREAT;
const EXCL: libc::c_int = libc::O_EXCL;

fn die(what: &str, e: i32) -> ! {
    eprintln!("{what}: {}", std::io::Error::from_raw_os_error(e));
    std::process::exit(1);
}

/// The three ways to call: glibc's `shm_open`, tmpshm's C entry point, tmpshm's `ShmDir`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Native,
    Capi,
    Rust,
}

/// One contender's calls, its names and directory.
struct Caller {
    api: Api,
    /// The tmpshm directory (`TMPSHM_DIR` for the C ABI).
    dir: PathBuf,
    shm: ShmDir,
    /// Native names share /dev/shm with everyone, so they carry the pid.
    prefix: String,
}

impl Caller {
    fn new(api: Api, dir: &Path) -> Caller {
        Caller {
            api,
            dir: dir.to_path_buf(),
            shm: ShmDir::new(dir),
            prefix: format!("tmpshm-bench-{}", std::process::id()),
        }
    }

    fn name(&self, what: &str) -> CString {
        match self.api {
            Api::Native => CString::new(format!("/{}-{what}", self.prefix)).unwrap(),
            _ => CString::new(format!("/{what}")).unwrap(),
        }
    }

    /// Points the C entry points at this contender's directory (this program is
    /// single-threaded while it times).
    fn select(&self) {
        if self.api == Api::Capi {
            std::env::set_var(tmpshm::ENV_DIR, &self.dir);
        }
    }

    /// shm_open + close.
    fn open(&self, name: &CString, flags: libc::c_int) -> Result<(), i32> {
        match self.api {
            Api::Native => native_open(name, flags, 0o600).map(drop),
            Api::Capi => {
                // SAFETY: a valid C string.
                let fd = unsafe { capi::shm_open(name.as_ptr(), flags, 0o600, Names::Strict) };
                if fd < 0 {
                    return Err(tmpshm_bench::errno());
                }
                sys::close(fd);
                Ok(())
            }
            Api::Rust => self
                .shm
                .open(
                    name.as_c_str(),
                    OFlag::from_bits_retain(flags),
                    Mode::from_bits_retain(0o600),
                )
                .map(drop)
                .map_err(|e| e.errno() as i32),
        }
    }

    fn unlink(&self, name: &CString) -> Result<(), i32> {
        match self.api {
            Api::Native => native_unlink(name),
            Api::Capi => {
                // SAFETY: a valid C string.
                if unsafe { capi::shm_unlink(name.as_ptr(), Names::Strict) } < 0 {
                    Err(tmpshm_bench::errno())
                } else {
                    Ok(())
                }
            }
            Api::Rust => self
                .shm
                .unlink(name.as_c_str())
                .map_err(|e| e.errno() as i32),
        }
    }
}

/// One timed row: what it is, what it measures against, and its loop body.
struct Row<'a> {
    label: String,
    /// The index of the row this one's ratio is taken against, if any, besides native.
    floor: Option<usize>,
    /// Run before each round's loop (points the C ABI at its directory).
    setup: Box<dyn Fn() + 'a>,
    body: Box<dyn Fn() + 'a>,
}

/// The goals, checked against the tmpfs table (and printed under it).
#[derive(Default)]
struct Goals {
    lines: Vec<(String, bool)>,
}

impl Goals {
    fn check(&mut self, what: String, met: bool) {
        self.lines.push((what, met));
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// The micro table for one tmpshm directory: native in /dev/shm, the floors in `dir`, tmpshm
/// through both APIs in `dir`.
fn micro(dir: &Path, cfg: &Config, goals: Option<&mut Goals>) {
    let native = Caller::new(Api::Native, dir);
    let capi = Caller::new(Api::Capi, dir);
    let rust = Caller::new(Api::Rust, dir);
    let must = |r: Result<(), i32>, what: &str| {
        if let Err(e) = r {
            die(what, e)
        }
    };
    for c in [&native, &capi] {
        c.select();
        must(c.open(&c.name("existing"), RW | CREAT), "setup");
    }
    // Every name is built here, once: the timed loops make no allocation of their own.
    let (n_existing, n_fresh) = (native.name("existing"), native.name("fresh"));
    let (c_existing, c_fresh) = (capi.name("existing"), capi.name("fresh"));
    let (r_existing, r_fresh) = (rust.name("existing"), rust.name("fresh"));
    let data = cstr(&dir.join(".SHMDexisting"));
    let fresh = cstr(&dir.join(".SHMDfloor"));
    let lock = cstr(&dir.join(".SHMLfloor"));
    let checked = RW | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
    let noop = || {};
    type Section<'a> = (&'static str, Vec<Row<'a>>);
    let sections: Vec<Section<'_>> = vec![
        (
            "open an existing object + close",
            vec![
                Row {
                    label: "native shm_open + close (/dev/shm)".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| must(native.open(&n_existing, RW), "open")),
                },
                Row {
                    label: "floor: the checked open: open(O_NOFOLLOW\\|O_CLOEXEC\\|O_NOCTTY\\|O_NONBLOCK) + fstat + geteuid + close".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| {
                        let fd = sys::open(&data, checked, 0);
                        sys::fstat(fd);
                        sys::geteuid();
                        sys::close(fd);
                    }),
                },
                Row {
                    label: "floor + fcntl(F_SETFL, 0): the fd handed out blocking, as glibc's".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| {
                        let fd = sys::open(&data, checked, 0);
                        sys::fstat(fd);
                        sys::geteuid();
                        sys::setfl(fd, 0);
                        sys::close(fd);
                    }),
                },
                Row {
                    label: "tmpshm C ABI".into(),
                    floor: Some(2),
                    setup: Box::new(|| capi.select()),
                    body: Box::new(|| must(capi.open(&c_existing, RW), "open")),
                },
                Row {
                    label: "tmpshm ShmDir".into(),
                    floor: Some(2),
                    setup: Box::new(noop),
                    body: Box::new(|| must(rust.open(&r_existing, RW), "open")),
                },
            ],
        ),
        (
            "create (O_CREAT\\|O_EXCL) + close + unlink",
            vec![
                Row {
                    label: "native shm_open + close + shm_unlink (/dev/shm)".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| {
                        let n = &n_fresh;
                        must(native.open(n, RW | CREAT | EXCL), "create");
                        must(native.unlink(n), "unlink");
                    }),
                },
                Row {
                    label: "floor: open(O_CREAT\\|O_EXCL) + close + unlink in the directory".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| {
                        sys::close(sys::open(&fresh, checked | CREAT | EXCL, 0o600));
                        sys::unlink(&fresh);
                    }),
                },
                Row {
                    label: "floor of the lock protocol: lstat(data) + open(lock, O_CREAT\\|O_EXCL) + flock(LOCK_EX\\|LOCK_NB) + fstat(lock) + open(data, O_CREAT\\|O_EXCL) + unlink(lock) + flock(LOCK_UN) + dup3(data, lock) + close(data) + close + unlink(data)".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| {
                        sys::lstat_absent(&fresh);
                        let l = sys::open(&lock, checked | CREAT | EXCL, 0o600);
                        sys::flock(l, libc::LOCK_EX | libc::LOCK_NB);
                        sys::fstat(l);
                        let d = sys::open(&fresh, RW | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | CREAT | EXCL, 0o600);
                        sys::unlink(&lock);
                        sys::flock(l, libc::LOCK_UN);
                        sys::dup3(d, l);
                        sys::close(d);
                        sys::close(l);
                        sys::unlink(&fresh);
                    }),
                },
                Row {
                    label: "tmpshm C ABI".into(),
                    floor: Some(2),
                    setup: Box::new(|| capi.select()),
                    body: Box::new(|| {
                        let n = &c_fresh;
                        must(capi.open(n, RW | CREAT | EXCL), "create");
                        must(capi.unlink(n), "unlink");
                    }),
                },
                Row {
                    label: "tmpshm ShmDir".into(),
                    floor: Some(2),
                    setup: Box::new(noop),
                    body: Box::new(|| {
                        let n = &r_fresh;
                        must(rust.open(n, RW | CREAT | EXCL), "create");
                        must(rust.unlink(n), "unlink");
                    }),
                },
            ],
        ),
        (
            "O_CREAT\\|O_EXCL of an existing object (EEXIST)",
            vec![
                Row {
                    label: "native shm_open (/dev/shm)".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| {
                        let r = native.open(&n_existing, RW | CREAT | EXCL);
                        assert_eq!(r, Err(libc::EEXIST));
                    }),
                },
                Row {
                    label: "floor: lstat(data)".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| sys::lstat(&data)),
                },
                Row {
                    label: "tmpshm C ABI".into(),
                    floor: Some(1),
                    setup: Box::new(|| capi.select()),
                    body: Box::new(|| {
                        let r = capi.open(&c_existing, RW | CREAT | EXCL);
                        assert_eq!(r, Err(libc::EEXIST));
                    }),
                },
                Row {
                    label: "tmpshm ShmDir".into(),
                    floor: Some(1),
                    setup: Box::new(noop),
                    body: Box::new(|| {
                        let r = rust.open(&r_existing, RW | CREAT | EXCL);
                        assert_eq!(r, Err(libc::EEXIST));
                    }),
                },
            ],
        ),
        (
            "open(O_CREAT) of an existing object + close",
            vec![
                Row {
                    label: "native shm_open + close (/dev/shm)".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| must(native.open(&n_existing, RW | CREAT), "open")),
                },
                Row {
                    label: "tmpshm C ABI".into(),
                    floor: None,
                    setup: Box::new(|| capi.select()),
                    body: Box::new(|| must(capi.open(&c_existing, RW | CREAT), "open")),
                },
                Row {
                    label: "tmpshm ShmDir".into(),
                    floor: None,
                    setup: Box::new(noop),
                    body: Box::new(|| must(rust.open(&r_existing, RW | CREAT), "open")),
                },
            ],
        ),
    ];
    // All rows of all sections go into one rotation, so every figure in the table comes from
    // the same rounds.
    let all: Vec<&Row<'_>> = sections.iter().flat_map(|(_, rows)| rows.iter()).collect();
    let mut samples = vec![Vec::with_capacity(cfg.rounds); all.len()];
    for round in 0..cfg.rounds {
        for k in 0..all.len() {
            let i = (k + round) % all.len();
            (all[i].setup)();
            samples[i].push(ns_per_op(cfg.iters, &all[i].body));
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    println!(
        "| operation | calls | ns (median of rounds) | ratio to native | ratio to the floor |"
    );
    println!("|---|---|---:|---:|---:|");
    let mut at = 0;
    let mut table = Vec::new();
    for (op, rows) in &sections {
        let native_ns = medians[at];
        for (j, row) in rows.iter().enumerate() {
            let ns = medians[at + j];
            let floor = row.floor.map_or(String::from("—"), |f| {
                format!("{:.2}x", ns / medians[at + f])
            });
            let shown_op = if j == 0 { *op } else { "" };
            println!(
                "| {shown_op} | {} | {ns:.0} | {:.2}x | {floor} |",
                row.label,
                ns / native_ns
            );
        }
        table.push(medians[at..at + rows.len()].to_vec());
        at += rows.len();
    }
    println!();
    for c in [&native, &capi] {
        c.select();
        must(c.unlink(&c.name("existing")), "cleanup");
    }
    if let Some(goals) = goals {
        let (open, create, eexist) = (&table[0], &table[1], &table[2]);
        let r = open[3] / open[2];
        goals.check(
            format!(
                "1. open existing, C ABI, within 5% of the checked-open floor + fcntl: {r:.3}x \
                 (ShmDir: {:.3}x; against the bare checked open, without the fcntl: {:.3}x, \
                 ShmDir {:.3}x)",
                open[4] / open[2],
                open[3] / open[1],
                open[4] / open[1]
            ),
            r <= 1.05,
        );
        let r = create[3] / create[0];
        goals.check(
            format!(
                "2. create + close + unlink, C ABI, ≤ 2.3x native: {r:.2}x (ShmDir {:.2}x; the \
                 lock protocol's floor: {:.2}x)",
                create[4] / create[0],
                create[2] / create[0]
            ),
            r <= 2.3,
        );
        let r = eexist[2] / eexist[0];
        goals.check(
            format!(
                "3. O_CREAT\\|O_EXCL of an existing object, C ABI, ≤ 1.5x native: {r:.2}x \
                 (ShmDir {:.2}x)",
                eexist[3] / eexist[0]
            ),
            r <= 1.5,
        );
    }
}

struct Hammer {
    ops_per_s: f64,
    p50_ns: u64,
    p99_ns: u64,
    max_ns: u64,
    errors: u64,
    first_errno: i32,
}

/// The worker of one hammering process: mixed ops on one name until `until`; latencies
/// (ns) go to `out` as little-endian u32s after three u64s (ops, unexpected errors, the first
/// unexpected errno).
fn hammer_worker(
    c: &Caller,
    name: &CString,
    seed: u64,
    start: Instant,
    until: Instant,
    out: &Path,
) -> ! {
    let mut rng = Rng::new(seed);
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut errors = 0u64;
    let mut first_errno = 0u64;
    while Instant::now() < start {
        std::hint::spin_loop();
    }
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        let r = if rng.below(4) < 3 {
            c.open(name, RW | CREAT)
        } else {
            match c.unlink(name) {
                Err(libc::ENOENT) => Ok(()),
                other => other,
            }
        };
        let ns = t0.elapsed().as_nanos();
        if let Err(e) = r {
            errors += 1;
            if first_errno == 0 {
                first_errno = e as u64;
            }
        }
        lat.push(u32::try_from(ns).unwrap_or(u32::MAX));
    }
    let mut buf = Vec::with_capacity(16 + lat.len() * 4);
    buf.extend_from_slice(&(lat.len() as u64).to_le_bytes());
    buf.extend_from_slice(&errors.to_le_bytes());
    buf.extend_from_slice(&first_errno.to_le_bytes());
    for l in lat {
        buf.extend_from_slice(&l.to_le_bytes());
    }
    let ok = fs::File::create(out)
        .and_then(|mut f| f.write_all(&buf))
        .is_ok();
    // SAFETY: _exit ends the forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// One round of `procs` processes hammering one name for `cfg.hammer`: every latency, and the
/// count of unexpected errors and the first errno among them.
fn hammer_round(c: &Caller, procs: usize, cfg: &Config, scratch: &Path) -> (Vec<u64>, u64, i32) {
    c.select();
    let name = c.name("hammer");
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + cfg.hammer;
    let mut pids = Vec::new();
    for i in 0..procs {
        let out = scratch.join(format!("hammer-{i}"));
        // SAFETY: this program is single-threaded, so the child may run ordinary code.
        match unsafe { libc::fork() } {
            0 => hammer_worker(c, &name, 0x9e37_79b9 * (i as u64 + 1), start, until, &out),
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            pid => pids.push((pid, out)),
        }
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_errno = 0;
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
        let e = u64::from_le_bytes(buf[16..24].try_into().unwrap()) as i32;
        if first_errno == 0 {
            first_errno = e;
        }
        all.extend(
            buf[24..]
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes(c.try_into().unwrap()))),
        );
    }
    let _ = c.unlink(&name);
    (all, errors, first_errno)
}

/// `cfg.hammer_rounds` rounds per contender, alternating them: median ops/s and median
/// quantiles of the rounds.
fn hammer(callers: &[&Caller], procs: usize, cfg: &Config, scratch: &Path) -> Vec<Hammer> {
    let mut per: Vec<Vec<(f64, u64, u64, u64)>> = vec![Vec::new(); callers.len()];
    let mut errors = vec![(0, 0); callers.len()];
    for _ in 0..cfg.hammer_rounds {
        for (i, c) in callers.iter().enumerate() {
            let (mut lat, e, errno) = hammer_round(c, procs, cfg, scratch);
            lat.sort_unstable();
            errors[i].0 += e;
            if errors[i].1 == 0 {
                errors[i].1 = errno;
            }
            per[i].push((
                lat.len() as f64 / cfg.hammer.as_secs_f64(),
                quantile(&lat, 0.5),
                quantile(&lat, 0.99),
                lat.last().copied().unwrap_or(0),
            ));
        }
    }
    per.into_iter()
        .zip(errors)
        .map(|(rounds, (errors, first_errno))| {
            let pick = |f: fn(&(f64, u64, u64, u64)) -> f64| {
                let mut v: Vec<f64> = rounds.iter().map(f).collect();
                median(&mut v)
            };
            Hammer {
                ops_per_s: pick(|r| r.0),
                p50_ns: pick(|r| r.1 as f64) as u64,
                p99_ns: pick(|r| r.2 as f64) as u64,
                max_ns: rounds.iter().map(|r| r.3).max().unwrap_or(0),
                errors,
                first_errno,
            }
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // Only the tmpfs table: for trying a change out (the goals need the whole run).
    let micro_only = args.iter().any(|a| a == "--micro");
    // Only the contention tables.
    let contention_only = args.iter().any(|a| a == "--contention");
    let known = ["--quick", "--micro", "--contention"];
    if let Some(bad) = args.iter().find(|a| !known.contains(&a.as_str())) {
        eprintln!("usage: compare [--quick] [--micro | --contention]   (unknown argument {bad:?})");
        std::process::exit(2);
    }
    let cfg = if quick {
        Config {
            rounds: 1,
            iters: 200,
            hammer: Duration::from_millis(200),
            hammer_rounds: 1,
            procs: &[4],
        }
    } else {
        Config {
            rounds: 31,
            iters: 2_000,
            hammer: Duration::from_secs(2),
            hammer_rounds: 3,
            procs: &[4, 8],
        }
    };
    let pid = std::process::id();
    let shm_dir = PathBuf::from(format!("/dev/shm/tmpshm-bench-{pid}"));
    let tmp_dir = PathBuf::from(format!("/tmp/tmpshm-bench-{pid}"));
    for d in [&shm_dir, &tmp_dir] {
        fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    let env_count = std::env::vars_os().count();
    println!("Machine: {}", machine());
    println!(
        "Native: the libc's shm_open/shm_unlink in /dev/shm ({}). tmpshm through its C ABI \
         (tmpshm::capi::shm_open with Names::Strict, what tmpshm_shm_open and the preload library \
         run; TMPSHM_DIR names the directory; the environment, {env_count} variables, is read at \
         every call) and through ShmDir (Rust).",
        tmpshm_bench::fs_type(Path::new("/dev/shm")),
    );
    println!(
        "Micro tables: {} rounds x {} calls per row; every row of a table in every round, the \
         order rotated each round; figures are medians of the rounds, ratios are ratios of \
         medians from the same run. Contention: {} rounds x {:?} per contender, contenders \
         alternating, through the C ABI.\n",
        cfg.rounds, cfg.iters, cfg.hammer_rounds, cfg.hammer
    );
    let mut goals = Goals::default();
    for (dir, is_goal) in [(&shm_dir, true), (&tmp_dir, false)] {
        if contention_only {
            break;
        }
        println!(
            "### tmpshm in {} ({}){}\n",
            dir.display(),
            tmpshm_bench::fs_type(dir),
            if is_goal {
                ": the goals are measured here"
            } else {
                ": the default directory's file system"
            }
        );
        micro(dir, &cfg, is_goal.then_some(&mut goals));
        if micro_only {
            let _ = fs::remove_dir_all(&shm_dir);
            let _ = fs::remove_dir_all(&tmp_dir);
            return;
        }
    }
    let native = Caller::new(Api::Native, &shm_dir);
    let on_shm = Caller::new(Api::Capi, &shm_dir);
    let on_tmp = Caller::new(Api::Capi, &tmp_dir);
    for &procs in cfg.procs {
        println!(
            "### {procs} processes, one name, 3/4 open(O_CREAT)+close, 1/4 unlink (ENOENT counts as done)\n"
        );
        println!("| contender | ops/s (ratio to native) | p50 µs | p99 µs | max µs | unexpected errors |");
        println!("|---|---:|---:|---:|---:|---:|");
        let callers = [&native, &on_shm, &on_tmp];
        let h = hammer(&callers, procs, &cfg, &tmp_dir);
        for (c, r) in callers.iter().zip(&h) {
            let label = match c.api {
                Api::Native => "native /dev/shm".to_string(),
                _ => format!(
                    "tmpshm C ABI {} ({})",
                    c.dir.display(),
                    tmpshm_bench::fs_type(&c.dir)
                ),
            };
            let errors = if r.errors == 0 {
                "0".to_string()
            } else {
                let e = std::io::Error::from_raw_os_error(r.first_errno);
                format!("{} (the first: {e})", r.errors)
            };
            println!(
                "| {label} | {:.0} ({:.2}x) | {:.1} | {:.1} | {:.1} | {errors} |",
                r.ops_per_s,
                r.ops_per_s / h[0].ops_per_s,
                r.p50_ns as f64 / 1000.0,
                r.p99_ns as f64 / 1000.0,
                r.max_ns as f64 / 1000.0,
            );
        }
        println!();
        let ratio = h[1].ops_per_s / h[0].ops_per_s;
        goals.check(
            format!(
                "4. contention, {procs} processes, tmpfs: ≥ 0.35x native ops/s: {ratio:.2}x; p99 < 500 µs: {:.0} µs",
                h[1].p99_ns as f64 / 1000.0
            ),
            ratio >= 0.35 && h[1].p99_ns < 500_000,
        );
        // The native call's own errors are shown, not ours to fail on.
        if h[1..].iter().any(|r| r.errors > 0) {
            eprintln!("FAILED: unexpected errors under contention");
            std::process::exit(1);
        }
    }
    println!("### Goals (tmpshm in {})\n", shm_dir.display());
    for (line, met) in &goals.lines {
        println!("- {line}: {}", if *met { "met" } else { "missed" });
    }
    let mut failed = false;
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
        eprintln!("FAILED: files left behind");
        std::process::exit(1);
    }
}
