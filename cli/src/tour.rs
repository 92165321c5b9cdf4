//! `tmpshm tour`: a SysV segment, a tmpshm object, a plain file mapping and a named semaphore
//! side by side in one process, and what `/proc/self/maps` makes of them.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tmpshm::{Access, Mapping, Mode, OFlag, SemOptions, Shm, ShmDir, ShmOptions, Step};

use crate::fmt::{error_line, os_err, show, show_path, show_text, trace_line, Shown};
use crate::CliError;

const SIZE: usize = 4096;

/// Names tried before giving up on a directory where someone plants files at every name.
const ATTEMPTS: usize = 16;

/// 64 unpredictable bits as hex. Another user who can guess a name can plant a file, link or
/// lock file there first and make the step fail; these come from std's randomly keyed SipHash
/// (a fresh key each call), so no one can.
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// How a create fails when someone planted something at its name: a file (`EEXIST`), a lock
/// file or link we may not use (`EPERM`, `EACCES`, `ELOOP`), a FIFO or such (`EINVAL`).
fn planted(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(libc::EEXIST | libc::EPERM | libc::EACCES | libc::ELOOP | libc::EINVAL)
    )
}

/// A failed create and its errno.
type Failed = (CliError, Option<i32>);

fn failed(e: tmpshm::Error) -> Failed {
    let errno = e.raw_os_error();
    (e.into(), Some(errno))
}

/// Calls `create` with fresh random suffixes until it succeeds, fails for another reason than
/// a planted name, or has failed [`ATTEMPTS`] times; then says what and where.
fn with_fresh_name<T>(
    what: &str,
    dir: &Path,
    mut create: impl FnMut(&str) -> Result<T, Failed>,
) -> Result<T, CliError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match create(&random_suffix()) {
            Ok(t) => return Ok(t),
            Err((_, errno)) if planted(errno) && tries < ATTEMPTS => {}
            Err((e, errno)) if planted(errno) => {
                return Err(Shown(format!(
                    "could not create the tour's {what} in {}: {ATTEMPTS} random names were all \
                     taken or refused, the last with {}; run the tour in a directory of your own \
                     (--dir)",
                    show_path(dir),
                    error_line(&*e)
                ))
                .into())
            }
            Err((e, _)) => return Err(e),
        }
    }
}

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
        "tmpshm tour in {} (pid {pid}): three kinds of shared memory and a named semaphore in one process",
        show_path(shm.dir())
    );

    let sysv = crate::sysv::tour_part(&mut marks, SIZE)?;

    heading("2. POSIX shared memory the illumos way: a file in the directory (tmpshm)");
    let traced = shm.clone().with_trace(|step| {
        // Steps name paths, and the directory's name is anyone's choice: escaped.
        println!("   | {}", trace_line(step));
        if let Step::LockAcquired { path } = step {
            println!("   |   the short-lived lock file: {}", describe(path));
        }
    });
    let opts = ShmOptions::new()
        .dir(traced.clone())
        .size(SIZE)
        .mode(Mode::S_IRUSR | Mode::S_IWUSR)
        .unlink_on_drop(true);
    let (name, obj): (String, Shm) = with_fresh_name("object", shm.dir(), |suffix| {
        let name = format!("/tour-{suffix}");
        opts.create(name.as_str())
            .map(|obj| (name, obj))
            .map_err(failed)
    })?;
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
    let (plain_path, plain): (PathBuf, File) =
        with_fresh_name("plain file", shm.dir(), |suffix| {
            let p = shm.dir().join(format!("tmpshm-tour-{suffix}.plain"));
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&p)
                .map(|f| (p.clone(), f))
                .map_err(|e| {
                    let errno = e.raw_os_error();
                    (os_err(format!("open {}", show_path(&p)), &e).into(), errno)
                })
        })?;
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
    snag(shm)?;

    heading("6. A named semaphore: the same layer, a sem_t in a file");
    semaphore(shm)?;

    heading("Cleanup");
    drop(map);
    drop(plain_map);
    let data = obj.path().to_path_buf();
    obj.unlink()?;
    println!("shm_unlink({name:?}) = 0; {}", describe(&data));
    drop(_cleanup);
    println!("unlink(\"{}\") = 0", show_path(&plain_path));
    // Detached only now, so that its mapping showed in the listing above (where the system
    // has no SysV shm there is nothing to detach).
    #[allow(clippy::drop_non_drop)]
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

fn semaphore(shm: &ShmDir) -> Result<(), CliError> {
    let opts = SemOptions::new().dir(shm.clone());
    let sem = with_fresh_name("semaphore", shm.dir(), |suffix| {
        opts.create(format!("/tour-sem-{suffix}").as_str())
            .map_err(failed)
    })?;
    let name = show(sem.name()).to_string();
    println!(
        "sem_open(\"{name}\", O_CREAT|O_EXCL, 0600, 0) = {:p}",
        sem.as_ptr()
    );
    println!(
        "the semaphore: {} (one sem_t of this libc, {} bytes, initialised by sem_init(sem, 1, 0) before it got its name)",
        describe(sem.path()),
        tmpshm::SEM_SIZE
    );
    sem.post()?;
    println!("sem_post(sem) = 0; sem_getvalue = {}", sem.value()?);
    let took = sem.try_wait()?;
    println!(
        "sem_trywait(sem) = {}; sem_getvalue = {}",
        if took { "0" } else { "-1 EAGAIN" },
        sem.value()?
    );
    let again = opts.open(sem.name())?;
    println!(
        "a second sem_open(\"{name}\") in this process = {:p}: the same address, as POSIX wants",
        again.as_ptr()
    );
    drop(again);
    let path = sem.path().to_path_buf();
    sem.unlink()?;
    println!("sem_unlink(\"{name}\") = 0; {}", describe(&path));
    Ok(())
}

fn snag(shm: &ShmDir) -> Result<(), CliError> {
    // The classic sequence, made visible: shm_open(O_CREAT) now, ftruncate "later".
    let (name, fd): (String, OwnedFd) = with_fresh_name("snag object", shm.dir(), |suffix| {
        let name = format!("/tour-snag-{suffix}");
        shm.open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map(|fd| (name, fd))
        .map_err(failed)
    })?;
    let result = (|| -> Result<(), CliError> {
        println!(
            "creator: shm_open({name:?}, O_CREAT|O_EXCL|O_RDWR, 0600) = fd {} (not sized yet)",
            fd.as_raw_fd()
        );
        let opener = shm.open(name.as_str(), OFlag::O_RDWR, Mode::empty())?;
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
        let opts = ShmOptions::new().dir(shm.clone()).size(SIZE);
        match opts.open(name.as_str()) {
            Ok(_) => println!("opener:  ShmOptions::open unexpectedly accepted a 0-byte object"),
            Err(e) => println!(
                "opener:  ShmOptions::new().size({SIZE}).open() = error: {}",
                error_line(&e)
            ),
        }
        println!(
            "the cure: ShmOptions::create publishes the file already sized (a temporary file, reserved with fallocate, renamed into place with renameat2), so this state is never visible"
        );
        Ok(())
    })();
    shm.unlink(name.as_str())?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planted_at_every_name(
        seen: &mut Vec<String>,
    ) -> impl FnMut(&str) -> Result<(), Failed> + '_ {
        |suffix| {
            seen.push(suffix.to_string());
            Err(("planted".into(), Some(libc::EEXIST)))
        }
    }

    #[test]
    fn names_are_fresh_and_random() {
        let a: Vec<String> = (0..8).map(|_| random_suffix()).collect();
        for (i, s) in a.iter().enumerate() {
            assert_eq!(s.len(), 16, "{s}");
            assert!(!a[..i].contains(s), "{s} twice");
        }
    }

    #[test]
    fn planted_names_are_retried_a_bounded_number_of_times() {
        let mut seen = Vec::new();
        let e = with_fresh_name("object", Path::new("/d"), planted_at_every_name(&mut seen))
            .unwrap_err()
            .to_string();
        assert_eq!(seen.len(), ATTEMPTS);
        assert!(e.contains("object in /d: 16 random names"), "{e}");

        let mut tries = 0;
        let got = with_fresh_name("object", Path::new("/d"), |suffix| {
            tries += 1;
            match tries {
                1 => Err(("planted".into(), Some(libc::ELOOP))),
                2 => Err(("planted".into(), Some(libc::EPERM))),
                _ => Ok(suffix.to_string()),
            }
        });
        assert_eq!(tries, 3);
        assert_eq!(got.unwrap().len(), 16);

        // Anything else is no planted name: no retry.
        let mut tries = 0;
        let e = with_fresh_name("object", Path::new("/d"), |_| -> Result<(), Failed> {
            tries += 1;
            Err(("full".into(), Some(libc::ENOSPC)))
        })
        .unwrap_err();
        assert_eq!((tries, e.to_string()), (1, "full".to_string()));
    }
}
