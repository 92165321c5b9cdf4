//! What differs between platforms, tested where this machine can show it.
//!
//! - File systems without `flock(2)` (some FUSE and NFS mounts, some Android storage): the
//!   `tmpshm` binary runs with `flock` failing, as `ENOSYS`, `EOPNOTSUPP` or `ENOLCK`, in two
//!   ways: an `LD_PRELOAD` shim whose `flock` fails (`testkit/programs/flock_enosys.c`, for a
//!   dynamically linked binary), and a seccomp filter that makes the `flock` system call itself
//!   fail (for any binary, the statically linked musl one included). Creating fails at once
//!   with `ENOSYS` naming the lock file and the cause, and leaves nothing behind; opening and
//!   unlinking existing objects still work; `ls`, `gc` and `doctor` name the cause.
//! - musl's own `shm_open` as a second oracle (in a test binary built for musl): the same
//!   cases against tmpshm in the glibc layout in `/dev/shm`, with musl's expected divergences,
//!   and objects shared both ways.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use tmpshm_testkit::support::{entries, programs_dir, skip};

const BIN: &str = env!("CARGO_BIN_EXE_tmpshm");

/// The errnos with which `flock` fails on file systems that have none.
const NO_FLOCK: [Errno; 3] = [Errno::ENOSYS, Errno::EOPNOTSUPP, Errno::ENOLCK];

/// How a run of `tmpshm` is made to see a `flock` that fails with `errno`.
#[derive(Debug, Clone)]
enum Breaker {
    /// `LD_PRELOAD` of the shim built for this errno.
    Preload { errno: Errno, shim: PathBuf },
    /// A seccomp filter that answers the `flock` system call with this errno.
    Seccomp { errno: Errno },
}

impl Breaker {
    fn errno(&self) -> Errno {
        match self {
            Breaker::Preload { errno, .. } | Breaker::Seccomp { errno } => *errno,
        }
    }

    fn apply(&self, cmd: &mut Command) {
        match self {
            Breaker::Preload { shim, .. } => {
                cmd.env("LD_PRELOAD", shim);
            }
            Breaker::Seccomp { errno } => seccomp::deny_flock(cmd, *errno),
        }
    }
}

impl std::fmt::Display for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Breaker::Preload { errno, shim } => {
                write!(f, "LD_PRELOAD={} ({errno:?})", shim.display())
            }
            Breaker::Seccomp { errno } => write!(f, "seccomp: flock(2) -> {errno:?}"),
        }
    }
}

/// Whether the ELF file at `path` names a program interpreter (`PT_INTERP`): only then does
/// the dynamic loader run, and with it `LD_PRELOAD`. A statically linked binary has none.
fn has_interpreter(path: &Path) -> bool {
    let b = std::fs::read(path).expect("read the tmpshm binary");
    assert_eq!(&b[..4], b"\x7fELF", "{} is not an ELF file", path.display());
    assert_eq!(b[5], 1, "little-endian ELF expected");
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let (phoff, phentsize, phnum) = match b[4] {
        // ELFCLASS64: e_phoff is 8 bytes at 0x20; e_phentsize, e_phnum at 0x36, 0x38.
        2 => {
            let off = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap());
            (usize::try_from(off).unwrap(), u16_at(0x36), u16_at(0x38))
        }
        // ELFCLASS32: e_phoff is 4 bytes at 0x1c; e_phentsize, e_phnum at 0x2a, 0x2c.
        _ => (u32_at(0x1c) as usize, u16_at(0x2a), u16_at(0x2c)),
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == PT_INTERP)
}

/// The shim, built with `cc -shared -fPIC` once per errno into a temporary directory, which
/// goes when this is dropped.
struct Shims {
    dir: tempfile::TempDir,
}

impl Shims {
    /// `Err(why)` when the shims cannot be used here.
    fn build() -> Result<Shims, String> {
        static USABLE: OnceLock<Result<(), String>> = OnceLock::new();
        USABLE
            .get_or_init(|| {
                if !has_interpreter(Path::new(BIN)) {
                    return Err(format!(
                        "{BIN} is statically linked: there is no dynamic loader to honour \
                         LD_PRELOAD (the seccomp runs cover it)"
                    ));
                }
                if !cfg!(target_env = "gnu") {
                    return Err("the shim is built by the system's C compiler, for glibc".into());
                }
                Ok(())
            })
            .clone()?;
        let dir = tempfile::Builder::new()
            .prefix("tmpshm-flock-shims-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let src = programs_dir().join("flock_enosys.c");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
        for errno in NO_FLOCK {
            let out = dir.path().join(format!("flock_{errno:?}.so"));
            let o = Command::new(&cc)
                .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror"])
                .arg(format!("-DFLOCK_ERRNO={errno:?}"))
                .arg("-o")
                .arg(&out)
                .arg(&src)
                .output()
                .map_err(|e| format!("run {cc}: {e} (apt-get install gcc)"))?;
            assert!(
                o.status.success(),
                "{cc} {}: {}",
                src.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(Shims { dir })
    }

    fn path(&self, errno: Errno) -> PathBuf {
        self.dir.path().join(format!("flock_{errno:?}.so"))
    }
}

/// Every way this machine can make `flock` fail under the binary, for every errno; each way
/// that cannot apply says why. The shims, if any, live as long as the second value.
fn breakers(test: &str) -> (Vec<Breaker>, Option<Shims>) {
    let mut v = Vec::new();
    let shims = match Shims::build() {
        Ok(shims) => {
            v.extend(NO_FLOCK.map(|errno| Breaker::Preload {
                errno,
                shim: shims.path(errno),
            }));
            Some(shims)
        }
        Err(why) => {
            skip(&format!("{test} (LD_PRELOAD shim)"), why);
            None
        }
    };
    match seccomp::supported() {
        Ok(()) => v.extend(NO_FLOCK.map(|errno| Breaker::Seccomp { errno })),
        Err(why) => skip(&format!("{test} (seccomp)"), why),
    }
    assert!(!v.is_empty(), "{test}: no way to make flock fail here");
    (v, shims)
}

fn tmpshm(dir: &Path, breaker: Option<&Breaker>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("TMPSHM_DIR")
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null());
    if let Some(b) = breaker {
        b.apply(&mut cmd);
    }
    cmd.output().expect("run tmpshm")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(dir: &Path, breaker: Option<&Breaker>, args: &[&str]) -> String {
    let o = tmpshm(dir, breaker, args);
    assert!(
        o.status.success(),
        "tmpshm {args:?} under {breaker:?}: {}",
        text(&o.stderr)
    );
    text(&o.stdout)
}

#[test]
fn create_fails_at_once_with_enosys_naming_the_lock_file_and_the_cause() {
    let (all, _shims) =
        breakers("create_fails_at_once_with_enosys_naming_the_lock_file_and_the_cause");
    for b in all {
        let d = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let o = tmpshm(d.path(), Some(&b), &["create", "/x", "--size", "1"]);
        let took = t.elapsed();
        let err = text(&o.stderr);
        println!(
            "{b}: {took:?}, exit {:?}\n  {}",
            o.status.code(),
            err.trim_end()
        );
        assert_eq!(o.status.code(), Some(1), "{b}: {err}");
        assert!(took < Duration::from_secs(1), "{b}: took {took:?}");
        assert_eq!(err.lines().count(), 1, "{b}: one line expected: {err}");
        let lock = d.path().join(".SHMLx");
        for needle in [
            "tmpshm: ",
            "ENOSYS",
            &lock.display().to_string(),
            "does not support flock(2)",
            &format!("({:?})", b.errno()),
        ] {
            assert!(err.contains(needle), "{b}: {needle:?} expected: {err}");
        }
        assert!(o.stdout.is_empty(), "{b}: {}", text(&o.stdout));
        assert_eq!(
            entries(d.path()),
            Vec::<String>::new(),
            "{b}: nothing left behind"
        );
    }
}

#[test]
fn existing_objects_open_and_unlink_without_the_lock() {
    let (all, _shims) = breakers("existing_objects_open_and_unlink_without_the_lock");
    for b in all {
        let d = tempfile::tempdir().unwrap();
        let mut w = Command::new(BIN)
            .arg("--dir")
            .arg(d.path())
            .args(["create", "/y", "--size", "16"])
            .output()
            .unwrap();
        assert!(w.status.success(), "{}", text(&w.stderr));
        // Data written without the breaker, read back with it.
        w = Command::new(BIN)
            .arg("--dir")
            .arg(d.path())
            .args(["write", "/y"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"no lock needed")?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(w.status.success(), "{}", text(&w.stderr));
        let cat = ok(d.path(), Some(&b), &["cat", "/y"]);
        assert!(cat.starts_with("no lock needed"), "{b}: {cat:?}");
        let again = ok(
            d.path(),
            Some(&b),
            &["create", "/y", "--size", "8", "--exist-ok"],
        );
        assert!(again.starts_with("exists /y"), "{b}: {again}");
        ok(d.path(), Some(&b), &["stat", "/y"]);
        let rm = ok(d.path(), Some(&b), &["rm", "/y"]);
        assert_eq!(rm.trim(), "removed /y", "{b}");
        assert_eq!(entries(d.path()), Vec::<String>::new(), "{b}");
    }
}

#[test]
fn ls_and_gc_name_the_cause_for_lock_files() {
    let (all, _shims) = breakers("ls_and_gc_name_the_cause_for_lock_files");
    for b in all {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".SHMLz"), b"").unwrap();
        let e = format!("{:?}", b.errno());
        let ls = ok(d.path(), Some(&b), &["ls"]);
        let want = format!("unknown ({e}: this file system does not support flock(2)");
        assert!(ls.contains(&want), "{b}: {want:?} expected:\n{ls}");
        let json: serde_json::Value =
            serde_json::from_str(&ok(d.path(), Some(&b), &["ls", "--json"])).unwrap();
        let lock = &json["locks"][0];
        assert_eq!(lock["state"], "unknown", "{b}: {lock}");
        assert_eq!(lock["errno"], e.as_str(), "{b}: {lock}");
        let why = lock["why"].as_str().unwrap();
        assert!(
            why.starts_with(&format!("{e}: this file system does not support flock(2)")),
            "{b}: {why}"
        );
        let gc = tmpshm(d.path(), Some(&b), &["gc"]);
        let err = text(&gc.stderr);
        println!("{b}: gc exit {:?}\n  {}", gc.status.code(), err.trim_end());
        assert_eq!(gc.status.code(), Some(1), "{b}: {err}");
        for needle in [
            d.path().join(".SHMLz").display().to_string(),
            "ENOSYS".to_string(),
            format!("does not support flock(2) ({e})"),
        ] {
            assert!(err.contains(&needle), "{b}: {needle:?} expected: {err}");
        }
        // Not knowing whether someone holds it, gc leaves it; with flock back, gc collects it.
        assert_eq!(entries(d.path()), [".SHMLz"], "{b}");
        let gc = ok(d.path(), None, &["gc"]);
        assert!(gc.contains("removed"), "{gc}");
        assert_eq!(entries(d.path()), Vec::<String>::new());
    }
}

#[test]
fn doctor_tries_flock_in_the_directory() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(d.path(), None, &["doctor"]);
    println!("{out}");
    assert!(out.contains("flock:        works"), "{out}");
    assert!(!out.contains("WARNING: flock"), "{out}");
    assert_eq!(
        entries(d.path()),
        Vec::<String>::new(),
        "the probe file is removed"
    );
    let (all, _shims) = breakers("doctor_tries_flock_in_the_directory");
    for b in all {
        let out = ok(d.path(), Some(&b), &["doctor"]);
        let e = format!("{:?}", b.errno());
        let line = out.lines().find(|l| l.starts_with("flock:")).unwrap_or("");
        println!("{b}: {line}");
        assert!(
            line.starts_with(&format!("flock:        FAILS here: {e} (")),
            "{b}: {out}"
        );
        let warning = format!("WARNING: flock(2) fails with {e} in this directory");
        assert!(out.contains(&warning), "{b}: {out}");
        assert!(out.contains("fails at once with ENOSYS"), "{b}: {out}");
        assert_eq!(
            entries(d.path()),
            Vec::<String>::new(),
            "{b}: the probe file is removed"
        );
    }
}

/// The seccomp filter of the test kit, installed in the child between `fork` and `exec`.
mod seccomp {
    use super::*;
    pub use tmpshm_testkit::support::seccomp::supported;

    pub fn deny_flock(cmd: &mut Command, errno: Errno) {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and calls only prctl(2),
        // which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || tmpshm_testkit::support::seccomp::deny_flock(errno));
        }
    }
}

#[test]
fn musl_shm_open_is_a_second_oracle() {
    #[cfg(target_env = "musl")]
    musl::differential();
    #[cfg(not(target_env = "musl"))]
    skip(
        "musl_shm_open_is_a_second_oracle",
        "needs musl: this test binary is linked against another C library (run `cargo test \
         --target x86_64-unknown-linux-musl --test portability`)",
    );
}

#[test]
fn musl_and_tmpshm_share_objects_in_dev_shm() {
    #[cfg(target_env = "musl")]
    musl::interop();
    #[cfg(not(target_env = "musl"))]
    skip(
        "musl_and_tmpshm_share_objects_in_dev_shm",
        "needs musl: this test binary is linked against another C library",
    );
}

/// musl's `shm_open` (linked statically into this test binary) against tmpshm in the glibc
/// layout in `/dev/shm`: the same file for the same name.
#[cfg(target_env = "musl")]
mod musl {
    use std::ffi::CString;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
    use nix::sys::stat::Mode;
    use tmpshm::{Layout, ShmDir};

    use super::*;

    fn tmpshm_side() -> ShmDir {
        ShmDir::new("/dev/shm").with_layout(Layout::Glibc)
    }

    fn musl_open(name: &CString, flags: i32, mode: libc::mode_t) -> Result<OwnedFd, Errno> {
        // SAFETY: a NUL-terminated name; a new fd that nothing else owns.
        let fd = unsafe { libc::shm_open(name.as_ptr(), flags, mode) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: as above.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn musl_unlink(name: &CString) -> Result<(), Errno> {
        // SAFETY: a NUL-terminated name.
        Errno::result(unsafe { libc::shm_unlink(name.as_ptr()) }).map(drop)
    }

    /// One side's answer, without the status flags (compared on their own).
    fn summary(r: Result<Option<OwnedFd>, Errno>) -> String {
        match r {
            Ok(None) => "ok".into(),
            Ok(Some(fd)) => {
                let st = nix::sys::stat::fstat(fd.as_fd()).unwrap();
                let fdf = FdFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap());
                let cloexec = if fdf.contains(FdFlag::FD_CLOEXEC) {
                    " cloexec"
                } else {
                    ""
                };
                format!("fd size={}{cloexec}", st.st_size)
            }
            Err(e) => format!("{e:?}"),
        }
    }

    /// What is in /dev/shm under `file` afterwards.
    fn after(file: &Path) -> String {
        match std::fs::symlink_metadata(file) {
            Ok(m) => {
                use std::os::unix::fs::PermissionsExt;
                format!(
                    "file size={} mode={:o}",
                    m.len(),
                    m.permissions().mode() & 0o7777
                )
            }
            Err(_) => "absent".into(),
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        /// `shm_open` with these flags (and their names, for the report).
        Open(i32, &'static str),
        Unlink,
    }

    /// A case: name, operation, whether the file exists (with 3 bytes) before.
    type Case = (String, Op, bool);

    /// Divergences that musl's rules make: (what, musl, tmpshm, reason). A case diverges as
    /// listed, or agrees.
    fn expected(name: &str, op: Op, base: &str) -> Option<(&'static str, &'static str)> {
        let stripped_differs = name != format!("/{base}") && name.trim_start_matches('/') == base;
        match op {
            // musl strips every leading '/'; tmpshm's names (illumos's rule) have exactly one.
            _ if stripped_differs => Some(("musl strips leading slashes", "EINVAL")),
            // POSIX leaves these undefined; musl passes them to open(2), tmpshm refuses them.
            Op::Open(f, _) if f & libc::O_ACCMODE == libc::O_WRONLY => Some(("O_WRONLY", "EINVAL")),
            Op::Open(f, _) if f & libc::O_ACCMODE == libc::O_RDONLY && f & libc::O_TRUNC != 0 => {
                Some(("O_RDONLY|O_TRUNC", "EINVAL"))
            }
            _ => None,
        }
    }

    pub fn differential() {
        let base = format!("tsp-musl-{}", std::process::id());
        let file = PathBuf::from(format!("/dev/shm/{base}"));
        let names = [format!("/{base}"), base.clone(), format!("//{base}")];
        let (rw, ro, wo) = (libc::O_RDWR, libc::O_RDONLY, libc::O_WRONLY);
        let (c, x, t) = (libc::O_CREAT, libc::O_EXCL, libc::O_TRUNC);
        let ops = [
            Op::Open(rw | c, "RDWR|CREAT"),
            Op::Open(rw | c | x, "RDWR|CREAT|EXCL"),
            Op::Open(ro, "RDONLY"),
            Op::Open(rw, "RDWR"),
            Op::Open(rw | t, "RDWR|TRUNC"),
            Op::Open(ro | t, "RDONLY|TRUNC"),
            Op::Open(wo | c, "WRONLY|CREAT"),
            Op::Unlink,
        ];
        let mut cases: Vec<Case> = Vec::new();
        for n in &names {
            for op in ops {
                for exists in [false, true] {
                    cases.push((n.clone(), op, exists));
                }
            }
        }
        let mut agreed = 0;
        let mut divergences = Vec::new();
        let mut failures = Vec::new();
        for (name, op, exists) in &cases {
            let cname = CString::new(name.as_str()).unwrap();
            let mut results = Vec::new();
            for musl in [true, false] {
                let _ = std::fs::remove_file(&file);
                if *exists {
                    std::fs::write(&file, b"abc").unwrap();
                    std::fs::set_permissions(
                        &file,
                        std::os::unix::fs::PermissionsExt::from_mode(0o600),
                    )
                    .unwrap();
                }
                let r = match (musl, *op) {
                    (true, Op::Open(f, _)) => musl_open(&cname, f, 0o600).map(Some),
                    (true, Op::Unlink) => musl_unlink(&cname).map(|()| None),
                    (false, Op::Open(f, _)) => tmpshm_side()
                        .open(
                            cname.as_c_str(),
                            OFlag::from_bits_retain(f),
                            Mode::from_bits_retain(0o600),
                        )
                        .map(Some)
                        .map_err(|e| Errno::from_raw(e.raw_os_error())),
                    (false, Op::Unlink) => tmpshm_side()
                        .unlink(cname.as_c_str())
                        .map(|()| None)
                        .map_err(|e| Errno::from_raw(e.raw_os_error())),
                };
                results.push(format!("{} -> {}", summary(r), after(&file)));
            }
            let _ = std::fs::remove_file(&file);
            let op_name = match op {
                Op::Open(_, n) => n,
                Op::Unlink => "unlink",
            };
            let state = if *exists { "present" } else { "absent" };
            let what = format!("{name:?} {op_name} {state}");
            if results[0] == results[1] {
                agreed += 1;
                if let Some((why, _)) = expected(name, *op, &base) {
                    failures.push(format!(
                        "STALE {what}: expected to diverge ({why}), both {}",
                        results[0]
                    ));
                }
                continue;
            }
            match expected(name, *op, &base) {
                Some((why, ours)) if results[1].starts_with(ours) => {
                    divergences.push(format!(
                        "{what}: musl {}, tmpshm {} ({why})",
                        results[0], results[1]
                    ));
                }
                _ => failures.push(format!(
                    "UNEXPLAINED {what}: musl {}, tmpshm {}",
                    results[0], results[1]
                )),
            }
        }
        println!(
            "musl oracle: {} cases, {agreed} agree, {} expected divergences",
            cases.len(),
            divergences.len()
        );
        for d in &divergences {
            println!("  {d}");
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        // Names both refuse, with the same errno.
        let long = format!("/{}", "n".repeat(256));
        for n in ["", "/", "/a/b", "/.", "/..", long.as_str()] {
            let cname = CString::new(n).unwrap();
            let m = musl_open(&cname, rw | c, 0o600).map(drop);
            let t = tmpshm_side()
                .open(
                    cname.as_c_str(),
                    OFlag::O_RDWR | OFlag::O_CREAT,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                )
                .map(drop)
                .map_err(|e| Errno::from_raw(e.raw_os_error()));
            println!("  {:?}: musl {m:?}, tmpshm {t:?}", &n[..n.len().min(12)]);
            assert!(m.is_err(), "{n:?}: musl accepted it");
            assert_eq!(m, t, "{n:?}");
        }

        // The status flags: musl adds O_NONBLOCK to the descriptor (harmless for a regular
        // file, but visible to F_GETFL); tmpshm clears what it used while checking.
        let name = CString::new(format!("/{base}")).unwrap();
        let fd = musl_open(&name, rw | c | x, 0o600).unwrap();
        let fl = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap());
        assert!(fl.contains(OFlag::O_NONBLOCK), "musl's fd: {fl:?}");
        drop(fd);
        let fd = tmpshm_side()
            .open(name.as_c_str(), OFlag::O_RDWR, Mode::empty())
            .unwrap();
        let fl = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap());
        assert!(!fl.contains(OFlag::O_NONBLOCK), "tmpshm's fd: {fl:?}");
        tmpshm_side().unlink(name.as_c_str()).unwrap();
        assert!(!file.exists());
    }

    pub fn interop() {
        use tmpshm::{Access, Mapping};
        let name = CString::new(format!("/tsp-musl-io-{}", std::process::id())).unwrap();
        let file = PathBuf::from(format!("/dev/shm{}", name.to_str().unwrap()));
        struct Cleanup<'a>(&'a Path);
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(self.0);
            }
        }
        let _c = Cleanup(&file);
        // musl creates and writes; tmpshm opens and reads; tmpshm unlinks; musl sees it gone.
        let fd = musl_open(&name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600).unwrap();
        nix::unistd::ftruncate(&fd, 4096).unwrap();
        Mapping::new(&fd, 4096, Access::ReadWrite)
            .unwrap()
            .write_at(0, b"from-musl")
            .unwrap();
        let ours = tmpshm_side()
            .open(name.as_c_str(), OFlag::O_RDONLY, Mode::empty())
            .unwrap();
        let mut buf = [0u8; 9];
        Mapping::new(&ours, 4096, Access::ReadOnly)
            .unwrap()
            .read_at(0, &mut buf)
            .unwrap();
        assert_eq!(&buf, b"from-musl");
        tmpshm_side().unlink(name.as_c_str()).unwrap();
        assert_eq!(
            musl_open(&name, libc::O_RDONLY, 0).unwrap_err(),
            Errno::ENOENT
        );
        // tmpshm creates and writes; musl opens and reads, then unlinks; tmpshm sees it gone.
        let fd = tmpshm_side()
            .open(
                name.as_c_str(),
                OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::S_IRUSR | Mode::S_IWUSR,
            )
            .unwrap();
        nix::unistd::ftruncate(&fd, 4096).unwrap();
        Mapping::new(&fd, 4096, Access::ReadWrite)
            .unwrap()
            .write_at(0, b"from-tmpshm")
            .unwrap();
        let theirs = musl_open(&name, libc::O_RDONLY, 0).unwrap();
        let mut buf = [0u8; 11];
        Mapping::new(&theirs, 4096, Access::ReadOnly)
            .unwrap()
            .read_at(0, &mut buf)
            .unwrap();
        assert_eq!(&buf, b"from-tmpshm");
        musl_unlink(&name).unwrap();
        let e = tmpshm_side()
            .open(name.as_c_str(), OFlag::O_RDONLY, Mode::empty())
            .unwrap_err();
        assert_eq!(e.raw_os_error(), libc::ENOENT);
        println!(
            "musl and tmpshm (glibc layout) shared {} both ways",
            file.display()
        );
    }
}
