//! `tmpshm tour`: the seed's experiment. A SysV segment, a tmpshm object and a plain file
//! mapping side by side in one process, and what `/proc/self/maps` makes of them.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tmpshm::{Access, Mapping, OFlag, ShmDir, ShmOptions, Step};

use crate::fmt::{error_line, os_err, show_path, show_text, trace_line};
use crate::CliError;

const SIZE: usize = 4096;

/// Removes the plain file on every exit path.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn heading(s: &str) {
    println!("\n== {s}");
}

fn describe(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(m) => format!(
            "{} exists: {} bytes, mode {:04o}, {} link",
            show_path(path),
            m.len(),
            m.mode() & 0o7777,
            m.nlink()
        ),
        Err(_) => format!("{} does not exist", show_path(path)),
    }
}

pub fn run(shm: &ShmDir, all_maps: bool) -> Result<(), CliError> {
    let pid = std::process::id();
    let mut marks: Vec<(usize, String)> = Vec::new();
    println!(
        "tmpshm tour in {} (pid {pid}): three kinds of shared memory in one process",
        show_path(shm.dir())
    );

    let sysv = crate::sysv::tour_part(&mut marks, SIZE)?;

    heading("2. POSIX shared memory the illumos way: a file in the directory (tmpshm)");
    let name = format!("/tour-{pid}");
    let traced = shm.clone().trace(|step| {
        // Steps name paths, and the directory's name is anyone's choice: escaped.
        println!("   | {}", trace_line(step));
        if let Step::LockAcquired { path } = step {
            println!("   |   the short-lived lock file: {}", describe(path));
        }
    });
    let opts = ShmOptions::new()
        .dir(traced.clone())
        .size(SIZE as u64)
        .mode(0o600)
        .unlink_on_drop(true);
    let obj = opts.create(name.as_str())?;
    println!(
        "ShmOptions::new().size({SIZE}).mode(0o600).create({name:?}) = fd {}",
        obj.as_fd().as_raw_fd()
    );
    if let Some(lock) = shm.lock_path(name.as_str())? {
        println!("after the call: {}", describe(&lock));
    }
    println!("the object: {}", describe(obj.path()));
    let map = obj.map(Access::ReadWrite)?;
    println!(
        "mmap(NULL, {SIZE}, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0) = {:p}",
        map.as_ptr()
    );
    map.write_at(0, b"hello from tmpshm")?;
    marks.push((
        map.as_ptr() as usize,
        "<- the tmpshm object: an ordinary file mapping".into(),
    ));

    heading("3. A plain file, mapped shared");
    let plain_path = shm.dir().join(format!("tmpshm-tour-{pid}.plain"));
    let plain = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&plain_path)
        .map_err(|e| os_err(format!("open {}", show_path(&plain_path)), &e))?;
    let _cleanup = RemoveOnDrop(plain_path.clone());
    println!(
        "open(\"{}\", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW, 0600) = fd {}",
        show_path(&plain_path),
        plain.as_raw_fd()
    );
    plain
        .set_len(SIZE as u64)
        .map_err(|e| os_err(format!("ftruncate {}", show_path(&plain_path)), &e))?;
    println!("ftruncate(fd, {SIZE}) = 0");
    let plain_map = Mapping::new(&plain, SIZE, Access::ReadWrite)?;
    println!(
        "mmap(NULL, {SIZE}, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0) = {:p}",
        plain_map.as_ptr()
    );
    marks.push((
        plain_map.as_ptr() as usize,
        "<- the plain file: the same kind of mapping".into(),
    ));

    heading("4. This process's mappings (pmap, from /proc/self/maps)");
    pmap(&marks, all_maps)?;

    heading("5. The ftruncate snag: opening an object before its creator sized it");
    snag(shm, pid)?;

    heading("Cleanup");
    drop(map);
    drop(plain_map);
    let data = obj.path().to_path_buf();
    obj.unlink()?;
    println!("shm_unlink({name:?}) = 0; {}", describe(&data));
    drop(_cleanup);
    println!("unlink(\"{}\") = 0", show_path(&plain_path));
    drop(sysv);
    Ok(())
}

fn pmap(marks: &[(usize, String)], all: bool) -> Result<(), CliError> {
    // Paths in it are bytes, as the directory's name is.
    let maps = match std::fs::read("/proc/self/maps") {
        Ok(m) => String::from_utf8_lossy(&m).into_owned(),
        Err(e) => {
            println!("/proc/self/maps is not readable here ({e}); skipped");
            return Ok(());
        }
    };
    println!("{:<16} {:>7} {:<5} MAPPING", "ADDRESS", "KBYTES", "MODE");
    let mut others = 0;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let file: Vec<&str> = f.skip(3).collect();
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let mark = marks.iter().find(|(a, _)| *a == start).map(|(_, m)| m);
        if mark.is_none() && !all {
            others += 1;
            continue;
        }
        let shown = if file.is_empty() {
            "[ anon ]".to_string()
        } else {
            show_text(&file.join(" ")).to_string()
        };
        println!(
            "{start:016x} {:>7} {perms:<5} {shown}  {}",
            (end - start) / 1024,
            mark.map_or("", String::as_str)
        );
    }
    if others > 0 {
        println!(
            "({others} other mappings: the program, libc, heap, stack; --all-maps shows them)"
        );
    }
    Ok(())
}

fn snag(shm: &ShmDir, pid: u32) -> Result<(), CliError> {
    let name = format!("/tour-snag-{pid}");
    // The classic sequence, made visible: shm_open(O_CREAT) now, ftruncate "later".
    let fd = shm.open(
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        0o600,
    )?;
    let result = (|| -> Result<(), CliError> {
        println!(
            "creator: shm_open({name:?}, O_CREAT|O_EXCL|O_RDWR, 0600) = fd {} (not sized yet)",
            fd.as_raw_fd()
        );
        let opener = shm.open(name.as_str(), OFlag::O_RDWR, 0)?;
        let size = nix::sys::stat::fstat(opener.as_fd())
            .map(|st| st.st_size)
            .map_err(|e| format!("fstat: {e}"))?;
        println!(
            "opener:  shm_open({name:?}, O_RDWR) = fd {}, fstat size {size}",
            opener.as_raw_fd()
        );
        match Mapping::new(&opener, SIZE, Access::ReadWrite) {
            Ok(_) => println!("opener:  Mapping::new(fd, {SIZE}) unexpectedly succeeded"),
            Err(e) => println!(
                "opener:  Mapping::new(fd, {SIZE}) = error: {}\n         (a raw mmap would succeed, and the first touch would raise SIGBUS)",
                error_line(&e)
            ),
        }
        let opts = ShmOptions::new().dir(shm.clone()).size(SIZE as u64);
        match opts.open(name.as_str()) {
            Ok(_) => println!("opener:  ShmOptions::open unexpectedly accepted a 0-byte object"),
            Err(e) => println!(
                "opener:  ShmOptions::new().size({SIZE}).open() = error: {}",
                error_line(&e)
            ),
        }
        println!(
            "the cure: ShmOptions::create publishes the file already sized (temp file, ftruncate, link), so this state is never visible"
        );
        Ok(())
    })();
    shm.unlink(name.as_str())?;
    result
}
