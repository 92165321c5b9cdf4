//! Named semaphores: tmpshm's C entry points against glibc's own `sem_open`, in one run.
//!
//! `cargo run --release -p tmpshm-bench --bin sem` prints Markdown tables of nanoseconds per
//! operation and ratios to glibc; `--quick` is a smoke run that only checks it works.
//!
//! - `sem_open` + `sem_close` of an existing semaphore, and a create (`O_CREAT|O_EXCL`) +
//!   `sem_close` + `sem_unlink`: glibc in `/dev/shm`, tmpshm (`tmpshm::capi::sem_open`, what
//!   `tmpshm_sem_open` and the preload library run) in a directory on the same tmpfs and in
//!   one under `/tmp`.
//! - `sem_post`/`sem_wait` ping-pong between two processes: the same libc calls on the same
//!   kind of `sem_t`, so the figures should match; only the file under the mapping differs.
//!
//! Every figure is the median of several rounds, and the rounds interleave the contenders, so
//! a burst of load from elsewhere hits all of them alike.

use std::ffi::CString;
use std::path::PathBuf;
use std::time::Instant;

use tmpshm::capi::{self, Names};
use tmpshm_bench::{errno, machine, median, ns_per_op};

/// One contender: glibc's `sem_open`, or tmpshm's C entry point in a directory.
enum Target {
    Glibc { prefix: String },
    Tmpshm { dir: PathBuf },
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Glibc { .. } => "glibc /dev/shm".into(),
            Target::Tmpshm { dir } => format!("tmpshm {}", dir.display()),
        }
    }

    /// The name of semaphore `what` (glibc's names share /dev/shm with everyone, so they carry
    /// the pid).
    fn name(&self, what: &str) -> CString {
        match self {
            Target::Glibc { prefix } => CString::new(format!("/{prefix}-{what}")).unwrap(),
            Target::Tmpshm { .. } => CString::new(format!("/{what}")).unwrap(),
        }
    }

    /// Points tmpshm's entry points at this contender's directory (they read the environment
    /// at every call; this program is single-threaded).
    fn select(&self) {
        if let Target::Tmpshm { dir } = self {
            std::env::set_var(tmpshm::ENV_DIR, dir);
        }
    }

    fn open(&self, name: &CString, oflag: libc::c_int, value: u32) -> *mut libc::sem_t {
        let p = match self {
            // SAFETY: a valid C string; mode and value as sem_open reads them with O_CREAT.
            Target::Glibc { .. } => unsafe {
                libc::sem_open(name.as_ptr(), oflag, 0o600 as libc::c_uint, value)
            },
            // SAFETY: a valid C string.
            Target::Tmpshm { .. } => unsafe {
                capi::sem_open(name.as_ptr(), oflag, 0o600, value, Names::Strict)
            },
        };
        if p.is_null() || p == libc::SEM_FAILED {
            die(&format!("{} sem_open {name:?}", self.label()));
        }
        p
    }

    fn close(&self, sem: *mut libc::sem_t) {
        let rc = match self {
            // SAFETY: an address this contender's sem_open returned, closed once.
            Target::Glibc { .. } => unsafe { libc::sem_close(sem) },
            // SAFETY: as above (tmpshm checks it anyway).
            Target::Tmpshm { .. } => unsafe { capi::sem_close(sem) },
        };
        if rc != 0 {
            die("sem_close");
        }
    }

    fn unlink(&self, name: &CString) {
        let rc = match self {
            // SAFETY: a valid C string.
            Target::Glibc { .. } => unsafe { libc::sem_unlink(name.as_ptr()) },
            // SAFETY: a valid C string.
            Target::Tmpshm { .. } => unsafe { capi::sem_unlink(name.as_ptr(), Names::Strict) },
        };
        if rc != 0 {
            die(&format!("sem_unlink {name:?}"));
        }
    }
}

fn die(what: &str) -> ! {
    eprintln!("{what}: {}", std::io::Error::from_raw_os_error(errno()));
    std::process::exit(1);
}

struct Config {
    rounds: usize,
    /// Opens per round.
    iters: u32,
    /// Creates per round (slower: fewer).
    creates: u32,
    /// Round trips per round.
    pings: u32,
}

/// Median ns per operation over the rounds, for every target: [open+close, create+close+unlink].
fn micro(targets: &[Target], cfg: &Config) -> Vec<[f64; 2]> {
    let mut samples = vec![[Vec::new(), Vec::new()]; targets.len()];
    for t in targets {
        t.select();
        let existing = t.name("existing");
        let s = t.open(&existing, libc::O_CREAT | libc::O_EXCL, 1);
        // Closed, so that every open below maps it and every close unmaps it.
        t.close(s);
    }
    for _ in 0..cfg.rounds {
        for (t, s) in targets.iter().zip(samples.iter_mut()) {
            t.select();
            let (existing, fresh) = (t.name("existing"), t.name("fresh"));
            s[0].push(ns_per_op(cfg.iters, || {
                let p = t.open(&existing, 0, 0);
                t.close(p);
            }));
            s[1].push(ns_per_op(cfg.creates, || {
                let p = t.open(&fresh, libc::O_CREAT | libc::O_EXCL, 0);
                t.close(p);
                t.unlink(&fresh);
            }));
        }
    }
    for t in targets {
        t.select();
        t.unlink(&t.name("existing"));
    }
    samples
        .into_iter()
        .map(|mut s| [median(&mut s[0]), median(&mut s[1])])
        .collect()
}

fn wait(sem: *mut libc::sem_t) {
    // SAFETY: an open, initialised semaphore; retried on EINTR.
    while unsafe { libc::sem_wait(sem) } != 0 {
        if errno() != libc::EINTR {
            die("sem_wait");
        }
    }
}

fn post(sem: *mut libc::sem_t) {
    // SAFETY: an open, initialised semaphore.
    if unsafe { libc::sem_post(sem) } != 0 {
        die("sem_post");
    }
}

/// A ping-pong partner: a child that, `total` times, waits on `ping` and posts `pong`.
struct Partner {
    pid: libc::pid_t,
    ping: *mut libc::sem_t,
    pong: *mut libc::sem_t,
}

fn partner(t: &Target, total: u64) -> Partner {
    t.select();
    let (a, b) = (t.name("ping"), t.name("pong"));
    let ping = t.open(&a, libc::O_CREAT | libc::O_EXCL, 0);
    let pong = t.open(&b, libc::O_CREAT | libc::O_EXCL, 0);
    t.unlink(&a);
    t.unlink(&b);
    // SAFETY: this program is single-threaded, so the child may run ordinary code; it
    // inherits both mappings.
    match unsafe { libc::fork() } {
        0 => {
            for _ in 0..total {
                wait(ping);
                post(pong);
            }
            // SAFETY: leaving the forked child without running atexit handlers.
            unsafe { libc::_exit(0) }
        }
        -1 => die("fork"),
        pid => Partner { pid, ping, pong },
    }
}

/// Pins this process (and the children it forks from now on) to the first CPU it may run
/// on, and returns that CPU: both ends of a ping-pong then share one CPU for every
/// contender, so a figure does not depend on where the scheduler put the partner.
fn pin_to_one_cpu() -> Option<usize> {
    // SAFETY: cpu_set_t is plain bits; sched_getaffinity and sched_setaffinity read and write
    // only the set we pass, of the size we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            return None;
        }
        let cpu = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set))?;
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        (libc::sched_setaffinity(0, size, &one) == 0).then_some(cpu)
    }
}

/// Median ns per round trip (post, then wait for the partner's post) for every target.
fn ping_pong(targets: &[Target], cfg: &Config) -> Vec<f64> {
    let total = cfg.rounds as u64 * u64::from(cfg.pings);
    let partners: Vec<Partner> = targets.iter().map(|t| partner(t, total)).collect();
    let mut samples = vec![Vec::new(); targets.len()];
    for _ in 0..cfg.rounds {
        for (p, s) in partners.iter().zip(samples.iter_mut()) {
            let t0 = Instant::now();
            for _ in 0..cfg.pings {
                post(p.ping);
                wait(p.pong);
            }
            s.push(t0.elapsed().as_nanos() as f64 / f64::from(cfg.pings));
        }
    }
    for (p, t) in partners.iter().zip(targets) {
        let mut status = 0;
        // SAFETY: waiting for our own child, which has done its count.
        unsafe { libc::waitpid(p.pid, &mut status, 0) };
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            eprintln!("ping-pong partner failed: status {status:#x}");
            std::process::exit(1);
        }
        t.select();
        t.close(p.ping);
        t.close(p.pong);
    }
    samples.iter_mut().map(|s| median(s)).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(bad) = args.iter().find(|a| *a != "--quick") {
        eprintln!("usage: sem [--quick]   (unknown argument {bad:?})");
        std::process::exit(2);
    }
    let cfg = if quick {
        Config {
            rounds: 1,
            iters: 200,
            creates: 20,
            pings: 200,
        }
    } else {
        Config {
            rounds: 31,
            iters: 2_000,
            creates: 200,
            pings: 5_000,
        }
    };
    let pid = std::process::id();
    let shm_dir = PathBuf::from(format!("/dev/shm/tmpshm-bench-sem-{pid}"));
    let tmp_dir = PathBuf::from(format!("/tmp/tmpshm-bench-sem-{pid}"));
    for d in [&shm_dir, &tmp_dir] {
        std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    std::env::remove_var(tmpshm::ENV_CROSS_USER);
    std::env::remove_var(capi::ENV_TRACE);
    let targets = [
        Target::Glibc {
            prefix: format!("tmpshm-bench-sem-{pid}"),
        },
        Target::Tmpshm {
            dir: shm_dir.clone(),
        },
        Target::Tmpshm {
            dir: tmp_dir.clone(),
        },
    ];
    println!("Machine: {}", machine());
    println!(
        "tmpshm directories: {} ({}), {} ({}); {} rounds x {} opens, {} creates, {} round trips\n",
        shm_dir.display(),
        tmpshm_bench::fs_type(&shm_dir),
        tmp_dir.display(),
        tmpshm_bench::fs_type(&tmp_dir),
        cfg.rounds,
        cfg.iters,
        cfg.creates,
        cfg.pings
    );
    let m = micro(&targets, &cfg);
    let header = |what: &str| {
        println!(
            "| {what} | {} ns | {} ns (ratio) | {} ns (ratio) |",
            targets[0].label(),
            targets[1].label(),
            targets[2].label()
        );
        println!("|---|---:|---:|---:|");
    };
    header("operation (median of rounds)");
    let ops = [
        "sem_open + sem_close of an existing semaphore",
        "create (O_CREAT\\|O_EXCL) + sem_close + sem_unlink",
    ];
    for (i, op) in ops.iter().enumerate() {
        let native = m[0][i];
        println!(
            "| {op} | {native:.0} | {:.0} ({:.2}x) | {:.0} ({:.2}x) |",
            m[1][i],
            m[1][i] / native,
            m[2][i],
            m[2][i] / native
        );
    }
    println!();
    let cpu = pin_to_one_cpu();
    let pp = ping_pong(&targets, &cfg);
    header(&match cpu {
        Some(c) => format!("two processes, both on CPU {c} (median of rounds)"),
        None => "two processes (median of rounds)".to_string(),
    });
    println!(
        "| sem_post + sem_wait round trip | {:.0} | {:.0} ({:.2}x) | {:.0} ({:.2}x) |",
        pp[0],
        pp[1],
        pp[1] / pp[0],
        pp[2],
        pp[2] / pp[0]
    );
    for d in [&shm_dir, &tmp_dir] {
        let _ = std::fs::remove_dir(d);
    }
}
