//! Real programs in sandboxes where POSIX shared memory does not work, natively and under
//! `tmpshm exec`.
//!
//! Each test builds a private mount namespace (util-linux `unshare -m --propagation
//! private`) and breaks `/dev/shm` there only, in one of three ways:
//!
//! - **absent**: `/dev` is a small tmpfs holding only null, zero, full, random, urandom, tty,
//!   pts, ptmx and the fd links (as in minimal containers and serverless runtimes);
//! - **read-only**: a read-only tmpfs on `/dev/shm`;
//! - **tiny**: a 1 MiB tmpfs on `/dev/shm` (Docker's default is 64 MiB).
//!
//! For each program it first shows the failure natively (exit status or signal, and the
//! program's own error text), then runs it under `tmpshm exec --dir <a directory of the test>
//! --trace=<file>` and checks that it works, that its objects were in that directory while it
//! ran (the program lists the directory, or the test does), that one process created an
//! object another one opened by name (from the trace), and that nothing is left behind.
//!
//! Programs: Python `multiprocessing.shared_memory`; a C program mapping 8 MiB; PostgreSQL
//! running a parallel query with `dynamic_shared_memory_type = posix`; Python
//! `multiprocessing` (Lock, Queue, Pool.map, ProcessPoolExecutor: named semaphores) with the
//! fork, spawn and forkserver start methods; Boost.Interprocess `named_mutex`,
//! `named_semaphore` (both `sem_open` in Boost 1.74 on Linux) and `managed_shared_memory`.
//!
//! Root only: the tests skip, saying why, for another user, without `unshare`, or without a
//! program (`.ci/run` installs them). The machine's own `/dev/shm` is never touched; each test
//! checks that its mount is the same afterwards.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tmpshm_testkit::support::*;

const TMPSHM: &str = env!("CARGO_BIN_EXE_tmpshm");
/// Generous limits that only turn a hang into a failure.
const LIMIT: Duration = Duration::from_secs(300);
const PG_START_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The sandboxes.

/// How `/dev/shm` is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Absent,
    ReadOnly,
    Tiny,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Absent => "absent",
            Variant::ReadOnly => "read-only",
            Variant::Tiny => "tiny",
        }
    }

    /// Shell commands, run as root in the new mount namespace, that break `/dev/shm` there;
    /// `private` is an empty directory of the test (the absent variant mounts the real `/dev`
    /// there for a moment, to bind its devices back).
    fn setup(self, private: &Path) -> String {
        let p = quote(private);
        match self {
            Variant::Absent => [
                format!("mount --rbind /dev {p}"),
                "mount -t tmpfs -o mode=0755,size=64k tmpfs /dev".into(),
                format!(
                    "for n in null zero full random urandom tty; do : > /dev/$n && mount --bind \
                     {p}/$n /dev/$n || exit 1; done"
                ),
                format!("mkdir /dev/pts && mount --rbind {p}/pts /dev/pts"),
                "ln -s pts/ptmx /dev/ptmx && ln -s /proc/self/fd /dev/fd".into(),
                "ln -s fd/0 /dev/stdin && ln -s fd/1 /dev/stdout && ln -s fd/2 /dev/stderr".into(),
                format!("umount -l {p}"),
                "test ! -e /dev/shm".into(),
            ]
            .join(" && "),
            Variant::ReadOnly => {
                "mount -t tmpfs -o ro tmpfs /dev/shm && ! touch /dev/shm/.probe 2>/dev/null".into()
            }
            Variant::Tiny => "mount -t tmpfs -o size=1m tmpfs /dev/shm".into(),
        }
    }
}

/// `p` single-quoted for sh.
fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// The exit status of the namespace's shell when the setup failed.
const SETUP_FAILED: i32 = 99;

/// Why no sandbox can be built here, if so (checked once: a read-only tmpfs on /dev/shm in a
/// private mount namespace).
fn sandbox_unavailable() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        if !is_root() {
            return Some("needs root to build private mount namespaces".into());
        }
        if in_path("unshare").is_none() {
            return Some("util-linux's unshare is not installed".into());
        }
        let o = run_limited(
            Command::new("unshare").args([
                "-m",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                &Variant::ReadOnly.setup(Path::new("/nonexistent")),
            ]),
            Duration::from_secs(60),
        );
        (!o.status.success()).then(|| {
            format!(
                "cannot build a private mount namespace here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )
        })
    })
    .clone()
}

/// `/dev/shm`'s line(s) in this process's mount table.
fn host_dev_shm() -> String {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some("/dev/shm"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One test's sandbox: its directory, the tmpshm directory and trace file in it, and the
/// clock. Dropped, it removes the directory, checks that the machine's /dev/shm is as it
/// was, and prints the time taken.
struct Sandbox {
    test: &'static str,
    variant: Variant,
    tmp: tempfile::TempDir,
    /// The directory `tmpshm exec --dir` gets (created by `exec`).
    shm: PathBuf,
    /// The file `tmpshm exec --trace=` gets.
    trace: PathBuf,
    host_shm: String,
    started: Instant,
}

impl Sandbox {
    /// The sandbox, or None (after saying why) where the test must skip.
    fn new(test: &'static str, variant: Variant) -> Option<Sandbox> {
        if let Some(why) = sandbox_unavailable() {
            skip(test, why);
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("tmpshm-sandbox-")
            .tempdir()
            .unwrap();
        // Reachable for a program running as another user (PostgreSQL).
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::create_dir(tmp.path().join("dev")).unwrap();
        Some(Sandbox {
            test,
            variant,
            shm: tmp.path().join("shm"),
            trace: tmp.path().join("trace.log"),
            tmp,
            host_shm: host_dev_shm(),
            started: Instant::now(),
        })
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A unique tag for object names.
    fn tag(&self) -> String {
        format!(
            "{}-{}",
            std::process::id(),
            self.variant.name().replace('-', "")
        )
    }

    /// `argv` in the broken sandbox, with none of the tmpshm settings of the test's
    /// environment.
    fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        let script = format!(
            "{{ {}; }} || {{ echo 'sandbox setup failed' >&2; exit {SETUP_FAILED}; }}; exec \"$@\"",
            self.variant.setup(&self.path().join("dev"))
        );
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(argv);
        without_tmpshm_env(&mut c).env("TMPSHM_PRELOAD", preload_library());
        c
    }

    /// `tmpshm exec --dir <dir> --trace=<trace> --` and `argv`.
    fn exec_argv<S: AsRef<OsStr>>(dir: &Path, trace: &Path, argv: &[S]) -> Vec<OsString> {
        let mut t = OsString::from("--trace=");
        t.push(trace);
        let mut v: Vec<OsString> = vec![
            TMPSHM.into(),
            "exec".into(),
            "--dir".into(),
            dir.into(),
            t,
            "--".into(),
        ];
        v.extend(argv.iter().map(|a| a.as_ref().to_os_string()));
        v
    }

    /// Runs `argv` in the sandbox as it is.
    fn native<S: AsRef<OsStr>>(&self, argv: &[S]) -> Output {
        let o = run_limited(&mut self.command(argv), LIMIT);
        self.assert_set_up(&o);
        o
    }

    /// Runs `argv` in the sandbox under `tmpshm exec`.
    fn exec<S: AsRef<OsStr>>(&self, argv: &[S]) -> Output {
        let o = run_limited(
            &mut self.command(&Self::exec_argv(&self.shm, &self.trace, argv)),
            LIMIT,
        );
        self.assert_set_up(&o);
        o
    }

    fn assert_set_up(&self, o: &Output) {
        assert_ne!(
            o.status.code(),
            Some(SETUP_FAILED),
            "{}: the sandbox could not be set up: {}",
            self.variant.name(),
            show_output(o)
        );
    }

    /// The calls the trace file recorded.
    fn traced(&self) -> Vec<Traced> {
        traced(&self.trace)
    }

    /// Nothing of tmpshm's is left in `dir`.
    fn assert_nothing_left(&self, dir: &Path) {
        let left = tmpshm_files(dir);
        assert!(
            left.is_empty(),
            "left behind in {}: {left:?}",
            dir.display()
        );
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let now = host_dev_shm();
        let msg = format!(
            "the machine's /dev/shm changed during the test:\nbefore: {}\nafter:  {now}",
            self.host_shm
        );
        println!(
            "{} ({}): {:.1?}",
            self.test,
            self.variant.name(),
            self.started.elapsed()
        );
        if std::thread::panicking() {
            if now != self.host_shm {
                eprintln!("{msg}");
            }
        } else {
            assert_eq!(now, self.host_shm, "{msg}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the programs did.

/// How a native run must fail.
enum Native {
    /// Exit with this code, saying this (on stdout or stderr).
    Exit(i32, &'static str),
    /// Die of this signal.
    Signal(i32),
    /// Work after all (named semaphores take one page each: a 1 MiB /dev/shm holds them).
    Works,
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_native(o: &Output, expected: &Native, what: &str) {
    match *expected {
        Native::Exit(code, needle) => {
            assert_eq!(o.status.code(), Some(code), "{what}: {}", show_output(o));
            assert!(
                text(o).contains(needle),
                "{what}: no {needle:?} in {}",
                show_output(o)
            );
        }
        Native::Signal(sig) => {
            assert_eq!(o.status.signal(), Some(sig), "{what}: {}", show_output(o));
        }
        Native::Works => assert!(o.status.success(), "{what}: {}", show_output(o)),
    }
    println!("native {what}: {}", o.status);
}

fn assert_works(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} under tmpshm exec: {}",
        show_output(o)
    );
    println!("tmpshm exec {what}: {}", o.status);
    stdout(o)
}

fn assert_lines(out: &str, lines: &[String]) {
    for l in lines {
        assert!(out.lines().any(|o| o == l), "no line {l:?} in:\n{out}");
    }
}

/// One line of a trace file: `tmpshm[PID]: FUNC("NAME", FLAGS, ...) = RESULT [PATH]`.
#[derive(Debug)]
struct Traced {
    pid: u32,
    func: String,
    name: String,
    flags: String,
    ok: bool,
    path: Option<PathBuf>,
}

fn traced(file: &Path) -> Vec<Traced> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e} (no call was traced)", file.display()));
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("tmpshm[")?;
            let (pid, rest) = rest.split_once("]: ")?;
            let (func, rest) = rest.split_once('(')?;
            let (args, result) = rest.rsplit_once(") = ")?;
            let (name, flags) = match args.strip_prefix('"') {
                Some(a) => {
                    let (name, more) = a.split_once('"')?;
                    let flags = more.trim_start_matches(", ").split(", ").next()?;
                    (name.to_string(), flags.to_string())
                }
                None => (String::new(), String::new()),
            };
            let ok = !(result.starts_with("-1 ") || result.starts_with("SEM_FAILED"));
            let path = result
                .rsplit_once(' ')
                .map(|(_, p)| p)
                .filter(|p| p.starts_with('/'))
                .map(PathBuf::from);
            Some(Traced {
                pid: pid.parse().ok()?,
                func: func.to_string(),
                name,
                flags,
                ok,
                path,
            })
        })
        .collect()
}

/// From the trace: `func` created an object whose name starts with `prefix` (O_CREAT) in
/// `dir` in one process, and another process opened the same name (without O_CREAT); returns
/// that name.
fn assert_shared_by_name(calls: &[Traced], func: &str, prefix: &str, dir: &Path) -> String {
    let in_dir = |c: &Traced| c.ok && c.path.as_deref().is_some_and(|p| p.parent() == Some(dir));
    for created in calls
        .iter()
        .filter(|c| c.func == func && c.name.starts_with(prefix) && c.flags.contains("O_CREAT"))
    {
        assert!(
            in_dir(created),
            "created outside {}: {created:?}",
            dir.display()
        );
        if calls.iter().any(|c| {
            c.func == func
                && c.name == created.name
                && c.pid != created.pid
                && !c.flags.contains("O_CREAT")
                && in_dir(c)
        }) {
            return created.name.clone();
        }
    }
    panic!(
        "no {func}(\"{prefix}...\") created by one process and opened by another in {}: {calls:#?}",
        dir.display()
    );
}

// ---------------------------------------------------------------------------------------------
// Programs.

/// The Python interpreter (`sys.executable` of `python3`), or why there is none.
fn python() -> Result<PathBuf, String> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| {
        let o = Command::new("python3")
            .args([
                "-c",
                "import sys, multiprocessing.shared_memory; print(sys.executable)",
            ])
            .output()
            .map_err(|e| format!("no python3 ({e}); apt-get install python3"))?;
        if !o.status.success() {
            return Err(format!(
                "python3 has no multiprocessing.shared_memory (3.8 or later needed): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    })
    .clone()
}

fn script(name: &str) -> PathBuf {
    programs_dir().join(name)
}

fn python_shared_memory(variant: Variant, test: &'static str) {
    let Some(sb) = Sandbox::new(test, variant) else {
        return;
    };
    let py = match python() {
        Ok(py) => py,
        Err(why) => return skip(test, why),
    };
    let tag = sb.tag();
    let script = script("shared_memory.py");
    let argv = [py.as_os_str(), script.as_os_str(), OsStr::new(&tag)];

    let expected = match variant {
        Variant::Absent => Native::Exit(
            1,
            "FileNotFoundError: [Errno 2] No such file or directory: '/psm_",
        ),
        Variant::ReadOnly => Native::Exit(1, "OSError: [Errno 30] Read-only file system: '/psm_"),
        // 8 MiB written into a 1 MiB file system.
        Variant::Tiny => Native::Signal(libc::SIGBUS),
    };
    assert_native(&sb.native(&argv), &expected, "python shared_memory");

    let o = sb.exec(&argv);
    let out = assert_works(&o, "python shared_memory");
    let slash = format!("/tmpshm-py-{tag}-slash");
    assert_lines(
        &out,
        &[
            format!("ok tmpshm-py-{tag} -> tmpshm-py-{tag}"),
            format!("ok {slash} -> {slash}"),
            "done".into(),
        ],
    );
    assert!(out.contains("ok None -> psm_"), "{out}");
    // Each block was in the directory while it existed ("/x" and "//x" both as .SHMDx).
    let files: Vec<&str> = out.lines().filter(|l| l.starts_with("files ")).collect();
    assert_eq!(files.len(), 3, "{out}");
    assert!(files[0].contains(".SHMDpsm_"), "{out}");
    assert!(
        files[1]
            .split(' ')
            .any(|f| f == format!(".SHMDtmpshm-py-{tag}")),
        "{out}"
    );
    assert!(
        files[2]
            .split(' ')
            .any(|f| f == format!(".SHMDtmpshm-py-{tag}-slash")),
        "{out}"
    );
    // Created by the parent, attached to by the child, by all three kinds of name.
    let calls = sb.traced();
    assert_shared_by_name(&calls, "shm_open", "/psm_", &sb.shm);
    assert_shared_by_name(&calls, "shm_open", &format!("/tmpshm-py-{tag}"), &sb.shm);
    assert_shared_by_name(
        &calls,
        "shm_open",
        &format!("//tmpshm-py-{tag}-slash"),
        &sb.shm,
    );
    assert!(
        !text(&o).contains("leaked shared_memory"),
        "{}",
        show_output(&o)
    );
    sb.assert_nothing_left(&sb.shm);
}

fn c_shm_8mib(variant: Variant, test: &'static str) {
    let Some(sb) = Sandbox::new(test, variant) else {
        return;
    };
    if let Some(why) = compiler_missing(Build::C) {
        return skip(test, why);
    }
    let prog = program("shm_big.c", "shm_big", Build::C);
    let name = format!("/tmpshm-big-{}", sb.tag());
    let argv = [prog.as_os_str(), OsStr::new(&name)];

    let expected = match variant {
        Variant::Absent => Native::Exit(1, "shm_open /tmpshm-big-"),
        Variant::ReadOnly => Native::Exit(1, "shm_open /tmpshm-big-"),
        Variant::Tiny => Native::Signal(libc::SIGBUS),
    };
    let o = sb.native(&argv);
    assert_native(&o, &expected, "shm_big");
    let why = match variant {
        Variant::Absent => ": No such file or directory",
        Variant::ReadOnly => ": Read-only file system",
        // It got as far as the first page past the 1 MiB.
        Variant::Tiny => "created /tmpshm-big-",
    };
    assert!(text(&o).contains(why), "{}", show_output(&o));

    let out = assert_works(&sb.exec(&argv), "shm_big");
    let bare = name.trim_start_matches('/');
    assert_lines(
        &out,
        &[
            format!("file {}/.SHMD{bare} present", sb.shm.display()),
            "ok".into(),
        ],
    );
    assert!(out.contains("child checked "), "{out}");
    assert_shared_by_name(&sb.traced(), "shm_open", &name, &sb.shm);
    sb.assert_nothing_left(&sb.shm);
}

fn python_multiprocessing_semaphores(variant: Variant, test: &'static str) {
    let Some(sb) = Sandbox::new(test, variant) else {
        return;
    };
    let py = match python() {
        Ok(py) => py,
        Err(why) => return skip(test, why),
    };
    let script = script("mp_semaphores.py");
    let methods = ["fork", "spawn", "forkserver"];

    // Natively each start method fails at its first Lock, where /dev/shm cannot be written.
    let expected = match variant {
        Variant::Absent => {
            Native::Exit(1, "FileNotFoundError: [Errno 2] No such file or directory")
        }
        Variant::ReadOnly => Native::Exit(1, "OSError: [Errno 30] Read-only file system"),
        Variant::Tiny => Native::Works,
    };
    if let Native::Works = expected {
        let mut argv = vec![py.as_os_str(), script.as_os_str()];
        argv.extend(methods.iter().map(OsStr::new));
        assert_native(
            &sb.native(&argv),
            &expected,
            "multiprocessing (all methods)",
        );
    } else {
        for m in methods {
            let o = sb.native(&[py.as_os_str(), script.as_os_str(), OsStr::new(m)]);
            assert_native(&o, &expected, &format!("multiprocessing {m}"));
            assert!(
                text(&o).contains("ctx.Lock()"),
                "{m}: not at the first Lock: {}",
                show_output(&o)
            );
        }
    }

    let mut argv = vec![py.as_os_str(), script.as_os_str()];
    argv.extend(methods.iter().map(OsStr::new));
    let out = assert_works(&sb.exec(&argv), "multiprocessing (all methods)");
    for m in methods {
        assert_lines(
            &out,
            &[
                format!("{m} Lock+Queue ok"),
                format!("{m} Pool.map ok"),
                format!("{m} ProcessPoolExecutor ok"),
            ],
        );
    }
    assert_lines(&out, &["done".into()]);
    // spawn and forkserver keep the names until the end (fork unlinks them at once): the
    // Lock's file was in the directory.
    for m in ["spawn", "forkserver"] {
        let files = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{m} files ")))
            .unwrap_or_else(|| panic!("no {m} files line in:\n{out}"));
        assert!(files.contains(".SEMDmp-"), "{m}: {files}");
    }
    // A child re-opened by name a semaphore its parent created (spawn, forkserver).
    let calls = sb.traced();
    assert_shared_by_name(&calls, "sem_open", "/mp-", &sb.shm);
    // Every sem_open of the run went through the library, into the directory.
    let opens: Vec<&Traced> = calls.iter().filter(|c| c.func == "sem_open").collect();
    assert!(opens.len() > 10, "{opens:#?}");
    assert!(
        opens
            .iter()
            .all(|c| c.ok && c.path.as_deref().is_some_and(|p| p.starts_with(&sb.shm))),
        "{opens:#?}"
    );
    sb.assert_nothing_left(&sb.shm);
}

fn boost_headers() -> bool {
    ["/usr/include", "/usr/local/include"].iter().any(|d| {
        Path::new(d)
            .join("boost/interprocess/sync/named_mutex.hpp")
            .exists()
    })
}

fn boost_interprocess(variant: Variant, test: &'static str) {
    let Some(sb) = Sandbox::new(test, variant) else {
        return;
    };
    if let Some(why) = compiler_missing(Build::Cxx) {
        return skip(test, why);
    }
    if !boost_headers() {
        return skip(
            test,
            "Boost.Interprocess headers missing (apt-get install libboost-dev)",
        );
    }
    let prog = program("boost_ipc.cpp", "boost_ipc", Build::Cxx);
    let tag = sb.tag();
    let argv = [prog.as_os_str(), OsStr::new(&tag)];

    // The named_mutex comes first: sem_open fails; in the tiny /dev/shm the 4 MiB block in
    // the 8 MiB segment does not fit.
    let expected = match variant {
        Variant::Absent => Native::Exit(1, "boost_ipc: No such file or directory (error 2)"),
        Variant::ReadOnly => Native::Exit(1, "boost_ipc: Read-only file system (error 30)"),
        Variant::Tiny => Native::Signal(libc::SIGBUS),
    };
    assert_native(&sb.native(&argv), &expected, "boost_ipc");

    let out = assert_works(&sb.exec(&argv), "boost_ipc");
    assert_lines(&out, &["counter 4000".into(), "ok".into()]);
    let files = out
        .lines()
        .find_map(|l| l.strip_prefix("files "))
        .unwrap_or_else(|| panic!("no files line in:\n{out}"));
    for f in [
        format!(".SEMDtmpshm-boost-mutex-{tag}"),
        format!(".SEMDtmpshm-boost-done-{tag}"),
        format!(".SHMDtmpshm-boost-seg-{tag}"),
    ] {
        assert!(files.split(' ').any(|x| x == f), "no {f} in {files}");
    }
    let calls = sb.traced();
    assert_shared_by_name(&calls, "sem_open", "/tmpshm-boost-mutex-", &sb.shm);
    assert_shared_by_name(&calls, "sem_open", "/tmpshm-boost-done-", &sb.shm);
    assert_shared_by_name(&calls, "shm_open", "/tmpshm-boost-seg-", &sb.shm);
    sb.assert_nothing_left(&sb.shm);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

/// The directory of `initdb`, `postgres` and `psql`, or why there is none.
fn pg_bindir() -> Result<PathBuf, String> {
    let has_all = |d: &Path| {
        ["initdb", "postgres", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if o.status.success() && has_all(&d) {
            return Ok(d);
        }
    }
    // Debian and Ubuntu: /usr/lib/postgresql/<major>/bin, the newest first.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_all(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Ok(d);
    }
    in_path("initdb")
        .and_then(|p| p.canonicalize().ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| has_all(d))
        .ok_or_else(|| "PostgreSQL is not installed (apt-get install postgresql)".into())
}

/// What running PostgreSQL as its user needs: the user, and util-linux's setpriv.
fn pg_user() -> Result<nix::unistd::User, String> {
    if in_path("setpriv").is_none() {
        return Err("util-linux's setpriv is not installed".into());
    }
    nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| "no user postgres (apt-get install postgresql creates it)".into())
}

/// `setpriv` to the postgres user, then `argv`.
fn as_postgres<S: AsRef<OsStr>>(argv: &[S]) -> Vec<OsString> {
    let mut v: Vec<OsString> = [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    v.extend(argv.iter().map(|a| a.as_ref().to_os_string()));
    v
}

/// A port no one listens on now (it names the server's Unix socket, in a directory of the
/// test; the server listens on no TCP port).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL cluster of the test, owned by postgres, in `<sandbox>/pg`.
struct Cluster {
    bindir: PathBuf,
    /// Holds the data directory, the socket, the log, the tmpshm directory and its trace.
    root: PathBuf,
    port: u16,
}

impl Cluster {
    fn new(sb: &Sandbox, bindir: PathBuf, user: &nix::unistd::User) -> Cluster {
        let root = sb.path().join("pg");
        std::fs::create_dir(&root).unwrap();
        nix::unistd::chown(&root, Some(user.uid), Some(user.gid)).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let c = Cluster {
            bindir,
            root,
            port: free_port(),
        };
        let data = c.data();
        let initdb = as_postgres(&[c.bindir.join("initdb")]);
        let o = run_limited(
            Command::new(&initdb[0])
                .args(&initdb[1..])
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-N",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ])
                .arg("-D")
                .arg(&data)
                .current_dir(&c.root)
                .env_remove("LD_PRELOAD"),
            LIMIT,
        );
        assert!(o.status.success(), "initdb: {}", show_output(&o));
        let conf = format!(
            "\n# cli/tests/sandbox.rs\nlisten_addresses = ''\nunix_socket_directories = '{}'\n\
             dynamic_shared_memory_type = posix\nmax_connections = 20\nshared_buffers = 32MB\n\
             fsync = off\nmax_parallel_workers_per_gather = 2\nmax_parallel_workers = 4\n\
             parallel_setup_cost = 0\nparallel_tuple_cost = 0\n\
             min_parallel_table_scan_size = 0\n",
            c.root.display()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        // The tmpshm directory, the server's own.
        let shm = c.shm();
        std::fs::create_dir(&shm).unwrap();
        nix::unistd::chown(&shm, Some(user.uid), Some(user.gid)).unwrap();
        std::fs::set_permissions(&shm, std::fs::Permissions::from_mode(0o700)).unwrap();
        c
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn shm(&self) -> PathBuf {
        self.root.join("shm")
    }

    fn trace(&self) -> PathBuf {
        self.root.join("trace.log")
    }

    /// `postgres -D <data> -p <port>`.
    fn postgres_argv(&self) -> Vec<OsString> {
        vec![
            self.bindir.join("postgres").into(),
            "-D".into(),
            self.data().into(),
            "-p".into(),
            self.port.to_string().into(),
        ]
    }

    /// Starts the server in the sandbox (under `tmpshm exec` if `exec`): `Ok` once it accepts
    /// connections, `Err((status, log))` if it exited.
    fn start(&self, sb: &Sandbox, exec: bool, log: &str) -> Result<Server, (String, String)> {
        let argv = if exec {
            as_postgres(&Sandbox::exec_argv(
                &self.shm(),
                &self.trace(),
                &self.postgres_argv(),
            ))
        } else {
            as_postgres(&self.postgres_argv())
        };
        let log = sb.path().join(log);
        let f = std::fs::File::create(&log).unwrap();
        let child = sb
            .command(&argv)
            .stdin(std::process::Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .process_group(0)
            .spawn()
            .expect("spawn postgres");
        // unshare, sh, setpriv and tmpshm exec all exec: the child is the postmaster.
        let mut server = Server {
            child: Some(child),
            log,
        };
        let until = Instant::now() + PG_START_LIMIT;
        loop {
            let text = server.log();
            if let Some(st) = server.child.as_mut().unwrap().try_wait().unwrap() {
                server.child = None;
                assert_ne!(
                    st.code(),
                    Some(SETUP_FAILED),
                    "the sandbox could not be set up: {text}"
                );
                return Err((st.to_string(), text));
            }
            if text.contains("database system is ready to accept connections") {
                return Ok(server);
            }
            assert!(
                Instant::now() < until,
                "postgres not ready after {PG_START_LIMIT:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// psql running `sql`, as the postgres role, on the Unix socket.
    fn psql(&self, sql: &str) -> Output {
        run_limited(
            Command::new(self.bindir.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    "postgres",
                ])
                .arg("-h")
                .arg(&self.root)
                .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
                .env_remove("LD_PRELOAD"),
            LIMIT,
        )
    }
}

/// A running postmaster; dropped (a failed assertion), it is stopped all the same.
struct Server {
    child: Option<std::process::Child>,
    log: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fast shutdown (SIGINT); SIGKILL after a generous wait. The exit status.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The parallel query: a parallel hash join of two 300,000-row tables (about 16 MB of hash
/// table in dynamic shared memory).
const PG_TABLES: &str = "CREATE TABLE t AS SELECT g AS id, g % 1000 AS k FROM \
                         generate_series(1, 300000) g; CREATE TABLE u AS SELECT g AS id FROM \
                         generate_series(1, 300000) g; ANALYZE t; ANALYZE u;";
const PG_QUERY: &str = "SELECT count(*), sum(t.k) FROM t JOIN u ON t.id = u.id";
/// 300,000 rows; k runs through 0..999 300 times.
const PG_RESULT: &str = "300000|149850000";

fn postgres_parallel_query(variant: Variant, test: &'static str) {
    let Some(sb) = Sandbox::new(test, variant) else {
        return;
    };
    let bindir = match pg_bindir() {
        Ok(d) => d,
        Err(why) => return skip(test, why),
    };
    let user = match pg_user() {
        Ok(u) => u,
        Err(why) => return skip(test, why),
    };
    let cluster = Cluster::new(&sb, bindir, &user);

    // Natively: the server cannot start (its control segment), or, where it can, the
    // parallel query cannot get its memory.
    let (needle, errno) = match variant {
        Variant::Absent => (
            "could not open shared memory segment \"/PostgreSQL.",
            "No such file or directory",
        ),
        Variant::ReadOnly => (
            "could not open shared memory segment \"/PostgreSQL.",
            "Read-only file system",
        ),
        Variant::Tiny => (
            "could not resize shared memory segment \"/PostgreSQL.",
            "No space left on device",
        ),
    };
    match cluster.start(&sb, false, "native.log") {
        Err((status, log)) => {
            assert!(
                log.contains(needle) && log.contains(errno),
                "postgres did not start, but not for {needle:?} {errno:?} ({status}):\n{log}"
            );
            let line = log.lines().find(|l| l.contains(needle)).unwrap();
            println!("native postgres: did not start ({status}): {line}");
        }
        Ok(mut server) => {
            let o = cluster.psql(PG_TABLES);
            assert!(o.status.success(), "{}", show_output(&o));
            let o = cluster.psql(PG_QUERY);
            assert!(
                !o.status.success(),
                "the parallel query worked natively: {}",
                show_output(&o)
            );
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert!(err.contains(needle) && err.contains(errno), "{err}");
            println!("native postgres: the query failed: {}", err.trim());
            server.stop();
        }
    }

    // Under tmpshm exec.
    let mut server = match cluster.start(&sb, true, "exec.log") {
        Ok(s) => s,
        Err((status, log)) => panic!("postgres under tmpshm exec did not start ({status}):\n{log}"),
    };
    // Its control segment is in the directory.
    let running = tmpshm_files(&cluster.shm());
    assert!(
        running.iter().any(|f| f.starts_with(".SHMDPostgreSQL.")),
        "{running:?}"
    );
    let o = cluster.psql(PG_TABLES);
    assert!(o.status.success(), "{}", show_output(&o));
    let o = cluster.psql(&format!("EXPLAIN (ANALYZE, COSTS OFF) {PG_QUERY}"));
    assert!(o.status.success(), "{}", show_output(&o));
    let plan = stdout(&o);
    let launched: u32 = plan
        .lines()
        .find_map(|l| l.trim().strip_prefix("Workers Launched: "))
        .unwrap_or_else(|| panic!("no parallel workers:\n{plan}"))
        .parse()
        .unwrap();
    assert!(launched >= 2, "{plan}");
    assert!(plan.contains("Parallel Hash Join"), "{plan}");
    let o = cluster.psql(PG_QUERY);
    assert!(o.status.success(), "{}", show_output(&o));
    assert_eq!(stdout(&o).trim(), PG_RESULT);
    println!("tmpshm exec postgres: {launched} workers launched, result {PG_RESULT}");

    let status = server.stop().expect("the server was running");
    assert!(
        status.success(),
        "postgres exited {status}:\n{}",
        server.log()
    );
    // A segment created by one process (a backend) was attached by another (a worker).
    let calls = traced(&cluster.trace());
    assert_shared_by_name(&calls, "shm_open", "/PostgreSQL.", &cluster.shm());
    assert!(
        calls.iter().all(|c| c.ok),
        "failed calls: {:#?}",
        calls.iter().filter(|c| !c.ok).collect::<Vec<_>>()
    );
    sb.assert_nothing_left(&cluster.shm());
}

// ---------------------------------------------------------------------------------------------
// The tests: each program in each sandbox.

macro_rules! in_each_sandbox {
    ($run:ident: $absent:ident, $read_only:ident, $tiny:ident) => {
        #[test]
        fn $absent() {
            $run(Variant::Absent, stringify!($absent));
        }
        #[test]
        fn $read_only() {
            $run(Variant::ReadOnly, stringify!($read_only));
        }
        #[test]
        fn $tiny() {
            $run(Variant::Tiny, stringify!($tiny));
        }
    };
}

in_each_sandbox!(python_shared_memory:
    python_shared_memory_absent, python_shared_memory_read_only, python_shared_memory_tiny);
in_each_sandbox!(c_shm_8mib: c_shm_8mib_absent, c_shm_8mib_read_only, c_shm_8mib_tiny);
in_each_sandbox!(postgres_parallel_query:
    postgres_parallel_query_absent, postgres_parallel_query_read_only,
    postgres_parallel_query_tiny);
in_each_sandbox!(python_multiprocessing_semaphores:
    python_multiprocessing_semaphores_absent, python_multiprocessing_semaphores_read_only,
    python_multiprocessing_semaphores_tiny);
in_each_sandbox!(boost_interprocess:
    boost_interprocess_absent, boost_interprocess_read_only, boost_interprocess_tiny);
