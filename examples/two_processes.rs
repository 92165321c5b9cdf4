//! Two processes share a counter in named shared memory, guarded by a named semaphore.
//!
//! ```sh
//! cargo run --example two_processes            # objects in $TMPSHM_DIR, else /tmp
//! ```
//!
//! The first process creates `/tmpshm-example` (8 bytes) and the semaphore
//! `/tmpshm-example-lock` (value 1), starts a second copy of itself, and both add 1 to the
//! counter 10,000 times, each addition under the semaphore. The first one then prints 20000
//! and removes both names.
use std::process::Command;

use tmpshm::{Access, SemOptions, ShmOptions};

const SHM: &str = "/tmpshm-example";
const SEM: &str = "/tmpshm-example-lock";
const ROUNDS: u64 = 10_000;

fn add(times: u64) -> Result<(), Box<dyn std::error::Error>> {
    let shm = ShmOptions::new().size(8).open(SHM)?; // never smaller than 8 bytes
    let map = shm.map(Access::ReadWrite)?;
    let lock = SemOptions::new().open(SEM)?;
    for _ in 0..times {
        lock.wait()?;
        let mut bytes = [0u8; 8];
        map.read_at(0, &mut bytes)?;
        map.write_at(0, &(u64::from_ne_bytes(bytes) + 1).to_ne_bytes())?;
        lock.post()?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("second") {
        return add(ROUNDS);
    }
    let shm = ShmOptions::new().size(8).unlink_on_drop(true).create(SHM)?;
    let lock = SemOptions::new().value(1).create(SEM)?;
    let mut second = Command::new(std::env::current_exe()?)
        .arg("second")
        .spawn()?;
    add(ROUNDS)?;
    let status = second.wait()?;
    let mut bytes = [0u8; 8];
    shm.map(Access::ReadOnly)?.read_at(0, &mut bytes)?;
    lock.unlink()?;
    println!("{} in {}", u64::from_ne_bytes(bytes), shm.path().display());
    if !status.success() {
        return Err(format!("the second process failed: {status}").into());
    }
    Ok(())
}
