//! The `tmpshm` command: named shared memory the illumos way, from the shell.

mod commands;
mod demo;
mod doctor;
mod fmt;
// SysV shm only where the platform has it; elsewhere (Android) the tour says so.
#[cfg_attr(
    not(all(
        any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "macos",
            target_os = "illumos",
            target_os = "solaris"
        ),
        not(target_os = "android")
    )),
    path = "nosysv.rs"
)]
mod sysv;
mod tour;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Named POSIX shared memory as plain files, the illumos way.
#[derive(Parser)]
#[command(name = "tmpshm", version, about)]
struct Cli {
    /// Directory of the objects (default: $TMPSHM_DIR, else /tmp).
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print every step of every operation to stderr (name check, lock, open flags, fstat, unlock).
    #[arg(long, global = true)]
    trace: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create NAME already at its size (no opener ever sees it smaller).
    Create {
        /// The object name, e.g. /blah.
        #[arg(value_parser = clap::value_parser!(OsString))]
        name: OsString,
        /// Size in bytes; K, M, G suffixes are powers of 1024.
        #[arg(long, value_parser = fmt::parse_size)]
        size: u64,
        /// Permission bits, octal, set exactly (no umask).
        #[arg(long, value_parser = fmt::parse_mode, default_value = "600")]
        mode: u32,
        /// Open NAME instead of failing when it exists (it must be at least --size bytes).
        #[arg(long)]
        exist_ok: bool,
    },
    /// List objects, lock files (held or stale) and leftover temporary files.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one object: size, mode, owner, links, modification time, lock state.
    Stat {
        /// The object name.
        #[arg(value_parser = clap::value_parser!(OsString))]
        name: OsString,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy stdin into NAME at --offset, growing the object as needed.
    Write {
        /// The object name (it must exist).
        #[arg(value_parser = clap::value_parser!(OsString))]
        name: OsString,
        /// Where to start writing; K, M, G suffixes allowed.
        #[arg(long, value_parser = fmt::parse_size, default_value = "0")]
        offset: u64,
    },
    /// Copy NAME's contents to stdout.
    Cat {
        /// The object name.
        #[arg(value_parser = clap::value_parser!(OsString))]
        name: OsString,
    },
    /// Unlink objects (shm_unlink); the memory lives on while someone has it open.
    Rm {
        /// The object names.
        #[arg(required = true, value_parser = clap::value_parser!(OsString))]
        names: Vec<OsString>,
    },
    /// Remove lock and temporary files that no live process holds.
    Gc,
    /// The experiment: SysV shm, a tmpshm object and a plain file mmap side by side.
    Tour {
        /// Show every mapping of the process, not only the tour's own.
        #[arg(long)]
        all_maps: bool,
    },
    /// Check the directory: file system type, NAME_MAX, the kernel's link protections.
    Doctor,
    /// Create "/blah", size it, map it, write, read it back from a second process, show the
    /// file it lives in, unlink it.
    Demo {
        /// The object name.
        #[arg(default_value = "/blah")]
        name: String,
    },
    /// (internal) Open NAME read-only, map it and print what it holds: the demo's second process.
    #[command(hide = true)]
    DemoRead {
        /// The object name.
        name: String,
    },
}

/// Any failure of a command: printed as one line, exit status 1.
pub type CliError = Box<dyn std::error::Error>;

/// A failure whose lines were already printed (one per failed file): exit 1, print nothing more.
#[derive(Debug)]
pub struct AlreadyReported;

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed (see above)")
    }
}

impl std::error::Error for AlreadyReported {}

/// The directory the command line and environment choose, and where the choice came from.
fn shm_dir(
    cli_dir: Option<PathBuf>,
    trace: bool,
) -> Result<(tmpshm::ShmDir, &'static str), tmpshm::Error> {
    let env = tmpshm::ShmDir::from_env()?;
    let (mut shm, source) = match cli_dir {
        Some(d) => (
            tmpshm::ShmDir::new(d).cross_user(env.is_cross_user()),
            "--dir",
        ),
        None if std::env::var_os(tmpshm::ENV_DIR).is_some_and(|v| !v.is_empty()) => {
            (env, "$TMPSHM_DIR")
        }
        None => (env, "default"),
    };
    if trace {
        shm = shm.trace(|step| eprintln!("trace: {step}"));
    }
    Ok((shm, source))
}

fn main() -> ExitCode {
    // Die quietly of SIGPIPE like other Unix tools (`tmpshm ls | head`), instead of Rust's
    // default of ignoring it and panicking in println!.
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid action.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let result = shm_dir(cli.dir, cli.trace)
        .map_err(CliError::from)
        .and_then(|(shm, source)| match cli.command {
            Command::Create {
                name,
                size,
                mode,
                exist_ok,
            } => commands::create(&shm, &name, size, mode, exist_ok),
            Command::Ls { json } => commands::ls(&shm, json),
            Command::Stat { name, json } => commands::stat(&shm, &name, json),
            Command::Write { name, offset } => commands::write(&shm, &name, offset),
            Command::Cat { name } => commands::cat(&shm, &name),
            Command::Rm { names } => commands::rm(&shm, &names),
            Command::Gc => commands::gc(&shm),
            Command::Tour { all_maps } => tour::run(&shm, all_maps),
            Command::Doctor => doctor::run(&shm, source),
            Command::Demo { name } => demo::run(&shm, &name),
            Command::DemoRead { name } => demo::read(&shm, &name),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.is::<AlreadyReported>() {
                eprintln!("tmpshm: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
