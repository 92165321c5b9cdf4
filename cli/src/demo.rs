//! `tmpshm demo`: create "/blah", size it, map it, write, and read it back from a second process.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use tmpshm::{Access, Escaped, Mapping, Mode, OFlag, ShmDir};

use crate::fmt::{show_path, show_text, Shown};
use crate::CliError;

const SIZE: usize = 4096;

/// A failure whose message has its names and paths escaped already.
fn err(e: impl std::fmt::Display) -> CliError {
    Shown(e.to_string()).into()
}

pub fn run(shm: &ShmDir, name: &str) -> Result<(), CliError> {
    let rw = Mode::S_IRUSR | Mode::S_IWUSR;
    let fd = shm.open(name, OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR, rw)?;
    let path = shm.data_path(name)?;
    let shown = Escaped::new(name.as_bytes());
    println!(
        "shm_open(\"{shown}\", O_CREAT|O_EXCL|O_RDWR, 0600) = fd {}",
        fd_num(&fd)
    );
    nix::unistd::ftruncate(&fd, SIZE as libc::off_t).map_err(|e| err(format!("ftruncate: {e}")))?;
    println!("ftruncate(fd, {SIZE}) = 0");
    let map = Mapping::new(&fd, SIZE, Access::ReadWrite)?;
    println!(
        "mmap(NULL, {SIZE}, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0) = {:p}",
        map.as_ptr()
    );
    let msg = format!("hello from pid {}", std::process::id());
    map.write_at(0, msg.as_bytes())?;
    println!("wrote {msg:?}");

    let meta = std::fs::symlink_metadata(&path).map_err(|e| {
        err(format!(
            "{}: {}",
            show_path(&path),
            show_text(&e.to_string())
        ))
    })?;
    println!(
        "the object is a plain file: {} (mode {:04o}, uid {}, {} bytes, {} link)",
        show_path(&path),
        meta.mode() & 0o7777,
        meta.uid(),
        meta.len(),
        meta.nlink()
    );
    // Paths in it are bytes, as the directory's name is.
    let maps =
        std::fs::read("/proc/self/maps").map_err(|e| err(format!("/proc/self/maps: {e}")))?;
    let maps = String::from_utf8_lossy(&maps);
    for line in maps
        .lines()
        .filter(|l| l.ends_with(&*path.to_string_lossy()))
    {
        println!("mapped here as a file mapping: {}", show_text(line));
    }

    let exe = std::env::current_exe().map_err(|e| err(format!("current_exe: {e}")))?;
    // The reader is this program: its lines are escaped already, and its error line goes
    // straight to stderr.
    let out = Command::new(exe)
        .arg("--dir")
        .arg(shm.dir())
        .arg("demo-read")
        .arg(name)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| err(format!("spawning the reader: {e}")))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        let _ = shm.unlink(name);
        return Err(err(format!("the reader failed ({})", out.status)));
    }
    shm.unlink(name)?;
    println!(
        "shm_unlink(\"{shown}\") = 0; {} exists: {}",
        show_path(&path),
        path.exists()
    );
    drop(map);
    Ok(())
}

pub fn read(shm: &ShmDir, name: &str) -> Result<(), CliError> {
    let fd = shm.open(name, OFlag::O_RDONLY, Mode::empty())?;
    let map = Mapping::new(&fd, SIZE, Access::ReadOnly)?;
    let mut buf = [0u8; SIZE];
    map.read_at(0, &mut buf)?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(SIZE);
    println!(
        "second process (pid {}) read \"{}\"",
        std::process::id(),
        Escaped::new(&buf[..end])
    );
    Ok(())
}

fn fd_num(fd: &impl AsFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_fd().as_raw_fd()
}
