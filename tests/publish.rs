//! `ShmOptions`: sized atomic publish (proved by processes hammering open during creation),
//! exact modes, open checks, and the owner handle.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::mpsc;
use std::time::Duration;

use tmpshm::{Access, Mapping, Mode, OFlag, Role, ShmDir, ShmOptions, Step};
use tmpshm_testkit::support::*;

const SIZE: usize = 1 << 16;

fn opts(dir: &std::path::Path) -> ShmOptions {
    ShmOptions::new().dir(ShmDir::new(dir)).size(SIZE)
}

/// How a hammering child opens the object.
#[derive(Clone, Copy)]
enum Opener {
    /// `open(2)` itself, which refuses nothing: sees exactly what is at the path.
    Raw,
    /// `ShmDir::open(O_RDWR)`: every check tmpshm makes (one link, regular, ours).
    Dir,
    /// `ShmOptions::open` without a size, so that a short object shows as a wrong size.
    Options,
}

/// What the hammering children saw: successful opens, opens of a file of the wrong size,
/// opens refused with `EPERM`, and opens failing with anything but `ENOENT` and `EPERM`.
#[derive(Debug, Default)]
struct Seen {
    opens: u64,
    wrong_size: u64,
    eperm: u64,
    other: u64,
}

/// One open of `name` in `dir` (or of `cpath`, for `Raw`): the size, or the errno.
fn open_once(how: Opener, cpath: &CString, dir: &std::path::Path) -> Result<usize, i32> {
    match how {
        Opener::Raw => {
            // SAFETY: cpath is a valid C string; the fd is closed below.
            let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_NOFOLLOW) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
            // SAFETY: st is a plain out-parameter for fstat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fd is open; st is writable.
            let r = unsafe { libc::fstat(fd, &mut st) };
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
            if r == 0 {
                Ok(st.st_size as usize)
            } else {
                Err(libc::EIO)
            }
        }
        Opener::Dir => {
            let fd = ShmDir::new(dir)
                .open("/hammer", OFlag::O_RDWR, Mode::empty())
                .map_err(|e| e.raw_os_error())?;
            let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| e as i32)?;
            Ok(st.st_size as usize)
        }
        Opener::Options => ShmOptions::new()
            .dir(ShmDir::new(dir))
            .open("/hammer")
            .map(|s| s.len())
            .map_err(|e| e.raw_os_error()),
    }
}

/// Forks one child per entry of `openers`; each opens `<dir>/.SHMDhammer` its way in a loop
/// until `create_all` returns. Then collects what they saw. `Raw` children open with raw
/// syscalls; the others run tmpshm itself, as any program would.
fn hammer(openers: &[Opener], dir: &std::path::Path, create_all: impl FnOnce()) -> Seen {
    let path = dir.join(".SHMDhammer");
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // The children stop at end-of-file on this pipe: once the parent closes its write end.
    let (stop_r, stop_w) = nix::unistd::pipe().expect("pipe");
    nix::fcntl::fcntl(
        stop_r.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
    )
    .expect("fcntl");
    let children: Vec<Child> = openers
        .iter()
        .map(|&how| {
            let (cpath, stop_r, stop_w) = (&cpath, &stop_r, &stop_w);
            fork_child(move || {
                // SAFETY: closes the child's copy of the write end, so that the pipe reports
                // end-of-file once the parent closes its own; this process never uses it.
                unsafe { libc::close(stop_w.as_raw_fd()) };
                let mut seen = [0u64; 4];
                let mut byte = [0u8; 1];
                let started = std::time::Instant::now();
                // A hang guard: never spin longer than five minutes, whatever happens.
                while started.elapsed() < Duration::from_secs(300) {
                    if let Ok(0) = nix::unistd::read(stop_r, &mut byte) {
                        break; // the parent closed its end: done
                    }
                    match open_once(how, cpath, dir) {
                        Ok(size) => {
                            seen[0] += 1;
                            seen[1] += u64::from(size != SIZE);
                        }
                        Err(libc::ENOENT) => {}
                        Err(libc::EPERM) => seen[2] += 1,
                        Err(_) => seen[3] += 1,
                    }
                }
                let [opens, wrong_size, eperm, other] = seen;
                Ok::<_, String>(format!("{opens} {wrong_size} {eperm} {other}"))
            })
        })
        .collect();
    drop(stop_r);
    create_all();
    // Closing the write end tells the children to stop.
    drop(stop_w);
    let mut seen = Seen::default();
    for report in wait_all(children, Duration::from_secs(330), "opener") {
        let n: Vec<u64> = report.split(' ').map(|v| v.parse().unwrap()).collect();
        seen.opens += n[0];
        seen.wrong_size += n[1];
        seen.eperm += n[2];
        seen.other += n[3];
    }
    seen
}

/// How many objects are created (and unlinked) under the hammer.
fn rounds() -> usize {
    pick(400, 20_000)
}

#[test]
fn openers_never_see_a_created_object_smaller_than_its_size() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(d.path());
    // Raw opens see whatever is at the path; tmpshm's own opens also refuse a second link,
    // so they prove that no moment of the publish shows one (no spurious EPERM).
    let openers = [Opener::Raw, Opener::Dir, Opener::Options];
    let seen = hammer(&openers, d.path(), || {
        for _ in 0..rounds() {
            let shm = o.create("/hammer").unwrap();
            shm.unlink().unwrap();
        }
    });
    assert_eq!(
        seen.wrong_size, 0,
        "an opener saw a half-made object: {seen:?}"
    );
    assert_eq!(seen.eperm, 0, "an opener saw a second link: {seen:?}");
    assert_eq!(seen.other, 0, "{seen:?}");
    assert!(
        seen.opens > 0,
        "the openers never saw the object: the test proved nothing"
    );
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The control: the same hammer does catch the classic open-then-ftruncate creation.
/// Ignored by default because it depends on scheduling; run with `-- --ignored`.
#[test]
#[ignore]
fn control_hammer_catches_the_naive_creation() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let seen = hammer(&[Opener::Raw; 3], d.path(), || {
        for _ in 0..rounds() {
            let fd = shm
                .open("/hammer", OFlag::O_CREAT | OFlag::O_RDWR, perm(0o600))
                .unwrap();
            std::thread::sleep(std::time::Duration::from_micros(200));
            nix::unistd::ftruncate(&fd, SIZE as i64).unwrap();
            shm.unlink("/hammer").unwrap();
        }
    });
    assert!(seen.wrong_size > 0, "opens {}", seen.opens);
}

#[test]
fn mode_is_exact_whatever_the_umask() {
    // umask is per process, and other tests of this binary run meanwhile: change it only in
    // a child.
    let d = tempfile::tempdir().unwrap();
    let o = opts(d.path()).mode(perm(0o664));
    let code = run_in_child(Duration::from_secs(30), move || {
        nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
        i32::from(o.create("/mode").map(|s| s.created()).ok() != Some(true))
    });
    assert_eq!(code, 0);
    let meta = std::fs::metadata(d.path().join(".SHMDmode")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o664);
    assert_eq!(meta.len(), SIZE as u64);
    assert_eq!(meta.nlink(), 1);
}

#[test]
fn bad_requests_are_refused_before_touching_anything() {
    let d = tempfile::tempdir().unwrap();
    let no_size = ShmOptions::new().dir(ShmDir::new(d.path()));
    let e = no_size.create("/x").unwrap_err();
    assert_eq!(e.raw_os_error(), libc::EINVAL);
    assert!(e.to_string().contains("needs a size"), "{e}");
    assert_eq!(
        no_size.open_or_create("/x").unwrap_err().raw_os_error(),
        libc::EINVAL
    );
    let e = opts(d.path()).mode(perm(0o4755)).create("/x").unwrap_err();
    assert_eq!(e.raw_os_error(), libc::EINVAL);
    for bad in ["x", "/a/b", "/", ""] {
        assert_eq!(
            opts(d.path()).create(bad).unwrap_err().raw_os_error(),
            libc::EINVAL,
            "{bad:?}"
        );
    }
    assert_eq!(
        opts(d.path()).create("/a\0b").unwrap_err().raw_os_error(),
        libc::EINVAL
    );
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn create_on_a_taken_name_is_eexist_and_leaves_no_temporary_file() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(d.path());
    let first = o.create("/taken").unwrap();
    let e = o.create("/taken").unwrap_err();
    assert_eq!(e.raw_os_error(), libc::EEXIST);
    assert!(e.to_string().contains(".SHMDtaken"), "{e}");
    // A symbolic link counts as taken, and is not followed.
    std::os::unix::fs::symlink("/etc/passwd", d.path().join(".SHMDlink")).unwrap();
    assert_eq!(o.create("/link").unwrap_err().raw_os_error(), libc::EEXIST);
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with(".SHMT") && !n.starts_with(".SHML")),
        "{names:?}"
    );
    drop(first);
}

#[test]
fn open_checks_the_size_and_open_or_create_never_returns_a_small_object() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    // Made the classic way, not yet sized.
    drop(
        shm.open("/small", OFlag::O_CREAT | OFlag::O_RDWR, perm(0o600))
            .unwrap(),
    );
    let e = opts(d.path()).open("/small").unwrap_err();
    assert_eq!(e.raw_os_error(), libc::EINVAL);
    assert!(e.to_string().contains("0 bytes long"), "{e}");
    assert_eq!(
        opts(d.path())
            .open_or_create("/small")
            .unwrap_err()
            .raw_os_error(),
        libc::EINVAL
    );
    // Without a size, open takes it as it is, and mapping it is a clear error.
    let any = ShmOptions::new().dir(shm.clone()).open("/small").unwrap();
    assert!(any.is_empty());
    assert_eq!(
        any.map(Access::ReadOnly).unwrap_err().raw_os_error(),
        libc::EINVAL
    );

    let made = opts(d.path()).open_or_create("/ooc").unwrap();
    assert!(made.created());
    assert_eq!(made.len(), SIZE);
    let again = opts(d.path())
        .read_only(true)
        .open_or_create("/ooc")
        .unwrap();
    assert!(!again.created());
    assert_eq!(
        again.map(Access::ReadWrite).unwrap_err().raw_os_error(),
        libc::EACCES
    );
    made.map(Access::ReadWrite)
        .unwrap()
        .write_at(0, b"x")
        .unwrap();
    let mut b = [0u8; 1];
    again
        .map(Access::ReadOnly)
        .unwrap()
        .read_at(0, &mut b)
        .unwrap();
    assert_eq!(&b, b"x");
    assert_eq!(
        opts(d.path()).open("/absent").unwrap_err().raw_os_error(),
        libc::ENOENT
    );
}

#[test]
fn owner_handle_unlinks_on_drop_only_its_own_object() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(d.path());
    let owned = o.clone().unlink_on_drop(true).create("/own").unwrap();
    assert!(owned.unlinks_on_drop());
    let path = owned.path().to_path_buf();
    drop(owned);
    assert!(!path.exists());

    // Replaced behind its back: the drop leaves the new object alone.
    let owned = o.clone().unlink_on_drop(true).create("/own").unwrap();
    ShmDir::new(d.path()).unlink("/own").unwrap();
    let newcomer = o.create("/own").unwrap();
    drop(owned);
    assert!(path.exists());
    drop(newcomer);

    // into_fd gives up ownership; the fd still works with memmap2 (AsFd).
    let fd = o
        .clone()
        .unlink_on_drop(true)
        .open("/own")
        .unwrap()
        .into_fd();
    assert!(path.exists());
    // SAFETY: nobody else maps or truncates this object during the test.
    let m = unsafe { memmap2::MmapOptions::new().len(4).map(fd.as_raw_fd()) }.unwrap();
    assert_eq!(&m[..], &[0, 0, 0, 0]);
    let mapped = Mapping::new(&fd, SIZE, Access::ReadOnly).unwrap();
    assert_eq!(mapped.len(), SIZE);

    let mut kept = o.open("/own").unwrap();
    kept.set_unlink_on_drop(true);
    assert!(kept.grow_to(SIZE * 2).unwrap());
    assert!(!kept.grow_to(1).unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64 * 2);
    drop(kept);
    assert!(!path.exists());
}

#[test]
fn the_returned_fd_names_the_real_file_not_the_temporary_one() {
    let d = tempfile::tempdir().unwrap();
    let shm = opts(d.path()).create("/named").unwrap();
    let fd = shm.as_fd().as_raw_fd();
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"));
    if let Ok(target) = link {
        assert_eq!(target, d.path().join(".SHMDnamed"));
    } else {
        skip(
            "the_returned_fd_names_the_real_file_not_the_temporary_one",
            "/proc/self/fd is not available here",
        );
    }
}

/// The inode at `path`.
fn ino(path: &std::path::Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap().ino()
}

#[test]
fn unlink_on_drop_never_removes_an_object_recreated_during_the_drop() {
    // At the drop's unlink step, another thread unlinks the object and creates a new one
    // under the same name. The drop must not remove the newcomer: it compares and unlinks
    // under the creation lock, so the re-creation waits until the drop is done.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(".SHMDrace");
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let done_rx = std::sync::Mutex::new(done_rx);
    let rival = std::sync::Arc::new(std::sync::Mutex::new(None));
    let joined = rival.clone();
    let dir = d.path().to_path_buf();
    let traced = ShmDir::new(d.path()).with_trace(move |step| {
        if let Step::Unlink {
            role: Role::Object, ..
        } = step
        {
            let (dir, tx) = (dir.clone(), done_tx.clone());
            *rival.lock().unwrap() = Some(std::thread::spawn(move || {
                let o = opts(&dir);
                ShmDir::new(&dir).unlink("/race").unwrap();
                let fresh = o.create("/race").unwrap().into_fd();
                let _ = tx.send(());
                fresh
            }));
            // Give the rival every chance to finish before our unlink (it cannot, if the
            // lock is held); this waits, it asserts nothing about speed.
            let _ = done_rx.lock().unwrap().recv_timeout(Duration::from_secs(2));
        }
    });
    let owner = ShmOptions::new()
        .dir(traced)
        .size(SIZE)
        .unlink_on_drop(true)
        .create("/race")
        .unwrap();
    let first = ino(&path);
    // Kept open so that the file system cannot give its inode number to the newcomer.
    let _first_fd = owner.as_fd().try_clone_to_owned().unwrap();
    drop(owner);
    // The rival finishes once the drop has released the lock.
    let rival = joined
        .lock()
        .unwrap()
        .take()
        .expect("the drop unlinked nothing");
    let _fresh = rival.join().unwrap();
    assert!(path.exists(), "the drop removed the re-created object");
    assert_ne!(ino(&path), first);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
}

#[test]
fn shm_unlink_leaves_a_recreated_object_alone() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(d.path());
    let path = d.path().join(".SHMDagain");
    let old = o.create("/again").unwrap();
    ShmDir::new(d.path()).unlink("/again").unwrap();
    let newcomer = o.create("/again").unwrap();
    let e = old.unlink().unwrap_err();
    assert_eq!(e.raw_os_error(), libc::ENOENT, "{e}");
    assert!(path.exists());
    newcomer.unlink().unwrap();
    assert!(!path.exists());
    assert_eq!(
        o.create("/again")
            .unwrap()
            .unlink()
            .map_err(|e| e.raw_os_error()),
        Ok(())
    );
}

#[test]
fn the_temporary_file_is_ours_alone_until_published() {
    // Whatever mode the object gets, its temporary file is 0600 while it is being made: a file
    // others could open, they could flock, and so freeze the create and the name's lock.
    let d = tempfile::tempdir().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let shm = ShmDir::new(d.path()).with_trace(move |step| {
        if let Step::Chmod { path, .. } = step {
            let mode = std::fs::symlink_metadata(path)
                .unwrap()
                .permissions()
                .mode();
            s2.lock().unwrap().push(mode & 0o777);
        }
    });
    let obj = ShmOptions::new()
        .dir(shm)
        .size(64)
        .mode(perm(0o666))
        .create("/open-mode")
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![0o600],
        "mode of the temporary file before fchmod"
    );
    let meta = std::fs::metadata(d.path().join(".SHMDopen-mode")).unwrap();
    assert_eq!(
        meta.mode() & 0o777,
        0o666,
        "the object gets exactly the mode asked for"
    );
    drop(obj);
}

#[test]
fn unlink_works_past_a_lock_file_planted_by_another_user() {
    if !is_root() {
        skip(
            "unlink_works_past_a_lock_file_planted_by_another_user",
            format_args!("needs root to plant a file of uid {NOBODY}"),
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let obj = ShmOptions::new()
        .dir(ShmDir::new(d.path()))
        .size(8)
        .create("/planted")
        .unwrap();
    let lock = d.path().join(".SHMLplanted");
    std::fs::write(&lock, b"").unwrap();
    nix::unistd::chown(&lock, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    // The planted lock stops creators (EPERM), but not the owner's own unlink.
    obj.unlink().unwrap();
    assert!(!d.path().join(".SHMDplanted").exists());
}
