//! Scale: open latency with 10 to 10,000 objects in one directory, and the time to list them.
//!
//! `cargo run --release -p tmpshm-bench --bin scale` (`--quick` for a smoke run) prints a
//! Markdown table for a directory under /dev/shm (tmpfs) and one under /tmp.

use std::path::PathBuf;
use std::time::Instant;

use tmpshm::{OFlag, ShmDir};
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
                        0o600,
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
                        drop(shm.open(&**it.next().unwrap(), OFlag::O_RDWR, 0).unwrap())
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
}
