//! Every `tmpshm` command, run as the built binary against a temporary directory.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tmpshm::{ShmDir, ShmOptions};
use tmpshm_testkit::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_tmpshm");

fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--dir").arg(dir).env_remove("TMPSHM_DIR");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir).args(args).output().expect("spawn tmpshm")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "tmpshm {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The command fails with exit status 1 and one `tmpshm: ...` line naming `errno` and `needle`.
fn fails(dir: &Path, args: &[&str], errno: &str, needle: &str) -> String {
    fails_with(1, dir, args, errno, needle)
}

/// As [`fails`], with exit status `code` (2: a usage error, such as a name the rules refuse).
fn fails_with(code: i32, dir: &Path, args: &[&str], errno: &str, needle: &str) -> String {
    let out = run(dir, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "tmpshm {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("tmpshm: "), "{err}");
    assert!(err.contains(errno), "{errno} expected: {err}");
    assert!(err.contains(needle), "{needle:?} expected: {err}");
    err
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("invalid JSON ({e}): {s}"))
}

fn with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = cmd(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tmpshm");
    // A command that fails before it reads stdin closes it: EPIPE here is no failure.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

#[test]
fn create_sizes_and_modes_exactly_and_refuses_an_existing_name() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(d.path(), &["create", "/a", "--size", "4K", "--mode", "640"]);
    assert!(out.starts_with("created /a"), "{out}");
    let meta = std::fs::metadata(d.path().join(".SHMDa")).unwrap();
    assert_eq!(meta.len(), 4096);
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    fails(
        d.path(),
        &["create", "/a", "--size", "1"],
        "EEXIST",
        &d.path().join(".SHMDa").display().to_string(),
    );
    let again = ok(d.path(), &["create", "/a", "--size", "4096", "--exist-ok"]);
    assert!(again.starts_with("exists /a"), "{again}");
    fails(
        d.path(),
        &["create", "/a", "--size", "8K", "--exist-ok"],
        "EINVAL",
        "smaller than the 8192 bytes",
    );
    // A name the rules refuse is a usage error, as clap's are: status 2.
    fails_with(
        2,
        d.path(),
        &["create", "nope", "--size", "1"],
        "EINVAL",
        "nope",
    );
    // Bad arguments are clap's business: status 2.
    let out = run(d.path(), &["create", "/b", "--size", "12Q"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(d.path(), &["create", "/b", "--size", "1", "--mode", "4755"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!d.path().join(".SHMDb").exists());
}

#[test]
fn concurrent_create_exist_ok_creates_once() {
    let d = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..6)
        .map(|_| {
            cmd(d.path())
                .args(["create", "/race", "--size", "64K", "--exist-ok"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        })
        .collect();
    assert_eq!(outs.iter().filter(|o| o.starts_with("created")).count(), 1);
    assert!(outs.iter().all(|o| o.contains("65536 bytes")), "{outs:?}");
}

#[test]
fn ls_and_stat_print_valid_json() {
    let d = tempfile::tempdir().unwrap();
    let empty = json(&ok(d.path(), &["ls", "--json"]));
    assert_eq!(empty["objects"].as_array().unwrap().len(), 0);
    ok(d.path(), &["create", "/one", "--size", "100"]);
    ok(
        d.path(),
        &[
            "create",
            "/two \"quoted\"\\",
            "--size",
            "1M",
            "--mode",
            "0o604",
        ],
    );
    std::fs::write(d.path().join(".SHMLone"), b"").unwrap();
    let v = json(&ok(d.path(), &["ls", "--json"]));
    assert_eq!(v["dir"], d.path().display().to_string());
    let objs = v["objects"].as_array().unwrap();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["name"], "/one");
    assert_eq!(objs[0]["size"], 100);
    assert_eq!(objs[0]["mode"], "0600");
    assert_eq!(objs[0]["nlink"], 1);
    assert_eq!(objs[0]["kind"], "file");
    assert!(objs[0]["modified_unix"].as_i64().unwrap() > 1_600_000_000);
    // Escaped: a backslash is doubled, so that `rm --escaped` can take the name back.
    assert_eq!(objs[1]["name"], "/two \"quoted\"\\\\");
    assert_eq!(objs[1]["size"], 1 << 20);
    assert_eq!(objs[1]["mode"], "0604");
    let locks = v["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0]["name"], "/one");
    assert_eq!(locks[0]["state"], "stale");

    let text = ok(d.path(), &["ls"]);
    assert!(text.contains("objects: 2"), "{text}");
    assert!(text.contains(".SHMLone: lock of /one, stale"), "{text}");

    let s = json(&ok(d.path(), &["stat", "/one", "--json"]));
    assert_eq!(s["size"], 100);
    assert_eq!(s["lock"]["state"], "stale");
    let s = json(&ok(d.path(), &["stat", "/two \"quoted\"\\", "--json"]));
    assert_eq!(s["lock"], Value::Null);
    let human = ok(d.path(), &["stat", "/one"]);
    assert!(human.contains("size:     100"), "{human}");
    assert!(human.contains("mode:     0600"), "{human}");
    fails(
        d.path(),
        &["stat", "/missing"],
        "ENOENT",
        &d.path().join(".SHMDmissing").display().to_string(),
    );
}

#[test]
fn write_grows_and_cat_reads_back() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["create", "/w", "--size", "0"]);
    let out = with_stdin(d.path(), &["write", "/w", "--offset", "5"], b"abc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("grown to 8 bytes"));
    let out = with_stdin(d.path(), &["write", "/w"], b"XY");
    assert!(out.status.success());
    let cat = run(d.path(), &["cat", "/w"]);
    assert!(cat.status.success());
    assert_eq!(cat.stdout, b"XY\0\0\0abc");
    assert_eq!(std::fs::metadata(d.path().join(".SHMDw")).unwrap().len(), 8);
    let out = with_stdin(d.path(), &["write", "/nothing"], b"x");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ENOENT"));
    fails(d.path(), &["cat", "/nothing"], "ENOENT", ".SHMDnothing");
}

#[test]
fn rm_removes_each_and_reports_each_failure() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["create", "/x", "--size", "1"]);
    ok(d.path(), &["create", "/y", "--size", "1"]);
    let out = run(d.path(), &["rm", "/x", "/gone", "/y"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("ENOENT") && err.contains(".SHMDgone"), "{err}");
    assert!(!d.path().join(".SHMDx").exists());
    assert!(!d.path().join(".SHMDy").exists());
    assert!(ok(d.path(), &["rm", "--help"]).contains("NAMES"));
}

#[test]
fn gc_removes_stale_files_and_keeps_held_ones() {
    let d = tempfile::tempdir().unwrap();
    let stale = d.path().join(".SHMLstale");
    let temp = d.path().join(".SHMT1.0");
    let held = d.path().join(".SHMLheld");
    std::fs::write(&stale, b"").unwrap();
    std::fs::write(&temp, b"").unwrap();
    let f = std::fs::File::create(&held).unwrap();
    // This process holds it; the spawned tmpshm sees a live holder (another open file).
    let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();

    let v = json(&ok(d.path(), &["ls", "--json"]));
    let held_entry = v["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "/held")
        .unwrap()
        .clone();
    assert_eq!(held_entry["state"], "held");
    assert_eq!(held_entry["pid"], std::process::id());

    let out = ok(d.path(), &["gc"]);
    assert!(
        out.contains(&format!("removed {}", stale.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("removed {}", temp.display())),
        "{out}"
    );
    assert!(out.contains(&format!("kept {}", held.display())), "{out}");
    assert!(!stale.exists() && !temp.exists() && held.exists());
    drop(lock);
    let out = ok(d.path(), &["gc"]);
    assert!(
        out.contains(&format!("removed {}", held.display())),
        "{out}"
    );
    assert!(ok(d.path(), &["gc"]).starts_with("nothing to collect"));
}

#[test]
fn tour_shows_the_three_mappings_and_leaves_nothing_behind() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(d.path(), &["tour"]);
    let dir = d.path().display().to_string();
    let pmap: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("== 4."))
        .take_while(|l| !l.starts_with("== 5."))
        .collect();
    let object = pmap
        .iter()
        .find(|l| l.contains("the tmpshm object"))
        .unwrap_or_else(|| panic!("no object line: {out}"));
    assert!(object.contains(&format!("{dir}/.SHMDtour-")), "{object}");
    assert!(
        object.contains("rw-s") && !object.contains("(deleted)"),
        "{object}"
    );
    let plain = pmap.iter().find(|l| l.contains("the plain file")).unwrap();
    assert!(plain.contains(&dir));
    if cfg!(target_os = "linux") {
        let sysv = pmap.iter().find(|l| l.contains("SysV segment")).unwrap();
        assert!(sysv.contains("/SYSV") && !sysv.contains(&dir), "{sysv}");
        assert!(out.contains("shmget(IPC_PRIVATE, 4096"), "{out}");
    }
    assert!(out.contains("the short-lived lock file:") && out.contains(".SHMLtour-"));
    assert!(out.contains("does not exist"), "{out}");
    assert!(
        out.contains("Mapping::new(fd, 4096) = error: map: EINVAL"),
        "{out}"
    );
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert!(left.is_empty(), "tour left {left:?}");
}

#[test]
fn doctor_reports_the_directory_and_kernel_settings() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(d.path(), &["doctor"]);
    assert!(out.contains(&format!(
        "directory:    {} (from --dir)",
        d.path().display()
    )));
    assert!(out.contains("NAME_MAX:     "), "{out}");
    assert!(out.contains("file system:  "), "{out}");
    if Path::new("/proc/sys/fs/protected_symlinks").exists() {
        assert!(out.contains("fs.protected_symlinks = "), "{out}");
        assert!(out.contains("fs.protected_hardlinks = "), "{out}");
    }
    if Path::new("/dev/shm").is_dir() {
        let shm = ok(Path::new("/dev/shm"), &["doctor"]);
        assert!(shm.contains("memory-backed, good"), "{shm}");
    }
    std::fs::write(d.path().join(".SHMLleft"), b"").unwrap();
    let out = ok(d.path(), &["doctor"]);
    assert!(
        out.contains("(1 stale)") && out.contains("tmpshm gc"),
        "{out}"
    );
    fails(&d.path().join("missing"), &["doctor"], "ENOENT", "missing");
}

#[test]
fn trace_prints_every_step_to_stderr() {
    let d = tempfile::tempdir().unwrap();
    let out = run(d.path(), &["--trace", "create", "/t", "--size", "4096"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let steps: Vec<&str> = err.lines().collect();
    assert!(steps.iter().all(|l| l.starts_with("trace: ")), "{err}");
    for want in [
        "trace: name \"/t\" ok",
        "trace: lock acquired",
        "trace: fallocate",
        "trace: renameat2 RENAME_NOREPLACE",
        "trace: unlock",
    ] {
        assert!(steps.iter().any(|l| l.starts_with(want)), "{want}: {err}");
    }
    let acquired = steps
        .iter()
        .position(|l| l.starts_with("trace: lock acquired"));
    let unlocked = steps.iter().position(|l| l.starts_with("trace: unlock"));
    assert!(acquired < unlocked);
    let out = run(d.path(), &["--trace", "cat", "/t"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("O_RDONLY|O_NOFOLLOW|O_CLOEXEC"), "{err}");
    // Without --trace: quiet.
    assert!(run(d.path(), &["cat", "/t"]).stderr.is_empty());
}

#[test]
fn tmpshm_dir_from_the_environment() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env("TMPSHM_DIR", d.path())
        .args(["create", "/env", "--size", "10"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.path().join(".SHMDenv").exists());
    let out = Command::new(BIN)
        .env("TMPSHM_DIR", d.path())
        .arg("doctor")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("(from $TMPSHM_DIR)"));
    let out = Command::new(BIN)
        .env("TMPSHM_DIR", "relative/dir")
        .arg("ls")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("tmpshm: env relative/dir: EINVAL"));
}

/// `TMPSHM_CROSS_USER=1` opts a program that cannot change its code into objects of other users,
/// as `ShmDir::with_cross_user` does (tests/security.rs,
/// object_of_another_user_is_refused_unless_cross_user, checks the library's side).
#[test]
fn cross_user_variable_opens_an_object_of_another_user() {
    if skip_unless_root("cross_user_variable_opens_an_object_of_another_user") {
        return;
    }
    let d = shared_tempdir();
    let p = d.path().join(".SHMDforeign");
    std::fs::write(&p, b"squatter's data").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    nix::unistd::chown(&p, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    // Without it, the owner check refuses the object.
    let out = cmd(d.path())
        .args(["demo-read", "/foreign"])
        .env_remove("TMPSHM_CROSS_USER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("owned by uid 65534"), "{err}");
    let out = cmd(d.path())
        .args(["demo-read", "/foreign"])
        .env("TMPSHM_CROSS_USER", "1")
        .output()
        .unwrap();
    // demo-read maps 4096 bytes; the squatted file is shorter, so it fails at the mapping,
    // past the owner check: the error is about the size, not the owner.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("owned by uid"), "{err}");
    assert!(err.contains("shorter than"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The demo: the illumos example for real, and no native shm_open inside.

#[test]
fn demo_round_trips_through_a_second_process() {
    let d = tempfile::tempdir().unwrap();
    let out = cmd(d.path()).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = d.path().join(".SHMDblah");
    assert!(
        stdout.contains(&format!("plain file: {}", data.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("rw-s"),
        "a shared file mapping is shown: {stdout}"
    );
    let wrote = stdout.lines().find(|l| l.starts_with("wrote ")).unwrap();
    let msg = wrote.trim_start_matches("wrote ");
    assert!(
        stdout.contains("second process (pid") && stdout.contains(&format!("read {msg}")),
        "{stdout}"
    );
    assert!(stdout.contains("exists: false"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        0,
        "unlinked, no lock file"
    );
}

#[test]
fn demo_reports_an_existing_name_as_one_clear_line() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(".SHMDtaken"), b"").unwrap();
    let out = cmd(d.path()).args(["demo", "/taken"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("tmpshm: ") && err.contains("EEXIST") && err.contains(".SHMDtaken"),
        "{err}"
    );
}

#[test]
fn the_binary_does_not_import_the_native_shm_open() {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only", BIN])
        .output()
        .expect("nm (binutils) is needed for this check");
    assert!(out.status.success());
    let mut syms = String::from_utf8_lossy(&out.stdout).into_owned();
    if syms.trim().is_empty() {
        // A statically linked binary (musl) imports nothing: then libc's shm_open must not
        // be linked in, which its own symbol table shows.
        println!("{BIN} is statically linked: checking the symbols linked into it");
        let out = Command::new("nm").arg(BIN).output().expect("nm");
        assert!(out.status.success());
        syms = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    assert!(syms.contains("open"), "nm listed the imports: {syms}");
    for bad in ["shm_open", "shm_unlink"] {
        assert!(
            !syms
                .split_whitespace()
                .any(|s| s.split('@').next() == Some(bad)),
            "the binary imports {bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile names.

/// Names another user can plant as files: a forged `ls` row, an OSC title, erase-line plus
/// carriage return, invalid UTF-8, a right-to-left override, a C1 CSI.
const HOSTILE: &[&[u8]] = &[
    b"/row\nforged   4096  0600  root      2026-01-01T00:00:00Z  .SHMDforged",
    b"/\x1b]0;pwned\x07",
    b"/\x1b[2K\rerased",
    b"/\xff\xfe",
    "/\u{202e}txt.exe".as_bytes(),
    "/c1\u{9b}31mred".as_bytes(),
];

/// The same names as tmpshm prints them.
const HOSTILE_SHOWN: &[&str] = &[
    "/row\\nforged   4096  0600  root      2026-01-01T00:00:00Z  .SHMDforged",
    "/\\x1b]0;pwned\\x07",
    "/\\x1b[2K\\rerased",
    "/\\xff\\xfe",
    "/\\u{202e}txt.exe",
    "/c1\\u{9b}31mred",
];

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn run_os(dir: &Path, args: &[&OsStr]) -> Output {
    cmd(dir).args(args).output().expect("spawn tmpshm")
}

/// `name` without its leading '/', after `prefix`: the file another user plants.
fn planted(dir: &Path, prefix: &str, name: &[u8]) -> PathBuf {
    let mut file = prefix.as_bytes().to_vec();
    file.extend_from_slice(&name[1..]);
    dir.join(os(&file))
}

/// Output a terminal can show without acting on it: valid UTF-8, no C0 control but the
/// newline, no DEL, no C1 control, no bidi control.
fn assert_inert(what: &str, bytes: &[u8]) {
    let s = std::str::from_utf8(bytes).unwrap_or_else(|e| {
        panic!(
            "{what}: invalid UTF-8 at byte {}: {:?}",
            e.valid_up_to(),
            String::from_utf8_lossy(bytes)
        )
    });
    for (i, c) in s.char_indices() {
        let bad = (c < ' ' && c != '\n')
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || matches!(
                c,
                '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        assert!(
            !bad,
            "{what}: {c:?} at byte {i} reaches the terminal: {s:?}"
        );
    }
}

fn assert_output_inert(what: &str, out: &Output) {
    assert_inert(&format!("{what} (stdout)"), &out.stdout);
    assert_inert(&format!("{what} (stderr)"), &out.stderr);
}

#[test]
fn hostile_names_reach_no_terminal_raw_and_json_names_round_trip_to_rm() {
    let d = tempfile::tempdir().unwrap();
    for name in HOSTILE {
        std::fs::write(planted(d.path(), ".SHMD", name), b"x").unwrap();
        std::fs::write(planted(d.path(), ".SHML", name), b"").unwrap();
    }
    std::fs::write(d.path().join(os(b".SHMT\x1b]0;pwned\x07")), b"").unwrap();
    ok(d.path(), &["create", "/keep", "--size", "1"]);

    let out = run(d.path(), &["ls"]);
    assert!(out.status.success(), "{out:?}");
    assert_output_inert("ls", &out);
    let text = String::from_utf8(out.stdout).unwrap();
    for shown in HOSTILE_SHOWN {
        assert!(text.contains(shown), "{shown} expected: {text}");
    }
    assert!(
        text.contains(".SHMT\\x1b]0;pwned\\x07: temporary file"),
        "{text}"
    );
    // Heading, column titles, 7 objects, 6 lock files, 1 temporary file: no forged row.
    assert_eq!(text.lines().count(), 16, "{text}");

    let out = run(d.path(), &["ls", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert_output_inert("ls --json", &out);
    let v = json(std::str::from_utf8(&out.stdout).unwrap());
    assert_eq!(v["schema"], 1, "{v}");
    let names: Vec<&str> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for shown in HOSTILE_SHOWN {
        assert!(names.contains(shown), "{shown} expected in {names:?}");
    }
    assert!(names.contains(&"/keep"), "{names:?}");
    for o in v["objects"].as_array().unwrap() {
        let path = o["path"].as_str().unwrap();
        let name = o["name"].as_str().unwrap();
        assert!(path.ends_with(&format!(".SHMD{}", &name[1..])), "{o}");
    }
    let lock_names: Vec<&str> = v["locks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(lock_names.len(), HOSTILE.len(), "{v}");

    for (name, shown) in HOSTILE.iter().zip(HOSTILE_SHOWN) {
        let out = run_os(d.path(), &[os(b"stat"), os(name)]);
        assert!(out.status.success(), "{out:?}");
        assert_output_inert("stat", &out);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&format!("name:     {shown}\n")), "{text}");
        assert!(text.contains(&format!(".SHMD{}", &shown[1..])), "{text}");

        let out = run_os(d.path(), &[os(b"stat"), os(name), os(b"--json")]);
        assert_output_inert("stat --json", &out);
        let s = json(std::str::from_utf8(&out.stdout).unwrap());
        assert_eq!(s["schema"], 1, "{s}");
        assert_eq!(s["name"], *shown, "{s}");
        assert_eq!(s["lock"]["name"], *shown, "{s}");

        let out = run_os(d.path(), &[os(b"--trace"), os(b"stat"), os(name)]);
        assert!(out.status.success(), "{out:?}");
        assert_output_inert("--trace stat", &out);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.lines().all(|l| l.starts_with("trace: ")), "{err}");
    }

    let out = run(d.path(), &["gc"]);
    assert!(out.status.success(), "{out:?}");
    assert_output_inert("gc", &out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(".SHML\\x1b]0;pwned\\x07\n"), "{text}");
    assert!(text.contains(".SHMT\\x1b]0;pwned\\x07\n"), "{text}");
    assert_eq!(text.lines().count(), HOSTILE.len() + 1, "{text}");

    // Error lines: the path of a missing object, escaped, bytes kept.
    let out = run_os(
        d.path(),
        &[os(b"rm"), os(b"/gone\x1b]0;pwned\x07"), os(b"/gone\xff")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_output_inert("rm (missing)", &out);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains(".SHMDgone\\x1b]0;pwned\\x07: ENOENT"), "{err}");
    assert!(err.contains(".SHMDgone\\xff: ENOENT"), "{err}");

    // `ls --json | jq -r '.objects[].name' | xargs -d '\n' tmpshm rm --escaped`, minus /keep.
    let v = json(&ok(d.path(), &["ls", "--json"]));
    let names: Vec<String> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .filter(|n| n != "/keep")
        .collect();
    assert_eq!(names.len(), HOSTILE.len());
    assert!(names.iter().all(|n| !n.contains('\n')), "{names:?}");
    let out = cmd(d.path())
        .arg("rm")
        .arg("--escaped")
        .args(&names)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_output_inert("rm --escaped", &out);
    let text = String::from_utf8(out.stdout).unwrap();
    for shown in HOSTILE_SHOWN {
        assert!(text.contains(&format!("removed {shown}\n")), "{text}");
    }
    assert_eq!(entries(d.path()), vec![".SHMDkeep".to_string()]);

    // A bad escape is refused before anything is touched.
    let out = run(d.path(), &["rm", "--escaped", "/keep\\q"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_output_inert("rm --escaped (bad)", &out);
    assert_eq!(entries(d.path()), vec![".SHMDkeep".to_string()]);
    ok(d.path(), &["rm", "--escaped", "/ke\\x65p"]);
    assert!(entries(d.path()).is_empty());
}

#[test]
fn every_command_escapes_names_and_the_directory() {
    let top = tempfile::tempdir().unwrap();
    let d = top.path().join(os(b"dir\x1b]0;pwned\x07\xff"));
    std::fs::create_dir(&d).unwrap();
    let shown_dir = format!("{}/dir\\x1b]0;pwned\\x07\\xff", top.path().display());
    let name = os(b"/new\x1b[31m\xc2\x9bred\n");
    let shown = "/new\\x1b[31m\\u{9b}red\\n";

    let out = run_os(
        &d,
        &[os(b"--trace"), os(b"create"), name, os(b"--size"), os(b"1")],
    );
    assert!(out.status.success(), "{out:?}");
    assert_output_inert("create", &out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("created {shown}: {shown_dir}/.SHMDnew")),
        "{text}"
    );

    let out = cmd(&d)
        .arg("write")
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = {
        let mut out = out;
        out.stdin.take().unwrap().write_all(b"abc").unwrap();
        out.wait_with_output().unwrap()
    };
    assert!(out.status.success(), "{out:?}");
    assert_output_inert("write", &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("to {shown} (grown to 3 bytes)")),
        "{out:?}"
    );

    let out = run_os(&d, &[os(b"cat"), os(b"/missing\x1b[2K")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_output_inert("cat (missing)", &out);

    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["gc"],
        &["doctor"],
        &["tour"],
    ] {
        let out = run(&d, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_output_inert(&format!("{args:?}"), &out);
        let text = String::from_utf8(out.stdout).unwrap();
        if args.contains(&"--json") {
            assert_eq!(json(&text)["dir"], shown_dir, "{text}");
        } else {
            assert!(text.contains(&shown_dir), "{args:?}: {text}");
        }
    }
    let out = run_os(&d, &[os(b"demo"), os("/d\u{202e}emo\x1b[2K".as_bytes())]);
    assert!(out.status.success(), "{out:?}");
    assert_output_inert("demo", &out);

    ok(&d, &["rm", "--escaped", shown]);
}

// ---------------------------------------------------------------------------------------------
// Who can rename or replace the directory.

fn protected_hardlinks() -> Option<String> {
    std::fs::read_to_string("/proc/sys/fs/protected_hardlinks")
        .ok()
        .map(|s| s.trim().to_string())
}

fn warnings(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.trim_start().starts_with("WARNING"))
        .collect()
}

/// Warnings about who can rename or replace the directory or the way to it.
fn path_warnings(out: &str) -> Vec<&str> {
    warnings(out)
        .into_iter()
        .filter(|l| l.contains("owned by uid") || l.contains("sticky bit") || l.contains("symlink"))
        .collect()
}

#[test]
fn doctor_accepts_a_private_directory_under_root_owned_ancestors() {
    let d = tempfile::tempdir().unwrap();
    let private = d.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = ok(&private, &["doctor"]);
    assert!(path_warnings(&out).is_empty(), "{out}");
    assert!(out.contains("(not world-writable)"), "{out}");
}

#[test]
fn doctor_warns_of_a_writable_parent_without_the_sticky_bit() {
    let d = tempfile::tempdir().unwrap();
    let open = d.path().join("open");
    let inner = open.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = ok(&inner, &["doctor"]);
    let w = path_warnings(&out);
    assert_eq!(w.len(), 1, "{out}");
    assert!(w[0].contains(&format!("{}: ", open.display())), "{out}");
    assert!(w[0].contains("without the sticky bit"), "{out}");
    assert!(w[0].contains("inner"), "{out}");
    assert!(
        out.contains(&format!("{} warning(s)", warnings(&out).len())),
        "{out}"
    );

    // Group-writable counts too; with the sticky bit it is fine.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = ok(&inner, &["doctor"]);
    assert_eq!(path_warnings(&out).len(), 1, "{out}");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = ok(&inner, &["doctor"]);
    assert!(path_warnings(&out).is_empty(), "{out}");
}

#[test]
fn doctor_warns_of_a_directory_owned_by_another_user() {
    if skip_unless_root("doctor_warns_of_a_directory_owned_by_another_user") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let foreign = d.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = ok(&foreign, &["doctor"]);
    let w = path_warnings(&out);
    assert_eq!(w.len(), 1, "{out}");
    assert!(w[0].contains(&format!("{}: ", foreign.display())), "{out}");
    assert!(w[0].contains("owned by uid 65534"), "{out}");
    assert!(w[0].contains("rename"), "{out}");
    // The sticky bit protects nothing from the directory's owner.
    assert!(!out.contains("others cannot remove your files"), "{out}");

    // Below it, a private directory of ours is no better: the owner can rename it away.
    let below = foreign.join("mine");
    std::fs::create_dir(&below).unwrap();
    std::fs::set_permissions(&below, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = ok(&below, &["doctor"]);
    let w = path_warnings(&out);
    assert_eq!(w.len(), 1, "{out}");
    assert!(w[0].contains(&format!("{}: ", foreign.display())), "{out}");
}

#[test]
fn doctor_warns_of_a_directory_reached_through_another_users_symlink() {
    if skip_unless_root("doctor_warns_of_a_directory_reached_through_another_users_symlink") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let rel = d.path().join("rel");
    let abs = d.path().join("abs");
    std::os::unix::fs::symlink("real", &rel).unwrap();
    std::os::unix::fs::symlink(&real, &abs).unwrap();
    // Our own links are fine, relative or absolute.
    for link in [&rel, &abs] {
        let out = ok(link, &["doctor"]);
        assert!(path_warnings(&out).is_empty(), "{out}");
    }
    for link in [&rel, &abs] {
        std::os::unix::fs::lchown(link, Some(NOBODY), Some(NOBODY)).unwrap();
        let out = ok(link, &["doctor"]);
        let w = path_warnings(&out);
        assert_eq!(w.len(), 1, "{out}");
        assert!(w[0].contains(&format!("{}: ", link.display())), "{out}");
        assert!(
            w[0].contains("reached through a symlink owned by uid 65534"),
            "{out}"
        );
    }
    // A loop is reported, not followed forever.
    let looped = d.path().join("loop");
    std::os::unix::fs::symlink("loop", &looped).unwrap();
    let out = run(&looped, &["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn doctor_warns_when_anyone_can_hard_link() {
    let Some(value) = protected_hardlinks() else {
        skip(
            "doctor_warns_when_anyone_can_hard_link",
            "no /proc/sys/fs/protected_hardlinks",
        );
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let out = ok(d.path(), &["doctor"]);
    assert!(
        out.contains(&format!("fs.protected_hardlinks = {value}")),
        "{out}"
    );
    let warned = warnings(&out).iter().any(|l| {
        l.contains("anyone can hard-link any file") && l.contains("protected_hardlinks=1")
    });
    assert_eq!(warned, value == "0", "protected_hardlinks = {value}: {out}");
    println!(
        "protected_hardlinks = {value}: the warning is {}",
        if warned { "shown" } else { "absent" }
    );
}

// ---------------------------------------------------------------------------------------------
// Names planted ahead of the tour.

/// The names the tour used, from its own output: the object and the plain file.
fn tour_names(out: &str) -> (String, String) {
    let after = |needle: &str| {
        let i = out
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}: {out}"));
        out[i..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .next()
            .unwrap()
            .to_string()
    };
    (after(".SHMDtour-"), after("tmpshm-tour-"))
}

#[test]
fn tour_names_are_unpredictable_and_planted_names_do_not_stop_it() {
    let d = tempfile::tempdir().unwrap();
    let last: Option<u32> = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let planted_pids = last.map(|l| l + 1..l + 2001);
    for pid in planted_pids.clone().into_iter().flatten() {
        let p = d.path();
        std::os::unix::fs::symlink("/nonexistent", p.join(format!(".SHMLtour-{pid}"))).unwrap();
        std::os::unix::fs::symlink("/nonexistent", p.join(format!(".SHMLtour-snag-{pid}")))
            .unwrap();
        std::fs::write(p.join(format!(".SHMDtour-{pid}")), b"").unwrap();
        std::fs::write(p.join(format!(".SHMDtour-snag-{pid}")), b"").unwrap();
        std::os::unix::fs::symlink("/nonexistent", p.join(format!("tmpshm-tour-{pid}.plain")))
            .unwrap();
    }
    let before = entries(d.path());

    let out = run(d.path(), &["tour"]);
    assert!(
        out.status.success(),
        "the tour failed in a directory with planted names: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8(out.stdout).unwrap();
    let pid: u32 = first
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid: {first}"));
    match &planted_pids {
        Some(r) if r.contains(&pid) => {
            println!("the tour ran as pid {pid}, among the planted ones")
        }
        _ => println!("the tour ran as pid {pid}, outside the planted range {planted_pids:?}"),
    }
    let (object, plain) = tour_names(&first);
    assert_ne!(object, format!(".SHMDtour-{pid}"), "{first}");
    assert!(!plain.contains(&pid.to_string()), "{plain}: {first}");

    let out = ok(d.path(), &["tour"]);
    let (object2, plain2) = tour_names(&out);
    assert_ne!(object, object2, "two tours used the same object name");
    assert_ne!(plain, plain2, "two tours used the same plain file name");
    assert_eq!(
        entries(d.path()),
        before,
        "the tour left files or removed planted ones"
    );
}

// ---------------------------------------------------------------------------------------------
// Bounded memory.

/// The peak resident set of a running process in KiB (`VmHWM`). Read while the process still
/// runs: after `exec` it counts that program only, where `wait4`'s `ru_maxrss` would also count
/// the test process that spawned it (a vfork child's `exec` records the parent's peak).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM: {status}"))
}

/// Exit 0, or the quiet death by SIGPIPE of a writer whose reader left.
fn exited_quietly(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.success() || status.signal() == Some(libc::SIGPIPE)
}

const RSS_LIMIT_KIB: u64 = 64 * 1024;

#[test]
fn cat_streams_a_large_object_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["create", "/big", "--size", "1G"]);
    let mut child = cmd(d.path())
        .args(["cat", "/big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [1u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut head).unwrap();
    // `head -c 16`: cat is blocked on the full pipe now; then the reader leaves.
    let rss = peak_rss_kib(child.id());
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    println!(
        "cat of 1 GiB into `head -c 16`: peak RSS {rss} KiB, {}",
        out.status
    );
    assert_eq!(head, [0u8; 16]);
    assert!(exited_quietly(out.status), "{}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
    assert!(rss < RSS_LIMIT_KIB, "cat peaked at {rss} KiB");
}

#[test]
fn cat_survives_an_object_that_shrinks_while_it_reads() {
    let d = tempfile::tempdir().unwrap();
    let size = 64usize << 20;
    ok(d.path(), &["create", "/shrinks", "--size", "64M"]);
    let file = d.path().join(".SHMDshrinks");
    std::fs::write(&file, vec![b'a'; size]).unwrap();
    let mut child = cmd(d.path())
        .args(["cat", "/shrinks"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0u8; 1 << 20];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    // This process is the other user of the object: it shrinks it under the reader.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "cat died of a signal ({}): {err}",
        out.status
    );
    assert!(
        out.status.success()
            || (out.status.code() == Some(1)
                && err.lines().count() == 1
                && err.starts_with("tmpshm: ")),
        "{}: {err}",
        out.status
    );
    let total = first.len() + rest.len();
    assert!(total < size, "{total} bytes: the shrink went unseen");
    assert!(first.iter().chain(&rest).all(|&b| b == b'a'));
}

#[test]
fn write_streams_stdin_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["create", "/w", "--size", "0"]);
    let len = 64usize << 20;
    // Not constant, so a misplaced chunk shows.
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect();
    let mut child = cmd(d.path())
        .args(["write", "/w", "--offset", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data).unwrap();
    // All of it is in write's hands now, and it still waits for the end of its input.
    let rss = peak_rss_kib(child.id());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    println!("write of 64 MiB from stdin: peak RSS {rss} KiB");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "wrote {len} bytes at offset 3 to /w (grown to {} bytes)\n",
            len + 3
        )
    );
    let stored = std::fs::read(d.path().join(".SHMDw")).unwrap();
    assert_eq!(stored.len(), len + 3);
    assert_eq!(&stored[..3], b"\0\0\0");
    assert!(stored[3..] == data[..], "the data did not round-trip");
    assert!(rss < RSS_LIMIT_KIB, "write peaked at {rss} KiB");
}

// ---------------------------------------------------------------------------------------------
// What the listing commands look at.

#[test]
fn cli_stat_probes_only_the_lock_file_of_that_name() {
    let d = tempfile::tempdir().unwrap();
    ShmOptions::new()
        .dir(ShmDir::new(d.path()))
        .size(8)
        .create("/one")
        .unwrap();
    for file in [".SHMLone", ".SHMLother", ".SHMT1.2"] {
        std::fs::write(d.path().join(file), b"").unwrap();
    }
    let out = run(d.path(), &["--trace", "stat", "/one"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(".SHMLone: stale"), "{stdout}");
    let probes: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("flock(LOCK_SH|LOCK_NB)"))
        .collect();
    assert_eq!(probes.len(), 1, "{stderr}");
    assert!(probes[0].ends_with(".SHMLone"), "{stderr}");
}

#[test]
fn completions_man_page_and_human_sizes() {
    let d = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(d.path(), &["completions", shell]);
        assert!(
            out.contains("create") && out.contains("exec"),
            "{shell}: {out}"
        );
    }
    let man = ok(d.path(), &["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH tmpshm"),
        "{man}"
    );
    assert!(man.contains("exec"), "{man}");
    ok(d.path(), &["create", "/big", "--size", "1536K"]);
    let ls = ok(d.path(), &["ls"]);
    assert!(ls.contains("1.5M"), "{ls}");
    // JSON keeps exact bytes, and a lock file that cannot be probed says why in its own field.
    let v = json(&ok(d.path(), &["ls", "--json"]));
    assert_eq!(v["objects"][0]["size"], 1536 * 1024);
    nix::unistd::mkfifo(&d.path().join(".SHMLbig"), perm(0o600)).unwrap();
    let v = json(&ok(d.path(), &["ls", "--json"]));
    assert_eq!(v["locks"][0]["state"], "unknown", "{v}");
    assert_eq!(v["locks"][0]["errno"], "EINVAL", "{v}");
}
