//! `tmpshm exec`: the built command running small C programs (`testkit/programs/calls.c`) on the
//! preload library. How it finds the library, prepares the directory, builds `LD_PRELOAD`,
//! passes exit statuses and signals on, traces, switches the name rules and warns; and what a
//! preloaded program says when its directory cannot work.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tmpshm_testkit::support::*;

const TMPSHM: &str = env!("CARGO_BIN_EXE_tmpshm");
/// Generous: these programs take milliseconds.
const LIMIT: Duration = Duration::from_secs(60);

/// The `calls` test program (compiled once).
fn calls() -> PathBuf {
    program("calls.c", "calls", Build::C)
}

/// A command with none of the settings of the environment the tests run in.
fn clean(prog: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(prog);
    without_tmpshm_env(&mut c);
    c
}

/// `tmpshm exec` with the preload library named by `TMPSHM_PRELOAD` and `args` (options,
/// `--`, the program...).
fn exec<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut c = clean(TMPSHM);
    c.arg("exec")
        .args(args)
        .env("TMPSHM_PRELOAD", preload_library());
    c
}

fn run(c: &mut Command) -> Output {
    run_limited(c, LIMIT)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout of a run that must succeed.
fn ok(c: &mut Command) -> String {
    let o = run(c);
    assert!(o.status.success(), "{c:?}: {}", show_output(&o));
    stdout(&o)
}

/// The value `calls env` printed for `var`.
fn seen<'a>(out: &'a str, var: &str) -> &'a str {
    let prefix = format!("{var}=");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {var}= in:\n{out}"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tmpshm-exec-")
        .tempdir()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The message `exec` gives when it cannot find the library, checked for what a user needs.
fn assert_not_found(o: &Output, looked_at: &Path) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(127), "{}", show_output(o));
    assert!(o.stdout.is_empty(), "the program ran: {}", show_output(o));
    for needle in [
        "tmpshm exec: cannot find libtmpshm_preload.so",
        &looked_at.display().to_string(),
        "cargo build --release -p tmpshm-preload",
        "TMPSHM_PRELOAD",
    ] {
        assert!(err.contains(needle), "no {needle:?} in:\n{err}");
    }
}

#[test]
fn the_library_is_found_from_the_environment_next_to_the_command_and_in_its_prefix() {
    let lib = preload_library();
    let d = tempdir();
    let shm = d.path().join("shm");
    let calls = calls();

    // $TMPSHM_PRELOAD.
    let out = ok(
        exec(&[OsStr::new("--dir"), shm.as_os_str(), OsStr::new("--")])
            .arg(&calls)
            .args(["env", "loaded"]),
    );
    assert_eq!(seen(&out, "LD_PRELOAD"), lib.to_str().unwrap());
    assert!(out.contains("preload mapped: yes"), "{out}");

    // Next to the executable, and in <prefix>/lib for <prefix>/bin/tmpshm; without
    // $TMPSHM_PRELOAD.
    let next = d.path().join("next");
    let prefix = d.path().join("prefix");
    for (bin, expected) in [
        (next.join("tmpshm"), next.join("libtmpshm_preload.so")),
        (
            prefix.join("bin/tmpshm"),
            prefix.join("lib/libtmpshm_preload.so"),
        ),
    ] {
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
        copy_program(TMPSHM, &bin);
        copy_program(&lib, &expected);
        let out = ok(clean(&bin)
            .args([OsStr::new("exec"), OsStr::new("--dir"), shm.as_os_str()])
            .arg("--")
            .arg(&calls)
            .args(["env", "loaded"]));
        assert_eq!(seen(&out, "LD_PRELOAD"), expected.to_str().unwrap());
        assert!(out.contains("preload mapped: yes"), "{out}");
    }
}

#[test]
fn a_missing_library_is_a_clear_error_with_the_build_command() {
    let d = tempdir();
    let calls = calls();

    // $TMPSHM_PRELOAD names a file that is not there.
    let missing = d.path().join("nowhere/libtmpshm_preload.so");
    let o = run(exec(&[OsStr::new("--dir"), d.path().as_os_str()])
        .env("TMPSHM_PRELOAD", &missing)
        .arg("--")
        .arg(&calls)
        .arg("env"));
    assert_not_found(&o, &missing);

    // A copy of the command alone in an empty directory, no $TMPSHM_PRELOAD.
    let alone = d.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    let bin = alone.join("tmpshm");
    copy_program(TMPSHM, &bin);
    let o = run(clean(&bin)
        .args([
            OsStr::new("exec"),
            OsStr::new("--dir"),
            d.path().as_os_str(),
        ])
        .arg("--")
        .arg(&calls)
        .arg("env"));
    assert_not_found(&o, &alone.join("libtmpshm_preload.so"));
}

#[test]
fn a_missing_directory_is_created_private_or_shared_and_made_absolute() {
    let d = tempdir();
    let calls = calls();

    // Missing, with a missing parent: created 0700, whatever the umask.
    let private = d.path().join("a/private");
    let o = run(
        exec(&[OsStr::new("--dir"), private.as_os_str(), OsStr::new("--")])
            .arg(&calls)
            .args(["env", "open:/made", "unlink:/made"]),
    );
    assert!(o.status.success(), "{}", show_output(&o));
    assert_eq!(mode(&private), 0o700);
    assert!(
        stderr(&o).contains(&format!("created {} (mode 0700)", private.display())),
        "{}",
        show_output(&o)
    );
    let out = stdout(&o);
    assert_eq!(seen(&out, "TMPSHM_DIR"), private.to_str().unwrap());
    assert_eq!(seen(&out, "TMPSHM_CROSS_USER"), "(unset)");
    assert!(out.contains("shm_open /made = ok") && out.contains("shm_unlink /made = ok"));

    // --cross-user: 1777, even under a umask that would take bits away, and the setting
    // exported.
    let shared = d.path().join("shared");
    let out = ok(Command::new("sh")
        .args(["-c", "umask 077 && exec \"$@\"", "sh", TMPSHM, "exec"])
        .env_remove("LD_PRELOAD")
        .env("TMPSHM_PRELOAD", preload_library())
        .args([OsStr::new("--cross-user"), OsStr::new("--dir")])
        .arg(&shared)
        .arg("--")
        .arg(&calls)
        .args(["env", "open:/x"]));
    assert_eq!(mode(&shared), 0o1777);
    assert_eq!(seen(&out, "TMPSHM_CROSS_USER"), "1");
    assert!(shared.join(".SHMDx").exists(), "{out}");

    // A relative --dir, and a relative $TMPSHM_DIR, become absolute (a relative one would name
    // another directory in every process with another working directory).
    for (how, arg) in [("--dir", true), ("TMPSHM_DIR", false)] {
        let rel = format!("rel-{}", how.trim_start_matches('-').to_lowercase());
        let mut c = clean(TMPSHM);
        c.current_dir(d.path())
            .env("TMPSHM_PRELOAD", preload_library())
            .arg("exec");
        if arg {
            c.args(["--dir", &rel]);
        } else {
            c.env("TMPSHM_DIR", &rel);
        }
        let out = ok(c.arg("--").arg(&calls).args(["env", "open:/r"]));
        let abs = d.path().join(&rel);
        assert_eq!(seen(&out, "TMPSHM_DIR"), abs.to_str().unwrap(), "{how}");
        assert!(abs.join(".SHMDr").exists(), "{how}: {out}");
    }
}

#[test]
fn a_directory_exec_cannot_use_is_refused_before_the_program_runs() {
    let d = tempdir();
    chmod(d.path(), 0o755);
    let calls = calls();

    // A file where the directory should be.
    let file = d.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let o = run(
        exec(&[OsStr::new("--dir"), file.as_os_str(), OsStr::new("--")])
            .arg(&calls)
            .arg("env"),
    );
    assert_eq!(o.status.code(), Some(127), "{}", show_output(&o));
    assert!(o.stdout.is_empty(), "the program ran: {}", show_output(&o));
    assert!(
        stderr(&o).contains(&format!("{} is not a directory", file.display())),
        "{}",
        show_output(&o)
    );

    // A directory this user may not write (root's 0755 directory, as uid 65534).
    if skip_unless_root("a_directory_exec_cannot_use_is_refused_before_the_program_runs") {
        return;
    }
    let o = run(
        exec(&[OsStr::new("--dir"), d.path().as_os_str(), OsStr::new("--")])
            .arg(&calls)
            .arg("env")
            .uid(NOBODY)
            .gid(NOBODY),
    );
    assert_eq!(o.status.code(), Some(127), "{}", show_output(&o));
    assert!(o.stdout.is_empty(), "the program ran: {}", show_output(&o));
    assert!(
        stderr(&o).contains("is not writable for this user"),
        "{}",
        show_output(&o)
    );
}

#[test]
fn ld_preload_keeps_what_it_had_and_gets_the_library_once() {
    let d = tempdir();
    let lib = preload_library();
    let lib = lib.to_str().unwrap();
    let calls = calls();
    let other = program("other_preload.c", "other_preload.so", Build::CShared);
    let other = other.to_str().unwrap();
    let dir = d.path().to_str().unwrap();

    // Another library first, ours appended; both loaded, and shm_open is still ours.
    let o = run(exec(&["--dir", dir, "--"])
        .env("LD_PRELOAD", other)
        .arg(&calls)
        .args(["env", "loaded", "open:/kept"]));
    assert!(o.status.success(), "{}", show_output(&o));
    let out = stdout(&o);
    assert_eq!(seen(&out, "LD_PRELOAD"), format!("{other}:{lib}"));
    assert!(
        stderr(&o).contains("other preload loaded"),
        "{}",
        show_output(&o)
    );
    assert!(out.contains("preload mapped: yes"), "{out}");
    assert!(d.path().join(".SHMDkept").exists());

    // Already there (space- or colon-separated): left as it was.
    for already in [format!("{other}:{lib}"), format!("{lib} {other}")] {
        let out = ok(exec(&["--dir", dir, "--"])
            .env("LD_PRELOAD", &already)
            .arg(&calls)
            .arg("env"));
        assert_eq!(seen(&out, "LD_PRELOAD"), already);
    }

    // exec within exec: still once.
    let out = ok(
        exec(&["--dir", dir, "--", TMPSHM, "exec", "--dir", dir, "--"])
            .arg(&calls)
            .arg("env"),
    );
    assert_eq!(seen(&out, "LD_PRELOAD"), lib);
}

#[test]
fn the_exit_status_and_a_killing_signal_are_the_programs_own() {
    let d = tempdir();
    let dir = d.path().to_str().unwrap();

    let o = run(&mut exec(&["--dir", dir, "--", "sh", "-c", "exit 7"]));
    assert_eq!(o.status.code(), Some(7), "{}", show_output(&o));

    let o = run(&mut exec(&[
        "--dir",
        dir,
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ]));
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGTERM),
        "{}",
        show_output(&o)
    );

    // exec replaces itself: the program is the process the caller started and waits for.
    let mut c = exec(&["--dir", dir, "--", "sh", "-c", "echo $$"]);
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o).trim(), pid.to_string());

    // A program that cannot be run: 127, as from a shell.
    let o = run(&mut exec(&["--dir", dir, "--", "/nonexistent/program"]));
    assert_eq!(o.status.code(), Some(127), "{}", show_output(&o));
    assert!(stderr(&o).contains("cannot run /nonexistent/program"));
}

/// The trace lines of the calls `calls` makes for `open:/tr excl:/tr rdonly:/none sem:/ts
/// unlink:/tr semunlink:/ts`, checked in `text` with the pid and the paths in `dir`.
fn assert_traced(text: &str, pid: &str, dir: &Path) {
    let d = dir.display();
    let p = format!("tmpshm[{pid}]: ");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&p)).collect();
    let expected = [
        (
            "shm_open(\"/tr\", O_RDWR|O_CREAT, 0600) = ",
            format!(" {d}/.SHMDtr"),
        ),
        (
            "shm_open(\"/tr\", O_RDWR|O_CREAT|O_EXCL, 0640) = -1 EEXIST (File exists)",
            format!(" {d}/.SHMDtr"),
        ),
        (
            "shm_open(\"/none\", O_RDONLY, 0000) = -1 ENOENT (No such file or directory)",
            format!(" {d}/.SHMDnone"),
        ),
        (
            "sem_open(\"/ts\", O_RDONLY|O_CREAT, 0600, 1) = 0x",
            format!(" {d}/.SEMDts"),
        ),
        ("sem_close(0x", " = 0".to_string()),
        ("shm_unlink(\"/tr\") = 0", format!(" {d}/.SHMDtr")),
        ("sem_unlink(\"/ts\") = 0", format!(" {d}/.SEMDts")),
    ];
    assert_eq!(lines.len(), expected.len(), "{text}");
    for (line, (start, end)) in lines.iter().zip(&expected) {
        let line = line.strip_prefix(&p).unwrap();
        assert!(
            line.starts_with(start) && line.ends_with(end.as_str()),
            "expected {start}...{end}, got {line}"
        );
    }
}

#[test]
fn trace_logs_every_call_to_stderr_or_to_a_file() {
    let d = tempdir();
    let shm = d.path().join("shm");
    let calls_args = [
        "env",
        "open:/tr",
        "excl:/tr",
        "rdonly:/none",
        "sem:/ts",
        "unlink:/tr",
        "semunlink:/ts",
    ];

    // --trace: standard error.
    let o = run(exec(&[
        OsStr::new("--trace"),
        OsStr::new("--dir"),
        shm.as_os_str(),
        OsStr::new("--"),
    ])
    .arg(calls())
    .args(calls_args));
    assert!(o.status.success(), "{}", show_output(&o));
    let out = stdout(&o);
    assert_eq!(seen(&out, "TMPSHM_TRACE"), "stderr");
    assert_traced(&stderr(&o), seen(&out, "pid"), &shm);

    // --trace=FILE, relative: made absolute, appended to; nothing on stderr.
    let log = d.path().join("trace.log");
    std::fs::write(&log, b"earlier line\n").unwrap();
    let o = run(exec(&[
        OsStr::new("--trace=trace.log"),
        OsStr::new("--dir"),
        shm.as_os_str(),
        OsStr::new("--"),
    ])
    .current_dir(d.path())
    .arg(calls())
    .args(calls_args));
    assert!(o.status.success(), "{}", show_output(&o));
    let out = stdout(&o);
    assert_eq!(seen(&out, "TMPSHM_TRACE"), log.to_str().unwrap());
    assert!(
        !stderr(&o).contains("tmpshm["),
        "trace on stderr: {}",
        show_output(&o)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("earlier line\n"), "{text}");
    assert_traced(&text, seen(&out, "pid"), &shm);
    assert_eq!(tmpshm_files(&shm), Vec::<String>::new());
}

#[test]
fn names_strict_switches_to_the_illumos_rules() {
    let d = tempdir();
    let dir = d.path().to_str().unwrap();
    let calls = calls();

    // glibc's rules by default: leading slashes dropped, one object.
    let out = ok(exec(&["--dir", dir, "--"]).arg(&calls).args([
        "env",
        "open:x",
        "rdonly:/x",
        "rdonly://x",
        "unlink:/a/b",
        "unlink:x",
    ]));
    assert_eq!(seen(&out, "TMPSHM_NAMES"), "(unset)");
    for line in [
        "shm_open x = ok",
        "shm_open /x = ok",
        "shm_open //x = ok",
        "shm_unlink /a/b = -1 ENOENT",
        "shm_unlink x = ok",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }

    // --names strict: one leading slash, no other.
    let out = ok(exec(&["--names", "strict", "--dir", dir, "--"])
        .arg(&calls)
        .args([
            "env",
            "open:x",
            "open://x",
            "sem:s",
            "open:/x",
            "unlink:x",
            "unlink:/x",
        ]));
    assert_eq!(seen(&out, "TMPSHM_NAMES"), "strict");
    for line in [
        "shm_open x = -1 EINVAL",
        "shm_open //x = -1 EINVAL",
        "sem_open s = SEM_FAILED EINVAL",
        "shm_open /x = ok",
        "shm_unlink x = -1 EINVAL",
        "shm_unlink /x = ok",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }

    // --names glibc, explicitly.
    let out = ok(exec(&["--names", "glibc", "--dir", dir, "--"])
        .arg(&calls)
        .args(["env", "open://y", "unlink:y"]));
    assert_eq!(seen(&out, "TMPSHM_NAMES"), "glibc");
    assert!(out.contains("shm_open //y = ok") && out.contains("shm_unlink y = ok"));
    assert_eq!(tmpshm_files(d.path()), Vec::<String>::new());
}

#[test]
fn a_set_user_id_program_gets_the_warning() {
    let test = "a_set_user_id_program_gets_the_warning";
    let d = tempdir();
    chmod(d.path(), 0o755);
    let shm = d.path().join("shm");
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let plain = bin.join("calls-plain");
    copy_program(calls(), &plain);
    let warning = "is set-user-ID or set-group-ID: the loader ignores LD_PRELOAD for it";

    // An ordinary program: no warning.
    let o = run(
        exec(&[OsStr::new("--dir"), shm.as_os_str(), OsStr::new("--")])
            .arg(&plain)
            .arg("env"),
    );
    assert!(o.status.success(), "{}", show_output(&o));
    assert!(!stderr(&o).contains(warning), "{}", show_output(&o));

    for (file, bits) in [("calls-setuid", 0o4755), ("calls-setgid", 0o2755)] {
        let prog = bin.join(file);
        copy_program(calls(), &prog);
        chmod(&prog, bits);
        // By path, and by name through $PATH.
        for how in [prog.as_os_str(), OsStr::new(file)] {
            let o = run(
                exec(&[OsStr::new("--dir"), shm.as_os_str(), OsStr::new("--")])
                    .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                    .arg(how)
                    .arg("env"),
            );
            assert!(o.status.success(), "{}", show_output(&o));
            let err = stderr(&o);
            assert!(
                err.contains(&format!(
                    "tmpshm exec: WARNING: {} {warning}",
                    prog.display()
                )),
                "{how:?}: {}",
                show_output(&o)
            );
        }
    }

    // What the warning is about: started by another user, the set-user-ID-root program runs
    // without the library.
    if !is_root() {
        skip(
            test,
            "the last part needs root (a set-user-ID-root program run by 65534)",
        );
        return;
    }
    let st = nix::sys::statvfs::statvfs(d.path()).unwrap();
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID) {
        skip(
            test,
            format_args!("{} is mounted nosuid", d.path().display()),
        );
        return;
    }
    std::fs::create_dir(&shm).ok();
    nix::unistd::chown(&shm, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    // The library itself must be readable for 65534; it is under the target directory.
    let setuid = bin.join("calls-setuid");
    let out = ok(
        exec(&[OsStr::new("--dir"), shm.as_os_str(), OsStr::new("--")])
            .arg(&setuid)
            .args(["env", "loaded"])
            .uid(NOBODY)
            .gid(NOBODY),
    );
    assert!(out.contains("preload mapped: no"), "{out}");
    let out = ok(
        exec(&[OsStr::new("--dir"), shm.as_os_str(), OsStr::new("--")])
            .arg(&plain)
            .args(["env", "loaded"])
            .uid(NOBODY)
            .gid(NOBODY),
    );
    assert!(out.contains("preload mapped: yes"), "{out}");
}

/// The lines of `stderr` from the library (`tmpshm: ...`), not from the program.
fn library_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("tmpshm: "))
        .collect()
}

#[test]
fn a_directory_that_cannot_work_is_named_once_per_process() {
    let test = "a_directory_that_cannot_work_is_named_once_per_process";
    let d = tempdir();
    chmod(d.path(), 0o755);
    let calls = calls();
    let ops = [
        "open:/a",
        "excl:/b",
        "rdonly:/c",
        "sem:/d",
        "unlink:/a",
        "semunlink:/d",
    ];
    let run_preloaded = |dir: &OsStr, nobody: bool| {
        let mut c = clean(&calls);
        c.env("LD_PRELOAD", preload_library())
            .env("TMPSHM_DIR", dir)
            .args(ops);
        if nobody {
            c.uid(NOBODY).gid(NOBODY);
        }
        run(&mut c)
    };
    let check = |o: &Output, errnos: &[&str], problem: &str, dir: &str| {
        assert!(o.status.success(), "{}", show_output(o));
        let out = stdout(o);
        let results: Vec<&str> = out.lines().collect();
        assert_eq!(results.len(), ops.len(), "{out}");
        for (line, errno) in results.iter().zip(errnos) {
            assert!(line.contains(&format!(" {errno} ")), "{line}: not {errno}");
        }
        let err = stderr(o);
        let lines = library_lines(&err);
        assert_eq!(lines.len(), 1, "one line, not one per call:\n{err}");
        let line = lines[0];
        assert!(
            line.starts_with(&format!("tmpshm: TMPSHM_DIR={dir} {problem}, so ")),
            "{line}"
        );
        assert!(
            line.contains(&format!("failed with {}", errnos[0])),
            "{line}"
        );
        assert!(line.contains("tmpshm exec"), "{line}");
    };

    let missing = d.path().join("missing");
    let o = run_preloaded(missing.as_os_str(), false);
    check(
        &o,
        &["ENOENT"; 6],
        "does not exist",
        missing.to_str().unwrap(),
    );

    let o = run_preloaded(OsStr::new("relative/dir"), false);
    check(
        &o,
        &["EINVAL"; 6],
        "is not an absolute path",
        "relative/dir",
    );

    if !is_root() {
        skip(test, "the unwritable case needs root (run as uid 65534)");
        return;
    }
    // Root's 0755 directory, for 65534: creating is refused, a missing object is missing.
    let o = run_preloaded(d.path().as_os_str(), true);
    check(
        &o,
        &["EACCES", "EACCES", "ENOENT", "EACCES", "ENOENT", "ENOENT"],
        "is not writable for this user",
        d.path().to_str().unwrap(),
    );
}

#[test]
fn a_program_with_file_capabilities_gets_the_warning() {
    let test = "a_program_with_file_capabilities_gets_the_warning";
    if skip_unless_root(test) {
        return;
    }
    let Some(setcap) = in_path("setcap").or_else(|| {
        ["/usr/sbin/setcap", "/sbin/setcap"]
            .map(std::path::PathBuf::from)
            .into_iter()
            .find(|p| p.exists())
    }) else {
        skip(test, "no setcap (Debian's libcap2-bin)");
        return;
    };
    let d = tempdir();
    chmod(d.path(), 0o755);
    let prog = d.path().join("calls-caps");
    copy_program(calls(), &prog);
    let set = std::process::Command::new(setcap)
        .arg("cap_net_bind_service+ep")
        .arg(&prog)
        .output()
        .unwrap();
    if !set.status.success() {
        skip(
            test,
            format_args!(
                "setcap failed here: {}",
                String::from_utf8_lossy(&set.stderr).trim()
            ),
        );
        return;
    }
    let shm = d.path().join("shm");
    let o = run(
        exec(&[OsStr::new("--dir"), shm.as_os_str(), OsStr::new("--")])
            .arg(&prog)
            .arg("env"),
    );
    assert!(o.status.success(), "{}", show_output(&o));
    assert!(
        stderr(&o).contains(&format!(
            "tmpshm exec: WARNING: {} has file capabilities: the loader ignores LD_PRELOAD for it",
            prog.display()
        )),
        "{}",
        show_output(&o)
    );
}
