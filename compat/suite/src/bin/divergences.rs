//! Prints the tables of known divergences from the native `shm_open` as Markdown, or runs the
//! differential matrix against one.
//!
//! ```text
//! divergences [--preload | --sem]     print a table as Markdown (the copies in docs/divergences.md)
//! divergences check [OPTIONS]          run the matrix; exit 1 on an unexplained divergence or
//!                                      a stale entry
//! divergences dump [OPTIONS]           run the matrix and print every divergence in full
//!
//! --preload        the preload library's interposers (glibc names) and
//!                  compat/divergences-preload.txt, instead of tmpshm::ShmDir (illumos names)
//!                  and compat/divergences.txt
//! --sem            named semaphores and compat/divergences-sem.txt: tmpshm's C entry points
//!                  (illumos names); with --preload, the preload library's sem_open,
//!                  sem_close and sem_unlink (glibc names)
//! OPTIONS: --lib FILE      the preload library to load (default: $TMPSHM_PRELOAD_SO, else
//!                          libtmpshm_preload.so beside this program, where
//!                          `cargo build -p tmpshm-preload` of the same profile puts it)
//!          --as-user UID   drop from root to uid/gid UID before running
//!          --table FILE    use FILE instead of the checked-in table
//! ```

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tmpshm_compat::diff::{self, Subject};
use tmpshm_compat::matrix::Report;
use tmpshm_compat::preload::{self, Interposers};
use tmpshm_compat::sem::{self, SemFns, SemSubject};
use tmpshm_compat::table::{Table, PRELOAD, SHMDIR};

const USAGE: &str =
    "usage: divergences [check | dump] [--preload] [--sem] [--lib FILE] [--as-user UID] [--table FILE]\n";

fn drop_to(uid: u32) -> Result<(), String> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    setgid(Gid::from_raw(uid)).map_err(|e| format!("setgid({uid}): {e}"))?;
    setuid(Uid::from_raw(uid)).map_err(|e| format!("setuid({uid}): {e}"))?;
    Ok(())
}

/// `--lib`, else `$TMPSHM_PRELOAD_SO`, else the library beside this program.
fn preload_path(lib: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = lib.or_else(|| std::env::var_os("TMPSHM_PRELOAD_SO").map(PathBuf::from)) {
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let p = exe.with_file_name(preload::FILE_NAME);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "no {} beside {}: build it (cargo build -p tmpshm-preload, same profile) or pass --lib FILE",
            preload::FILE_NAME,
            exe.display()
        ))
    }
}

/// Drops to `as_user` if given, runs the matrix, and returns the report (after every divergence
/// in full for `dump`; `label_width` aligns the operation labels) and the exit code.
fn run_pass<O: Display>(
    run: impl FnOnce() -> Result<Report<O>, String>,
    as_user: Option<u32>,
    dump: bool,
    label_width: usize,
) -> Result<(String, ExitCode), String> {
    if let Some(uid) = as_user {
        drop_to(uid)?;
    }
    let report = run()?;
    let mut out = String::new();
    if dump {
        for d in &report.divergences {
            out.push_str(&format!(
                "{:<16} {:<label_width$} {:<9} [{}]\n    native {} then {}\n    {} {} then {}\n",
                d.case.0,
                d.case.1,
                d.case.2,
                d.explained_by.as_deref().unwrap_or("UNEXPLAINED"),
                d.native.result,
                d.native.after,
                report.subject,
                d.tmpshm.result,
                d.tmpshm.after
            ));
        }
    }
    out.push_str(&report.to_string());
    let code = if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    Ok((out, code))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("divergences: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, mut rest) = match args.split_first() {
        Some((c, rest)) if !c.starts_with('-') => (c.as_str(), rest),
        _ => ("table", &args[..]),
    };
    let (mut preload, mut lib, mut as_user, mut table_path) = (false, None, None, None);
    let mut sem = false;
    while let [flag, more @ ..] = rest {
        let mut value = || -> Result<&String, String> {
            let (v, after) = more
                .split_first()
                .ok_or_else(|| format!("{flag} wants a value"))?;
            rest = after;
            Ok(v)
        };
        match flag.as_str() {
            "--preload" => {
                preload = true;
                rest = more;
            }
            "--sem" => {
                sem = true;
                rest = more;
            }
            "--lib" => lib = Some(PathBuf::from(value()?)),
            "--as-user" => {
                let v = value()?;
                as_user = Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("--as-user wants a numeric uid, got {v:?}"))?,
                );
            }
            "--table" => table_path = Some(value()?.clone()),
            "--help" | "-h" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    let file = match (sem, preload) {
        (true, _) => sem::TABLE,
        (false, true) => PRELOAD,
        (false, false) => SHMDIR,
    };
    let table = match &table_path {
        Some(p) => {
            let src = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
            Table::parse(&src).map_err(|e| format!("{p}: {e}"))?
        }
        None => file.table()?,
    };
    let (out, code) = match cmd {
        "table" => (table.markdown(file.column), ExitCode::SUCCESS),
        // The subject is loaded before dropping privileges: the file need not be readable by
        // that user.
        "check" | "dump" if sem => {
            let subject = if preload {
                let path = preload_path(lib)?;
                SemSubject::Preload(SemFns::preload(&path)?, path)
            } else {
                SemSubject::Strict
            };
            run_pass(|| sem::run(&table, &subject), as_user, cmd == "dump", 36)?
        }
        "check" | "dump" => {
            let subject = if preload {
                Subject::Preload(Interposers::load(&preload_path(lib)?)?)
            } else {
                Subject::ShmDir
            };
            run_pass(|| diff::run(&table, &subject), as_user, cmd == "dump", 24)?
        }
        "help" => (USAGE.to_string(), ExitCode::SUCCESS),
        other => return Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    // A closed pipe (`| head`) is the reader's choice, not an error worth a panic.
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(code),
    }
}
