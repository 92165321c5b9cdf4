//! Prints the table of known divergences from the native `shm_open` as Markdown, or runs the
//! differential matrix against it.
//!
//! ```text
//! divergences                 print the table as Markdown (the README's copy)
//! divergences check [OPTIONS]  run the matrix; exit 1 on an unexplained divergence or a
//!                              stale entry
//! divergences dump [OPTIONS]   run the matrix and print every divergence in full
//!
//! OPTIONS: --as-user UID   drop from root to uid/gid UID first
//!          --table FILE    use FILE instead of the checked-in compat/divergences.txt
//! ```

use std::io::Write;
use std::process::ExitCode;

use tmpshm_compat::diff;
use tmpshm_compat::table::{Table, SOURCE};

fn drop_to(uid: u32) -> Result<(), String> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    setgid(Gid::from_raw(uid)).map_err(|e| format!("setgid({uid}): {e}"))?;
    setuid(Uid::from_raw(uid)).map_err(|e| format!("setuid({uid}): {e}"))?;
    Ok(())
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
        None => ("table", &[][..]),
        Some((c, rest)) => (c.as_str(), rest),
    };
    let mut source = SOURCE.to_string();
    let mut table_name = "compat/divergences.txt".to_string();
    while let [flag, value, more @ ..] = rest {
        match flag.as_str() {
            "--as-user" => {
                let uid = value
                    .parse::<u32>()
                    .map_err(|_| format!("--as-user wants a numeric uid, got {value:?}"))?;
                drop_to(uid)?;
            }
            "--table" => {
                source = std::fs::read_to_string(value).map_err(|e| format!("{value}: {e}"))?;
                table_name.clone_from(value);
            }
            _ => break,
        }
        rest = more;
    }
    if !rest.is_empty() {
        return Err(format!("unexpected arguments {rest:?}; see --help"));
    }
    let table = Table::parse(&source).map_err(|e| format!("{table_name}: {e}"))?;
    let mut out = String::new();
    let mut code = ExitCode::SUCCESS;
    match cmd {
        "table" => out = table.markdown(),
        "check" | "dump" => {
            let report = diff::run(&table)?;
            if cmd == "dump" {
                for d in &report.divergences {
                    out.push_str(&format!(
                        "{:<16} {:<24} {:<9} [{}]\n    native {} then {}\n    tmpshm {} then {}\n",
                        d.case.0,
                        d.case.1,
                        d.case.2,
                        d.explained_by.as_deref().unwrap_or("UNEXPLAINED"),
                        d.native.result,
                        d.native.after,
                        d.tmpshm.result,
                        d.tmpshm.after
                    ));
                }
            }
            out.push_str(&report.to_string());
            if !report.ok() {
                code = ExitCode::FAILURE;
            }
        }
        "--help" | "-h" | "help" => {
            out =
                "usage: divergences [table | check | dump] [--as-user UID] [--table FILE]\n".into()
        }
        other => return Err(format!("unknown command {other:?}; see --help")),
    }
    // A closed pipe (`| head`) is the reader's choice, not an error worth a panic.
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(code),
    }
}
