//! Listing and stale-file collection: what `ShmDir::list`, `stat` and `lock_info` report,
//! and that `gc` removes only what no live process holds, even while lockers come and go.
//! (What the `tmpshm` command prints of them: cli/tests/cli.rs.)

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::fcntl::{Flock, FlockArg};
use tmpshm::{
    AuxKind, FileKind, FlockOp, Layout, LockState, OFlag, ObjectKind, ShmDir, ShmOptions, Step,
};
use tmpshm_testkit::support::*;

#[test]
fn list_reports_objects_locks_and_temporary_files() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    ShmOptions::new()
        .dir(shm.clone())
        .size(123)
        .mode(perm(0o640))
        .create("/obj")
        .unwrap();
    std::os::unix::fs::symlink("/nowhere", d.path().join(".SHMDplanted")).unwrap();
    std::fs::write(d.path().join("unrelated"), b"x").unwrap();
    std::fs::write(d.path().join(".SHMLobj"), b"").unwrap();
    std::fs::write(d.path().join(".SHMT42.7"), b"").unwrap();
    let held_file = std::fs::File::create(d.path().join(".SHMLbusy")).unwrap();
    let held = Flock::lock(held_file, FlockArg::LockExclusive).unwrap();

    let inv = shm.list().unwrap();
    let names: Vec<_> = inv.objects.iter().map(|o| o.name.clone()).collect();
    assert_eq!(names, ["/obj", "/planted"]);
    let obj = &inv.objects[0];
    assert_eq!(
        (obj.file, obj.size, obj.mode, obj.nlink),
        (FileKind::Regular, 123, 0o640, 1)
    );
    assert_eq!(obj.uid, nix::unistd::geteuid().as_raw());
    assert!(obj.modified.elapsed().unwrap().as_secs() < 3600);
    assert_eq!(obj.kind, ObjectKind::Shm);
    assert_eq!(inv.objects[1].file, FileKind::Symlink);

    let by = |file: &str| {
        inv.locks
            .iter()
            .find(|l| l.path == d.path().join(file))
            .unwrap_or_else(|| panic!("{file} not listed: {:?}", inv.locks))
    };
    assert_eq!(
        by(".SHMLbusy").state,
        LockState::Held {
            pid: Some(std::process::id())
        }
    );
    assert_eq!(
        by(".SHMLbusy").kind,
        AuxKind::Lock {
            kind: ObjectKind::Shm,
            name: "/busy".into()
        }
    );
    assert_eq!(by(".SHMLobj").state, LockState::Stale);
    assert_eq!(
        by(".SHMT42.7").kind,
        AuxKind::Temp {
            kind: ObjectKind::Shm
        }
    );
    assert_eq!(inv.locks.len(), 3);
    // Listing disturbed nothing.
    assert!(d.path().join(".SHMLobj").exists());
    drop(held);

    let st = shm.stat("/obj").unwrap();
    assert_eq!((st.size, st.mode), (123, 0o640));
    assert_eq!(shm.stat("/none").unwrap_err().raw_os_error(), libc::ENOENT);
    assert_eq!(shm.stat("bad").unwrap_err().raw_os_error(), libc::EINVAL);
    assert_eq!(
        ShmDir::new(d.path().join("missing"))
            .list()
            .unwrap_err()
            .raw_os_error(),
        libc::ENOENT
    );
}

#[test]
fn gc_keeps_a_lock_held_at_that_moment() {
    // The tracer runs while the creation lock is held: collect right then.
    let d = tempfile::tempdir().unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let plain = ShmDir::new(d.path());
    let traced = ShmDir::new(d.path()).with_trace(move |step| {
        if let Step::LockAcquired { path } = step {
            let r = plain.gc().unwrap();
            sink.lock()
                .unwrap()
                .push((r.removed.clone(), r.held.clone(), path.exists()));
        }
    });
    ShmOptions::new()
        .dir(traced)
        .size(10)
        .create("/busy")
        .unwrap();
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1);
    let (removed, held, existed) = &reports[0];
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(held, &[d.path().join(".SHMLbusy")]);
    assert!(existed);
    assert!(
        !d.path().join(".SHMLbusy").exists(),
        "released locks leave no file"
    );
}

#[test]
fn gc_heals_an_object_left_with_two_links_by_a_crashed_creator() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let opts = ShmOptions::new().dir(shm.clone()).size(64);
    drop(opts.create("/half").unwrap());
    // A creator killed between link() and unlink() of its temporary name (possible only in
    // the link fallback, where renameat2 is missing).
    std::fs::hard_link(d.path().join(".SHMDhalf"), d.path().join(".SHMT99999.0")).unwrap();
    assert_eq!(opts.open("/half").unwrap_err().raw_os_error(), libc::EPERM);
    let report = shm.gc().unwrap();
    assert_eq!(report.removed, [d.path().join(".SHMT99999.0")]);
    assert_eq!(opts.open("/half").unwrap().len(), 64);
}

#[test]
fn gc_refuses_what_is_not_ours_or_not_a_file() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    std::fs::create_dir(d.path().join(".SHMLdir")).unwrap();
    nix::unistd::mkfifo(
        &d.path().join(".SHMLfifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let report = shm.gc().unwrap();
    assert!(report.removed.is_empty());
    assert_eq!(report.failed.len(), 2, "{:?}", report.failed);
    assert!(d.path().join(".SHMLdir").exists() && d.path().join(".SHMLfifo").exists());

    if !is_root() {
        skip(
            "gc_refuses_what_is_not_ours_or_not_a_file (another user's lock file)",
            "needs root to chown",
        );
        return;
    }
    let other = d.path().join(".SHMLother");
    std::fs::write(&other, b"").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    nix::unistd::chown(
        &other,
        Some(nix::unistd::Uid::from_raw(NOBODY)),
        Some(nix::unistd::Gid::from_raw(NOBODY)),
    )
    .unwrap();
    let report = shm.gc().unwrap();
    assert!(report
        .failed
        .iter()
        .any(|e| e.path() == Some(other.as_path()) && e.raw_os_error() == libc::EPERM));
    assert!(other.exists());
    let report = shm.clone().with_cross_user(true).gc().unwrap();
    assert_eq!(report.removed, std::slice::from_ref(&other));
}

#[test]
fn gc_running_alongside_lockers_breaks_nothing() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path());
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (shm, stop) = (shm.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut removed = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = shm.gc().unwrap();
                assert!(r.failed.is_empty(), "{:?}", r.failed);
                removed += r.removed.len();
            }
            removed
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let shm = shm.clone();
            std::thread::spawn(move || {
                // Half create the classic way (lock only), half sized (lock + temporary file).
                let sized = ShmOptions::new().dir(shm.clone()).size(4096);
                let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR;
                for _ in 0..300 {
                    let made = if i % 2 == 0 {
                        sized.create("/busy").map(drop)
                    } else {
                        shm.open("/busy", flags, perm(0o600)).map(drop)
                    };
                    match made {
                        Ok(()) => {}
                        Err(e) => assert_eq!(e.raw_os_error(), libc::EEXIST, "{e}"),
                    }
                    match shm.unlink("/busy") {
                        Ok(()) => {}
                        Err(e) => assert_eq!(e.raw_os_error(), libc::ENOENT, "{e}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap();
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn gc_in_the_glibc_layout_removes_only_temporary_files_of_the_exact_form() {
    let d = tempfile::tempdir().unwrap();
    let shm = ShmDir::new(d.path()).with_layout(Layout::Glibc);
    // Real objects whose names merely start with ".SHMT".
    for name in ["/.SHMTdata", "/.SHMT12", "/.SHMT1.x", "/.SHMT.3"] {
        drop(
            shm.open(name, OFlag::O_CREAT | OFlag::O_RDWR, perm(0o600))
                .unwrap(),
        );
    }
    // What a creator killed before its rename leaves in this layout.
    std::fs::write(d.path().join(".SHMT4242.7"), b"").unwrap();
    let inv = shm.list().unwrap();
    let names: Vec<_> = inv.objects.iter().map(|o| o.name.clone()).collect();
    assert_eq!(names, ["/.SHMT.3", "/.SHMT1.x", "/.SHMT12", "/.SHMTdata"]);
    assert_eq!(inv.locks.len(), 1, "{:?}", inv.locks);
    assert_eq!(
        inv.locks[0].kind,
        AuxKind::Temp {
            kind: ObjectKind::Shm
        }
    );
    let report = shm.gc().unwrap();
    assert_eq!(report.removed, [d.path().join(".SHMT4242.7")]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for file in [".SHMTdata", ".SHMT12", ".SHMT1.x", ".SHMT.3"] {
        assert!(d.path().join(file).exists(), "gc removed the object {file}");
    }
    // The illumos layout keeps treating every .SHMT file as temporary: objects are .SHMD.
    std::fs::write(d.path().join(".SHMTleft"), b"").unwrap();
    let report = ShmDir::new(d.path()).gc().unwrap();
    assert!(report.removed.contains(&d.path().join(".SHMTleft")));
}

#[test]
fn lock_info_probes_one_lock_file() {
    let d = tempfile::tempdir().unwrap();
    let probes = Arc::new(Mutex::new(Vec::new()));
    let sink = probes.clone();
    let shm = ShmDir::new(d.path()).with_trace(move |step| {
        if let Step::Flock {
            path,
            op: FlockOp::SharedNonblock,
            ..
        } = step
        {
            sink.lock().unwrap().push(path.to_path_buf());
        }
    });
    assert!(shm.lock_info("/one").unwrap().is_none());
    std::fs::write(d.path().join(".SHMLone"), b"").unwrap();
    std::fs::write(d.path().join(".SHMLother"), b"").unwrap();
    std::fs::write(d.path().join(".SHMT1.2"), b"").unwrap();
    let info = shm.lock_info("/one").unwrap().unwrap();
    assert_eq!(info.state, LockState::Stale);
    assert_eq!(
        info.kind,
        AuxKind::Lock {
            kind: ObjectKind::Shm,
            name: "/one".into()
        }
    );
    assert_eq!(info.path, d.path().join(".SHMLone"));
    let held_file = std::fs::File::open(d.path().join(".SHMLone")).unwrap();
    let held = Flock::lock(held_file, FlockArg::LockExclusive).unwrap();
    assert!(matches!(
        shm.lock_info("/one").unwrap().unwrap().state,
        LockState::Held { .. }
    ));
    drop(held);
    assert_eq!(
        *probes.lock().unwrap(),
        [d.path().join(".SHMLone"), d.path().join(".SHMLone")]
    );
    assert!(ShmDir::new(d.path())
        .with_layout(Layout::Glibc)
        .lock_info("/one")
        .unwrap()
        .is_none());
    assert_eq!(
        shm.lock_info("bad").unwrap_err().raw_os_error(),
        libc::EINVAL
    );
}
