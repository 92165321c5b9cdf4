//! Runs one tmpshm operation in a tight loop, for `perf record`, `strace -c` or
//! `valgrind --tool=callgrind`: `profile <open|create|creat-existing> <iterations> [dir]`.
//! Prints ns per operation when done.

use std::path::PathBuf;

use tmpshm::{Mode, OFlag, ShmDir};

const RW_USER: Mode = Mode::S_IRUSR.union(Mode::S_IWUSR);
use tmpshm_bench::ns_per_op;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: profile <open|create|creat-existing> <iterations> [dir]");
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
    let rw = OFlag::O_RDWR;
    drop(shm.open("/existing", rw | OFlag::O_CREAT, RW_USER).unwrap());
    let ns = match op {
        "open" => ns_per_op(iters, || {
            drop(shm.open("/existing", rw, Mode::empty()).unwrap())
        }),
        "creat-existing" => ns_per_op(iters, || {
            drop(shm.open("/existing", rw | OFlag::O_CREAT, RW_USER).unwrap())
        }),
        "create" => ns_per_op(iters, || {
            drop(
                shm.open("/fresh", rw | OFlag::O_CREAT | OFlag::O_EXCL, RW_USER)
                    .unwrap(),
            );
            shm.unlink("/fresh").unwrap();
        }),
        _ => usage(),
    };
    shm.unlink("/existing").unwrap();
    if args.get(2).is_none() {
        std::fs::remove_dir(&dir).unwrap();
    }
    println!("{op}: {ns:.0} ns/op over {iters} iterations");
}
