//! Named semaphores in real processes: wait and post across processes (through the Rust API
//! and through the libc's own calls on the shared `sem_t`), timeouts, the same-address rule,
//! unlink while open, `EINTR` in a C program, every plant of the threat model at the `.SEMD`
//! and `.SEML` paths, a counting semaphore under contention, and the C entry points.
//!
//! Short form here; `TMPSHM_LONG=1` runs the stress test with more processes and iterations.

use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use tmpshm::capi::{self, Names};
use tmpshm::{Access, SemOptions, Semaphore, ShmDir, ShmOptions, SEM_SIZE};
use tmpshm_testkit::support::clib::{compile, link_libtmpshm};
use tmpshm_testkit::support::*;

/// Fails the enclosing closure (a child's) with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// A "did not hang" bound for one step in another process.
const LIMIT: Duration = Duration::from_secs(30);

fn opts(dir: &Path) -> SemOptions {
    SemOptions::new().dir(ShmDir::new(dir))
}

fn errno_of<T: std::fmt::Debug>(r: tmpshm::Result<T>) -> i32 {
    r.unwrap_err().raw_os_error()
}

/// `(major:minor in /proc's hex, inode)` of `path` (not followed).
fn ident(path: &Path) -> (String, u64) {
    let m = std::fs::symlink_metadata(path).unwrap();
    let dev = m.dev() as libc::dev_t;
    (
        format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev)),
        m.ino(),
    )
}

/// How many mappings of the file `(dev, ino)` this process has now.
fn mappings(file: &(String, u64)) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 5 && f[3] == file.0 && f[4] == file.1.to_string()
        })
        .count()
}

/// The entries of `dir` that tmpshm makes on its own (temporary and lock files).
fn leftovers(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.starts_with(".SEMT") || n.starts_with(".SEML"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Across processes.

/// A child that, once told, opens `/name` itself (a mapping of its own: it was forked before
/// the semaphore existed), says ready, and runs `f` on it.
fn opener(
    dir: &Path,
    name: &'static str,
    go: &Ready,
    ready: &Ready,
    f: impl FnOnce(&Semaphore) -> Result<String, String>,
) -> Child {
    let o = opts(dir);
    fork_child(move || {
        go.wait(LIMIT);
        let s = o.open(name).map_err(|e| format!("open: {e}"))?;
        ready.notify();
        f(&s)
    })
}

#[test]
fn a_child_waits_and_the_parent_posts() {
    let d = shared_tempdir();
    let (go, ready) = (Ready::new(), Ready::new());
    let child = opener(d.path(), "/wp", &go, &ready, |s| {
        s.wait().map_err(|e| format!("wait: {e}"))?;
        // And back: the parent waits for this one.
        s.post().map_err(|e| format!("post: {e}"))?;
        Ok(String::new())
    });
    let sem = opts(d.path()).create("/wp").unwrap();
    go.notify();
    ready.wait(LIMIT);
    assert_eq!(sem.value().unwrap(), 0);
    sem.post().unwrap();
    child.wait(LIMIT, "waiter").unwrap();
    assert!(sem.wait_timeout(LIMIT).unwrap(), "the child's post");
    assert_eq!(sem.value().unwrap(), 0);
    sem.unlink().unwrap();
}

#[test]
fn the_libcs_own_calls_work_on_as_ptr_in_another_process() {
    let d = shared_tempdir();
    let (go, ready) = (Ready::new(), Ready::new());
    let child = opener(d.path(), "/libc", &go, &ready, |s| {
        // SAFETY: `as_ptr` is a live, initialised process-shared sem_t while `s` lives.
        let rc = unsafe { libc::sem_wait(s.as_ptr()) };
        if rc != 0 {
            return Err(format!("sem_wait: {}", Errno::last()));
        }
        // SAFETY: as above.
        let rc = unsafe { libc::sem_post(s.as_ptr()) };
        if rc != 0 {
            return Err(format!("sem_post: {}", Errno::last()));
        }
        Ok(String::new())
    });
    let sem = opts(d.path()).create("/libc").unwrap();
    go.notify();
    ready.wait(LIMIT);
    // SAFETY: as in the child.
    assert_eq!(unsafe { libc::sem_post(sem.as_ptr()) }, 0);
    child.wait(LIMIT, "libc waiter").unwrap();
    // SAFETY: as in the child; the child posted once, so this does not block.
    assert_eq!(unsafe { libc::sem_wait(sem.as_ptr()) }, 0);
    let mut v = -1;
    // SAFETY: as above; `v` is writable.
    assert_eq!(unsafe { libc::sem_getvalue(sem.as_ptr(), &mut v) }, 0);
    assert_eq!(v, 0);
    sem.unlink().unwrap();
}

#[test]
fn try_wait_wait_timeout_and_value() {
    let d = shared_tempdir();
    let o = opts(d.path());
    let sem = o.clone().value(3).create("/t3").unwrap();
    assert_eq!(sem.value().unwrap(), 3);
    for left in [2, 1, 0] {
        assert!(sem.try_wait().unwrap());
        assert_eq!(sem.value().unwrap(), left);
    }
    assert!(!sem.try_wait().unwrap(), "0: would block");
    assert!(!sem.wait_timeout(Duration::ZERO).unwrap());
    assert!(
        !sem.wait_timeout(Duration::from_millis(50)).unwrap(),
        "times out at 0"
    );
    assert_eq!(sem.value().unwrap(), 0);
    // Another process posts while this one waits with a (generous) timeout.
    let (go, ready) = (Ready::new(), Ready::new());
    let child = opener(d.path(), "/t3", &go, &ready, |s| {
        std::thread::sleep(Duration::from_millis(20));
        s.post().map_err(|e| format!("post: {e}"))?;
        Ok(String::new())
    });
    go.notify();
    ready.wait(LIMIT);
    assert!(sem.wait_timeout(LIMIT).unwrap(), "the child's post");
    child.wait(LIMIT, "poster").unwrap();
    assert_eq!(sem.value().unwrap(), 0);
    sem.post().unwrap();
    assert!(sem.wait_timeout(Duration::ZERO).unwrap());
    sem.unlink().unwrap();
}

#[test]
fn unlinked_while_open_the_handles_keep_working_across_processes() {
    let d = shared_tempdir();
    let (go, ready) = (Ready::new(), Ready::new());
    let dir = d.path().to_path_buf();
    let child = opener(d.path(), "/ul", &go, &ready, move |s| {
        s.wait().map_err(|e| format!("wait: {e}"))?;
        // The parent unlinked the name before posting.
        match opts(&dir).open("/ul") {
            Err(e) if e.raw_os_error() == libc::ENOENT => {}
            other => return Err(format!("open after unlink: {other:?}")),
        }
        s.post().map_err(|e| format!("post: {e}"))?;
        s.post().map_err(|e| format!("post: {e}"))?;
        Ok(String::new())
    });
    let sem = opts(d.path()).create("/ul").unwrap();
    go.notify();
    ready.wait(LIMIT);
    opts(d.path()).unlink("/ul").unwrap();
    assert!(!d.path().join(".SEMDul").exists());
    sem.post().unwrap();
    child.wait(LIMIT, "waiter").unwrap();
    assert!(sem.wait_timeout(LIMIT).unwrap());
    assert!(sem.wait_timeout(LIMIT).unwrap());
    assert_eq!(sem.value().unwrap(), 0);
    // A new semaphore of the same name is another one.
    let again = opts(d.path()).value(1).create("/ul").unwrap();
    assert_ne!(again.as_ptr(), sem.as_ptr());
    assert_eq!((sem.value().unwrap(), again.value().unwrap()), (0, 1));
    again.unlink().unwrap();
    assert_eq!(errno_of(sem.unlink()), libc::ENOENT);
}

// ---------------------------------------------------------------------------------------------
// One mapping per semaphore per process.

#[test]
fn repeated_opens_share_one_address_until_closed_as_often() {
    let d = shared_tempdir();
    let o = opts(d.path());
    let a = o.clone().value(2).create("/same").unwrap();
    let file = ident(a.path());
    let b = o.open("/same").unwrap();
    let c = o.clone().value(9).open_or_create("/same").unwrap();
    assert_eq!(a.as_ptr(), b.as_ptr());
    assert_eq!(a.as_ptr(), c.as_ptr());
    assert_eq!(mappings(&file), 1, "one mapping for three opens");
    assert_eq!(
        c.value().unwrap(),
        2,
        "open_or_create of an existing one keeps its value"
    );
    // Dropping some keeps the others working.
    drop(a);
    drop(c);
    assert_eq!(mappings(&file), 1);
    assert!(b.try_wait().unwrap());
    b.post().unwrap();
    assert_eq!(b.value().unwrap(), 2);
    // The last close unmaps; a new open maps again, and the value was kept in the file.
    drop(b);
    assert_eq!(mappings(&file), 0, "the last close unmaps");
    let again = o.open("/same").unwrap();
    assert_eq!(mappings(&file), 1);
    assert_eq!(again.value().unwrap(), 2);
    // Unlink and create anew: another file, another object, another address.
    o.unlink("/same").unwrap();
    let new = o.clone().value(5).create("/same").unwrap();
    let new_file = ident(new.path());
    assert_ne!(new_file, file, "a new inode");
    assert_ne!(new.as_ptr(), again.as_ptr());
    assert_eq!(mappings(&new_file), 1);
    new.post().unwrap();
    assert_eq!((again.value().unwrap(), new.value().unwrap()), (2, 6));
    let new2 = o.open("/same").unwrap();
    assert_eq!(new2.as_ptr(), new.as_ptr());
    drop(again);
    assert_eq!(mappings(&file), 0);
    new.unlink().unwrap();
}

// ---------------------------------------------------------------------------------------------
// EINTR, as the libc's own semaphores give it.

#[test]
fn a_signal_without_sa_restart_interrupts_a_wait_as_on_a_glibc_semaphore() {
    let test = "a_signal_without_sa_restart_interrupts_a_wait_as_on_a_glibc_semaphore";
    let d = shared_tempdir();
    let build = tempfile::tempdir().unwrap();
    let link = link_libtmpshm(&build.path().join("rt"));
    let Some(exe) = compile(test, "sem_eintr", build.path(), &link) else {
        return;
    };
    let glibc_name = format!("/tmpshm-test-eintr-{}", std::process::id());
    let out = std::process::Command::new(&exe)
        .args(["/eintr", &glibc_name])
        .env("TMPSHM_DIR", d.path())
        .env_remove("TMPSHM_TRACE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = |side: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(side))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let (ours, theirs) = (lines("tmpshm "), lines("glibc "));
    assert_eq!(
        ours,
        [
            "sem_wait rc=-1 errno=EINTR value=0",
            "sem_timedwait rc=-1 errno=EINTR value=0"
        ],
        "{text}"
    );
    if theirs.len() == 1 && theirs[0].starts_with("unavailable") {
        skip(
            test,
            format_args!("the comparison with glibc's sem_open: {}", theirs[0]),
        );
    } else {
        assert_eq!(ours, theirs, "tmpshm and glibc differ:\n{text}");
    }
    let alarms = if theirs.len() == 2 { 4 } else { 2 };
    assert!(text.contains(&format!("alarms={alarms}\n")), "{text}");
    assert!(leftovers(d.path()).is_empty() && !d.path().join(".SEMDeintr").exists());
}

// ---------------------------------------------------------------------------------------------
// The threat model at .SEMD and .SEML paths.

/// What a planted file is, to prove it untouched afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    kind: u32,
    uid: u32,
    mode: u32,
    nlink: u64,
    size: u64,
    data: Option<Vec<u8>>,
}

fn snapshot(path: &Path) -> Snapshot {
    let m = std::fs::symlink_metadata(path).unwrap();
    Snapshot {
        kind: m.mode() & libc::S_IFMT,
        uid: m.uid(),
        mode: m.mode() & 0o7777,
        nlink: m.nlink(),
        size: m.size(),
        data: m.is_file().then(|| std::fs::read(path).unwrap()),
    }
}

/// Runs `op` in a child (so that a hang is caught, and its mappings are its own), which
/// checks that it mapped none of `untouchable`; the errno `op` gave (0: success).
fn attempt(
    what: &str,
    untouchable: &[PathBuf],
    op: impl FnOnce() -> tmpshm::Result<Semaphore>,
) -> i32 {
    let files: Vec<(String, u64)> = untouchable.iter().map(|p| ident(p)).collect();
    let report = fork_child(move || {
        let e = match op() {
            Ok(s) => {
                drop(s);
                0
            }
            Err(e) => e.raw_os_error(),
        };
        for f in &files {
            if mappings(f) != 0 {
                return Err(format!("mapped the planted file {f:?}"));
            }
        }
        Ok(e.to_string())
    })
    .wait(LIMIT, what)
    .unwrap();
    report.parse().unwrap()
}

/// One plant: a name, the files to keep untouched, and the errno of each operation on it
/// (open, open_or_create, create).
struct Plant {
    what: &'static str,
    name: &'static str,
    untouchable: Vec<PathBuf>,
    open: i32,
    open_or_create: i32,
    create: i32,
}

fn check_plants(d: &Path, plants: &[Plant]) {
    let o = opts(d);
    let before: Vec<Vec<Snapshot>> = plants
        .iter()
        .map(|p| p.untouchable.iter().map(|f| snapshot(f)).collect())
        .collect();
    let mut failures = Vec::new();
    for p in plants {
        let untouchable = &p.untouchable;
        let got = [
            attempt(p.what, untouchable, || o.open(p.name)),
            attempt(p.what, untouchable, || {
                o.clone().value(1).open_or_create(p.name)
            }),
            attempt(p.what, untouchable, || o.clone().value(1).create(p.name)),
        ];
        let want = [p.open, p.open_or_create, p.create];
        if got != want {
            failures.push(format!(
                "{}: open, open_or_create, create gave {:?}, expected {:?}",
                p.what,
                got.map(Errno::from_raw),
                want.map(Errno::from_raw)
            ));
        }
    }
    for (p, before) in plants.iter().zip(before) {
        let after: Vec<Snapshot> = p.untouchable.iter().map(|f| snapshot(f)).collect();
        if after != before {
            failures.push(format!("{}: changed: {before:?} -> {after:?}", p.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A file of one `sem_t` (or `size` bytes) of pattern bytes, with `mode`.
fn plant_file(path: &Path, size: usize, mode: u32) {
    std::fs::write(path, vec![0xa5; size]).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[test]
fn plants_at_the_data_and_lock_paths_are_refused_promptly_and_left_alone() {
    let d = shared_tempdir();
    let p = |n: &str| d.path().join(n);
    // Data path.
    plant_file(&p("victim"), SEM_SIZE, 0o600);
    std::os::unix::fs::symlink(p("victim"), p(".SEMDsym")).unwrap();
    mkfifo(&p(".SEMDfifo"));
    std::fs::create_dir(p(".SEMDdir")).unwrap();
    plant_file(&p("victim2"), SEM_SIZE, 0o600);
    std::fs::hard_link(p("victim2"), p(".SEMDhl")).unwrap();
    plant_file(&p(".SEMDorw"), SEM_SIZE, 0o666);
    plant_file(&p(".SEMDbig"), 2 * SEM_SIZE, 0o600);
    plant_file(&p(".SEMDempty"), 0, 0o600);
    plant_file(&p(".SEMDshort"), SEM_SIZE - 1, 0o600);
    // Lock path (the data path is free, so creating takes the lock).
    std::os::unix::fs::symlink(p("victim"), p(".SEMLlsym")).unwrap();
    mkfifo(&p(".SEMLlfifo"));
    std::fs::create_dir(p(".SEMLldir")).unwrap();
    let (eloop, einval, eperm, eexist, enoent) = (
        libc::ELOOP,
        libc::EINVAL,
        libc::EPERM,
        libc::EEXIST,
        libc::ENOENT,
    );
    let plant = |what, name, files: &[&str], open, ooc, create| Plant {
        what,
        name,
        untouchable: files.iter().map(|f| p(f)).collect(),
        open,
        open_or_create: ooc,
        create,
    };
    let plants = [
        plant("symlink", "/sym", &["victim"], eloop, eloop, eexist),
        plant("FIFO", "/fifo", &[".SEMDfifo"], einval, einval, eexist),
        plant("directory", "/dir", &[".SEMDdir"], einval, einval, eexist),
        plant("hard link", "/hl", &["victim2"], eperm, eperm, eexist),
        plant("others-rw", "/orw", &[".SEMDorw"], eperm, eperm, eexist),
        plant("two sem_t", "/big", &[".SEMDbig"], einval, einval, eexist),
        plant("empty", "/empty", &[".SEMDempty"], einval, einval, eexist),
        plant("short", "/short", &[".SEMDshort"], einval, einval, eexist),
        plant("lock symlink", "/lsym", &["victim"], enoent, eloop, eloop),
        plant(
            "lock FIFO",
            "/lfifo",
            &[".SEMLlfifo"],
            enoent,
            einval,
            einval,
        ),
        plant("lock dir", "/ldir", &[".SEMLldir"], enoent, einval, einval),
    ];
    check_plants(d.path(), &plants);
    for absent in [".SEMDlsym", ".SEMDlfifo", ".SEMDldir"] {
        assert!(!p(absent).exists(), "{absent} was created");
    }
    assert!(entries(d.path()).iter().all(|e| !e.starts_with(".SEMT")));
}

#[test]
fn a_held_lock_file_open_to_others_is_refused_at_once() {
    let d = shared_tempdir();
    let lock = d.path().join(".SEMLheld");
    plant_file(&lock, 0, 0o666);
    let ready = Ready::new();
    let r = &ready;
    let lock2 = lock.clone();
    let holder = fork_child(move || {
        let f = std::fs::File::open(&lock2).map_err(|e| e.to_string())?;
        // SAFETY: flock on a live fd.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!("flock: {}", Errno::last()));
        }
        r.notify();
        std::thread::sleep(Duration::from_secs(120));
        Ok::<_, String>(String::new())
    });
    ready.wait(LIMIT);
    let plants = [Plant {
        what: "held lock file open to others",
        name: "/held",
        untouchable: vec![lock.clone()],
        open: libc::ENOENT,
        open_or_create: libc::EPERM,
        create: libc::EPERM,
    }];
    check_plants(d.path(), &plants);
    holder.kill();
    assert!(!d.path().join(".SEMDheld").exists());
}

#[test]
fn foreign_files_and_leases_are_refused_promptly() {
    let test = "foreign_files_and_leases_are_refused_promptly";
    if skip_unless_root(test) {
        return;
    }
    let d = shared_tempdir();
    let p = |n: &str| d.path().join(n);
    let nobody = Some(nix::unistd::Uid::from_raw(NOBODY));
    let nogroup = Some(nix::unistd::Gid::from_raw(NOBODY));
    for f in [".SEMDforeign", ".SEMLlforeign"] {
        plant_file(&p(f), if f.contains("SEMD") { SEM_SIZE } else { 0 }, 0o600);
        nix::unistd::chown(&p(f), nobody, nogroup).unwrap();
    }
    let mut plants = vec![
        Plant {
            what: "foreign data file",
            name: "/foreign",
            untouchable: vec![p(".SEMDforeign")],
            open: libc::EPERM,
            open_or_create: libc::EPERM,
            create: libc::EEXIST,
        },
        Plant {
            what: "foreign lock file",
            name: "/lforeign",
            untouchable: vec![p(".SEMLlforeign")],
            open: libc::ENOENT,
            open_or_create: libc::EPERM,
            create: libc::EPERM,
        },
    ];
    // A lease, held by the file's owner: an open that would wait for its break (45 s by
    // default) answers at once instead.
    let leases =
        std::fs::read_to_string("/proc/sys/fs/leases-enable").is_ok_and(|s| s.trim() == "1");
    let mut leaser = None;
    if leases {
        let ready = Ready::new();
        let r = &ready;
        let path = p(".SEMDleased");
        leaser = Some(fork_child(move || {
            become_nobody()?;
            std::fs::write(&path, vec![0u8; SEM_SIZE]).map_err(|e| e.to_string())?;
            let f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            // SAFETY: ignoring a signal installs no handler code; F_SETLEASE takes an integer.
            let rc = unsafe {
                libc::signal(libc::SIGIO, libc::SIG_IGN);
                libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK)
            };
            if rc != 0 {
                return Err(format!("F_SETLEASE: {}", Errno::last()));
            }
            r.notify();
            std::thread::sleep(Duration::from_secs(120));
            Ok::<_, String>(String::new())
        }));
        ready.wait(LIMIT);
        plants.push(Plant {
            what: "leased data file",
            name: "/leased",
            untouchable: vec![p(".SEMDleased")],
            open: libc::EPERM,
            open_or_create: libc::EPERM,
            create: libc::EEXIST,
        });
    } else {
        skip(test, "the lease part: fs.leases-enable is not 1");
    }
    check_plants(d.path(), &plants);
    if let Some(l) = leaser {
        l.kill();
    }
    assert!(!p(".SEMDlforeign").exists());
    assert!(entries(d.path()).iter().all(|e| !e.starts_with(".SEMT")));
}

#[test]
fn another_user_shares_only_on_purpose() {
    let test = "another_user_shares_only_on_purpose";
    if skip_unless_root(test) {
        return;
    }
    let d = shared_tempdir();
    // Root's semaphores: private, and one every user may read and write.
    let o = opts(d.path());
    let private = o.clone().value(1).create("/root600").unwrap();
    let public = o
        .clone()
        .value(1)
        .mode(perm(0o666))
        .create("/root666")
        .unwrap();
    let dir = d.path().to_path_buf();
    fork_child(move || {
        become_nobody()?;
        let o = opts(&dir);
        let errno = |r: tmpshm::Result<Semaphore>| r.err().map(|e| e.raw_os_error());
        ensure!(
            errno(o.open("/root600")) == Some(libc::EACCES),
            "root's 0600"
        );
        ensure!(
            errno(o.open("/root666")) == Some(libc::EPERM),
            "root's 0666"
        );
        let shared = SemOptions::new().dir(ShmDir::new(&dir).with_cross_user(true));
        let s = shared
            .open("/root666")
            .map_err(|e| format!("cross-user open: {e}"))?;
        ensure!(s.try_wait().map_err(|e| e.to_string())?, "root's unit");
        // Its own semaphore, as root makes them.
        let a = o
            .clone()
            .value(1)
            .create("/mine")
            .map_err(|e| e.to_string())?;
        let b = o.open("/mine").map_err(|e| e.to_string())?;
        ensure!(a.as_ptr() == b.as_ptr(), "two addresses");
        ensure!(a.try_wait().map_err(|e| e.to_string())?, "its unit");
        ensure!(!b.try_wait().map_err(|e| e.to_string())?, "one unit only");
        b.post().map_err(|e| e.to_string())?;
        Ok(String::new())
    })
    .wait(LIMIT, "uid 65534")
    .unwrap();
    assert_eq!(public.value().unwrap(), 0, "the other user took it");
    assert_eq!(private.value().unwrap(), 1);
    let theirs = d.path().join(".SEMDmine");
    assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), NOBODY);
    assert_eq!(errno_of(o.open("/mine")), libc::EPERM, "not root's");
    let shared = SemOptions::new().dir(ShmDir::new(d.path()).with_cross_user(true));
    assert_eq!(shared.open("/mine").unwrap().value().unwrap(), 1);
    assert!(leftovers(d.path()).is_empty(), "{:?}", entries(d.path()));
}

// ---------------------------------------------------------------------------------------------
// Contention.

/// The shared counters of the stress test, at the start of a tmpshm shared memory object.
struct Counters {
    /// Incremented without atomics, under the mutex semaphore.
    counter: *mut u64,
    /// How many processes are inside the counting semaphore now, and at most.
    inside: &'static AtomicU64,
    most: &'static AtomicU64,
}

impl Counters {
    /// # Safety
    /// `base` is a live read-write mapping of at least 24 bytes, aligned to 8, that outlives
    /// the value.
    unsafe fn at(base: *mut u8) -> Counters {
        // SAFETY: in bounds and aligned, as the caller promises; AtomicU64 has u64's layout.
        unsafe {
            Counters {
                counter: base.cast(),
                inside: &*base.add(8).cast::<AtomicU64>(),
                most: &*base.add(16).cast::<AtomicU64>(),
            }
        }
    }
}

#[test]
fn a_counting_semaphore_under_contention_loses_no_update_and_no_count() {
    let (procs, iters, k) = (pick(4, 12), pick(400u64, 4000), 2u32);
    let d = shared_tempdir();
    let shm_opts = ShmOptions::new().dir(ShmDir::new(d.path())).size(4096);
    let shm = shm_opts.create("/counter").unwrap();
    let map = shm.map(Access::ReadWrite).unwrap();
    let go = Ready::new();
    let mut children = Vec::new();
    for _ in 0..procs {
        let (o, shm_opts, go) = (opts(d.path()), shm_opts.clone(), &go);
        children.push(fork_child(move || {
            go.wait(LIMIT);
            // All at once: exactly one of them creates each semaphore.
            let gate = o.clone().value(k).open_or_create("/gate");
            let mutex = o.clone().value(1).open_or_create("/mutex");
            let (gate, mutex) = match (gate, mutex) {
                (Ok(g), Ok(m)) => (g, m),
                (g, m) => return Err(format!("open_or_create: {:?} {:?}", g.err(), m.err())),
            };
            let shm = shm_opts.open("/counter").map_err(|e| e.to_string())?;
            let map = shm.map(Access::ReadWrite).map_err(|e| e.to_string())?;
            // SAFETY: 4096 bytes, page-aligned, mapped for the rest of this closure.
            let c = unsafe { Counters::at(map.as_ptr()) };
            for i in 0..iters {
                gate.wait().map_err(|e| e.to_string())?;
                let now = c.inside.fetch_add(1, Ordering::SeqCst) + 1;
                c.most.fetch_max(now, Ordering::SeqCst);
                mutex.wait().map_err(|e| e.to_string())?;
                // SAFETY: in the mapping; the mutex semaphore makes this process the only
                // one touching the counter. A lost update here would show in the total.
                unsafe {
                    let v = c.counter.read_volatile();
                    if i % 16 == 0 {
                        std::thread::yield_now();
                    }
                    c.counter.write_volatile(v + 1);
                }
                mutex.post().map_err(|e| e.to_string())?;
                if i % 8 == 0 {
                    std::thread::yield_now();
                }
                c.inside.fetch_sub(1, Ordering::SeqCst);
                gate.post().map_err(|e| e.to_string())?;
            }
            let (g, m) = (ident(gate.path()), ident(mutex.path()));
            Ok(format!("{} {}", g.1, m.1))
        }));
    }
    for _ in 0..procs {
        go.notify();
    }
    let reports = wait_all(children, Duration::from_secs(600), "worker");
    // One semaphore per name, whoever created it.
    let (gate, mutex) = (
        opts(d.path()).open("/gate").unwrap(),
        opts(d.path()).open("/mutex").unwrap(),
    );
    let want = format!("{} {}", ident(gate.path()).1, ident(mutex.path()).1);
    assert!(reports.iter().all(|r| *r == want), "{reports:?} vs {want}");
    // SAFETY: as in the children.
    let c = unsafe { Counters::at(map.as_ptr()) };
    // SAFETY: every worker is gone; the mapping is live.
    let total = unsafe { c.counter.read_volatile() };
    assert_eq!(total, procs as u64 * iters, "lost updates");
    let most = c.most.load(Ordering::SeqCst);
    assert!(
        (1..=u64::from(k)).contains(&most),
        "{most} inside a semaphore of {k}"
    );
    assert_eq!(c.inside.load(Ordering::SeqCst), 0);
    assert_eq!(gate.value().unwrap(), k as i32, "counts conserved");
    assert_eq!(mutex.value().unwrap(), 1);
    assert!(leftovers(d.path()).is_empty(), "{:?}", entries(d.path()));
    println!("{procs} processes x {iters} iterations, at most {most} inside at once");
}

// ---------------------------------------------------------------------------------------------
// The C entry points.

fn c_open(name: &CStr, oflag: i32, mode: u32, value: u32) -> Result<*mut libc::sem_t, i32> {
    c_open_as(name, oflag, mode, value, Names::Strict)
}

fn c_open_as(
    name: &CStr,
    oflag: i32,
    mode: u32,
    value: u32,
    names: Names,
) -> Result<*mut libc::sem_t, i32> {
    // SAFETY: a NUL-terminated name.
    let p = unsafe { capi::sem_open(name.as_ptr(), oflag, mode as libc::mode_t, value, names) };
    if p.is_null() {
        Err(Errno::last_raw())
    } else {
        Ok(p)
    }
}

fn c_close(p: *mut libc::sem_t) -> Result<(), i32> {
    // SAFETY: any address is accepted and checked.
    match unsafe { capi::sem_close(p) } {
        0 => Ok(()),
        _ => Err(Errno::last_raw()),
    }
}

fn c_unlink(name: &CStr) -> Result<(), i32> {
    // SAFETY: a NUL-terminated name.
    match unsafe { capi::sem_unlink(name.as_ptr(), Names::Strict) } {
        0 => Ok(()),
        _ => Err(Errno::last_raw()),
    }
}

fn value_of(p: *mut libc::sem_t) -> i32 {
    let mut v = -1;
    // SAFETY: `p` is an open semaphore; `v` is writable.
    assert_eq!(unsafe { libc::sem_getvalue(p, &mut v) }, 0);
    v
}

/// Runs `f` in a child with `TMPSHM_DIR=dir` (the C entry points read the environment; a child
/// has no other thread that could read it meanwhile).
fn in_child_with_dir(what: &str, dir: &Path, f: impl FnOnce() -> Result<(), String>) {
    let dir = dir.to_path_buf();
    fork_child(move || {
        std::env::set_var("TMPSHM_DIR", &dir);
        std::env::remove_var("TMPSHM_CROSS_USER");
        std::env::remove_var("TMPSHM_TRACE");
        f().map(|()| String::new())
    })
    .wait(LIMIT, what)
    .unwrap();
}

#[test]
fn the_c_entry_points_create_open_refuse_and_close() {
    let d = shared_tempdir();
    let dir = d.path().to_path_buf();
    in_child_with_dir("C ABI", d.path(), move || {
        const CREAT: i32 = libc::O_CREAT;
        const EXCL: i32 = libc::O_EXCL;
        let max = u32::try_from(sem_value_max()).unwrap();
        let fds = fd_count();
        let a = c_open(c"/c", CREAT, 0o600, 1).map_err(|e| format!("create: {e}"))?;
        ensure!(fd_count() == fds, "an fd left open after a create");
        ensure!(value_of(a) == 1, "initial value");
        let b = c_open(c"/c", CREAT, 0o600, 7).map_err(|e| format!("O_CREAT: {e}"))?;
        ensure!(b == a, "O_CREAT of an existing one: another address");
        ensure!(
            value_of(b) == 1,
            "O_CREAT of an existing one changed its value"
        );
        // Without O_CREAT, mode and value mean nothing.
        let c = c_open(c"/c", 0, 0o7777, u32::MAX).map_err(|e| format!("open: {e}"))?;
        ensure!(c == a, "open: another address");
        // The glibc name rules find the same semaphore.
        let g = c_open_as(c"c", 0, 0, 0, Names::Glibc).map_err(|e| format!("glibc open: {e}"))?;
        ensure!(g == a, "glibc names: another address");
        ensure!(fd_count() == fds, "an fd left open after opens");
        let refusals = [
            (
                "O_EXCL",
                c_open(c"/c", CREAT | EXCL, 0o600, 1),
                libc::EEXIST,
            ),
            ("absent", c_open(c"/none", 0, 0, 0), libc::ENOENT),
            (
                "too big",
                c_open(c"/v", CREAT, 0o600, max + 1),
                libc::EINVAL,
            ),
            (
                "u32::MAX",
                c_open(c"/v", CREAT, 0o600, u32::MAX),
                libc::EINVAL,
            ),
            ("mode bits", c_open(c"/v", CREAT, 0o4600, 1), libc::EINVAL),
            ("strict name", c_open(c"v", CREAT, 0o600, 1), libc::EINVAL),
            (
                "inner slash",
                c_open(c"/a/b", CREAT, 0o600, 1),
                libc::EINVAL,
            ),
        ];
        for (what, r, want) in refusals {
            ensure!(r == Err(want), "{what}: {r:?}, expected errno {want}");
        }
        ensure!(!dir.join(".SEMDv").exists(), "a refused create left a file");
        ensure!(fd_count() == fds, "an fd left open after refusals");
        let m = c_open(c"/max", CREAT | EXCL, 0o600, max).map_err(|e| format!("max: {e}"))?;
        ensure!(value_of(m) == max as i32, "SEM_VALUE_MAX");
        // SAFETY: an open semaphore at SEM_VALUE_MAX.
        let rc = unsafe { libc::sem_post(m) };
        ensure!(
            rc == -1 && Errno::last() == Errno::EOVERFLOW,
            "post past the maximum"
        );
        c_close(m).map_err(|e| format!("close max: {e}"))?;
        c_unlink(c"/max").map_err(|e| format!("unlink max: {e}"))?;

        // A close of anything but an open semaphore of ours is EINVAL and unmaps nothing.
        let mut local: libc::sem_t = zeroed_sem();
        // SAFETY: `local` is writable memory of one sem_t.
        ensure!(unsafe { libc::sem_init(&mut local, 0, 0) } == 0, "sem_init");
        ensure!(
            c_close(&mut local) == Err(libc::EINVAL),
            "close of a local sem_t"
        );
        ensure!(
            c_close(std::ptr::null_mut()) == Err(libc::EINVAL),
            "close NULL"
        );
        let glibc_name =
            std::ffi::CString::new(format!("/tmpshm-test-capi-{}", std::process::id())).unwrap();
        // SAFETY: glibc's own sem_open with a valid name.
        let theirs = unsafe { libc::sem_open(glibc_name.as_ptr(), CREAT | EXCL, 0o600, 0) };
        if theirs != libc::SEM_FAILED {
            ensure!(
                c_close(theirs) == Err(libc::EINVAL),
                "close of glibc's sem_t"
            );
            // SAFETY: glibc's semaphore is still mapped (our close refused it).
            ensure!(
                unsafe { libc::sem_post(theirs) } == 0,
                "glibc's sem_t unmapped"
            );
            // SAFETY: as above; then glibc's own close and unlink.
            unsafe {
                libc::sem_close(theirs);
                libc::sem_unlink(glibc_name.as_ptr());
            }
        }

        // Closed as often as opened: the last close unmaps; one more is EINVAL.
        let file = ident(&dir.join(".SEMDc"));
        for p in [a, b, g] {
            c_close(p).map_err(|e| format!("close: {e}"))?;
        }
        ensure!(mappings(&file) == 1, "unmapped before the last close");
        // SAFETY: `c` is still open.
        ensure!(unsafe { libc::sem_post(c) } == 0, "post on the last handle");
        ensure!(value_of(c) == 2, "value");
        c_close(c).map_err(|e| format!("last close: {e}"))?;
        ensure!(mappings(&file) == 0, "the last close did not unmap");
        ensure!(c_close(c) == Err(libc::EINVAL), "a close too many");
        c_unlink(c"/c").map_err(|e| format!("unlink: {e}"))?;
        ensure!(c_unlink(c"/c") == Err(libc::ENOENT), "unlink twice");
        ensure!(fd_count() == fds, "an fd left open at the end");
        Ok(())
    });
    assert!(leftovers(d.path()).is_empty(), "{:?}", entries(d.path()));
}

#[test]
fn the_c_entry_points_apply_the_umask_to_the_mode() {
    let d = shared_tempdir();
    let dir = d.path().to_path_buf();
    in_child_with_dir("umask", d.path(), move || {
        for (umask, mode, want) in [
            (0o027, 0o666, 0o640),
            (0o022, 0o777, 0o755),
            (0o077, 0o660, 0o600),
        ] {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
            let p = c_open(c"/m", libc::O_CREAT | libc::O_EXCL, mode, 0)
                .map_err(|e| format!("create {mode:o}: {e}"))?;
            let got = std::fs::metadata(dir.join(".SEMDm")).map_err(|e| e.to_string())?;
            ensure!(
                got.mode() & 0o7777 == want,
                "umask {umask:o}, mode {mode:o}: {:o}, expected {want:o}",
                got.mode() & 0o7777
            );
            c_close(p).map_err(|e| format!("close: {e}"))?;
            c_unlink(c"/m").map_err(|e| format!("unlink: {e}"))?;
        }
        Ok(())
    });
}

fn sem_value_max() -> libc::c_long {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    unsafe { libc::sysconf(libc::_SC_SEM_VALUE_MAX) }
}

fn zeroed_sem() -> libc::sem_t {
    // SAFETY: sem_t is plain bytes; sem_init initialises it before any use.
    unsafe { std::mem::zeroed() }
}

#[test]
fn a_create_refused_for_a_full_table_leaves_no_semaphore() {
    if !in_fresh_process("a_create_refused_for_a_full_table_leaves_no_semaphore") {
        return;
    }
    let d = shared_tempdir();
    let dir = d.path().to_path_buf();
    fork_child(move || {
        let o = opts(&dir);
        let mut open = Vec::new();
        for i in 0..1024 {
            open.push(
                o.create(format!("/s{i}").as_str())
                    .map_err(|e| format!("#{i}: {e}"))?,
            );
        }
        let e = o
            .create("/one-more")
            .map(drop)
            .map_err(|e| e.raw_os_error());
        ensure!(e == Err(libc::EMFILE), "the 1025th: {e:?}");
        ensure!(
            !dir.join(".SEMDone-more").exists(),
            "EMFILE, yet the semaphore was created"
        );
        // An existing one: EMFILE too, and it stays.
        let e = o.open("/s0").map(drop);
        ensure!(e.is_ok(), "an open of a mapped one takes no slot: {e:?}");
        drop(open.pop());
        o.create("/one-more")
            .map_err(|e| format!("with a free slot: {e}"))?;
        Ok(String::new())
    })
    .wait(Duration::from_secs(120), "1025 semaphores")
    .unwrap();
}
