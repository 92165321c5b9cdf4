//! The `tmpshm` command: named shared memory the illumos way, from the shell.

mod audit;
mod commands;
mod demo;
mod doctor;
mod exec;
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
    /// Print every step of every operation (name check, lock, open flags, fstat, unlock) to
    /// stderr, or append it to FILE; with `exec`, every shm_open, shm_unlink, sem_open,
    /// sem_close and sem_unlink of the program.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true
    )]
    trace: Option<Option<PathBuf>>,
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
        size: usize,
        /// Permission bits, octal, set exactly (no umask).
        #[arg(long, value_parser = fmt::parse_mode, default_value = "600")]
        mode: u32,
        /// Open NAME instead of failing when it exists (it must be at least --size bytes).
        #[arg(long)]
        exist_ok: bool,
    },
    /// List objects, semaphores, lock files (held or stale) and leftover temporary files.
    ///
    /// Names and paths are printed escaped: control characters as \n, \t, \r or \xNN, C1 and
    /// bidi controls as \u{NN}, bytes that are not UTF-8 as \xNN, a backslash as \\.
    #[command(after_long_help = LS_JSON_HELP)]
    Ls {
        /// Print JSON (see --help for the fields).
        #[arg(long)]
        json: bool,
    },
    /// Show one object: size, mode, owner, links, modification time, lock state.
    #[command(after_long_help = STAT_JSON_HELP)]
    Stat {
        /// The object name.
        #[arg(value_parser = clap::value_parser!(OsString))]
        name: OsString,
        /// NAME is a named semaphore (its value is shown too).
        #[arg(long)]
        sem: bool,
        /// Print JSON (see --help for the fields).
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
        offset: usize,
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
        /// The names are escaped as `ls` and `ls --json` print them (\n, \xNN, \u{NN}, \\):
        /// `tmpshm ls --json | jq -r '.objects[].name' | xargs -d '\n' tmpshm rm --escaped`.
        #[arg(long)]
        escaped: bool,
        /// The names are named semaphores (sem_unlink).
        #[arg(long)]
        sem: bool,
    },
    /// Remove lock and temporary files that no live process holds.
    Gc,
    /// The experiment: SysV shm, a tmpshm object, a plain file mmap and a named semaphore.
    Tour {
        /// Show every mapping of the process, not only the tour's own.
        #[arg(long)]
        all_maps: bool,
    },
    /// Check the directory: who can rename or replace it or the way to it, file system type,
    /// NAME_MAX, the kernel's link protections.
    Doctor,
    /// Run a program with its POSIX shared memory and named semaphores on tmpshm
    ///
    /// Through the preload library (found next to this executable, in its prefix's lib/, or
    /// at $TMPSHM_PRELOAD). The directory (--dir, else $TMPSHM_DIR, else /tmp) is created if
    /// missing (0700, or 1777 with --cross-user); LD_PRELOAD keeps what it had; the exit
    /// status and signals are the program's.
    Exec {
        /// Accept objects of other users (producer and consumer running as different users).
        #[arg(long)]
        cross_user: bool,
        /// Which names shm_open accepts: glibc's (leading slashes dropped: "x", "/x" and "//x"
        /// are one object; the default) or illumos's strict rule (one leading slash).
        #[arg(long, value_parser = ["glibc", "strict"])]
        names: Option<String>,
        /// The program and its arguments (after `--`).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PROGRAM",
            value_parser = clap::value_parser!(OsString)
        )]
        command: Vec<OsString>,
    },
    /// Create "/blah", size it, map it, write, read it back from a second process, show the
    /// file it lives in, unlink it.
    Demo {
        /// The object name.
        #[arg(default_value = "/blah")]
        name: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout: `tmpshm man | man -l -`.
    Man,
    /// (internal) Open NAME read-only, map it and print what it holds: the demo's second process.
    #[command(hide = true)]
    DemoRead {
        /// The object name.
        name: String,
    },
}

// The JSON fields, for `ls --help` and `stat --help`.
macro_rules! object_fields {
    () => {
        "  name           the object name, escaped as in the human output (\\n, \\xNN, \\u{NN}, \\\\);
                 no control characters, no newline; `rm --escaped` takes it back
  path           the data file, escaped the same way
  object         \"shm\" (shared memory) or \"sem\" (a named semaphore)
  kind           file, directory, symlink, fifo, socket or other (only a file can be opened)
  size           bytes
  value          a semaphore's value now (null if it cannot be read, value_errno says why;
                 absent for shm)
  mode           permission bits in octal, e.g. \"0600\"
  uid, gid       owner and group ids; owner: the user name, or the uid
  nlink          hard links (more than one: every open refuses it)
  modified       UTC, e.g. \"2026-11-27T00:30:01Z\"; modified_unix: seconds since the epoch"
    };
}

macro_rules! lock_fields {
    () => {
        "  kind           \"lock\", or \"temp\" (the temporary file of a sized create)
  object         \"shm\" or \"sem\": the kind of object it belongs to
  name           the object it locks, escaped (null for temp)
  path, uid, owner, size, modified   as for objects
  state          \"held\", \"stale\" or \"unknown\"; pid: the holder when known, else null;
                 errno: why the state is unknown (e.g. \"EACCES\"), else null; why: the
                 same in words"
    };
}

const LS_JSON_HELP: &str = concat!(
    "JSON (--json): {\"schema\": 1, \"dir\": DIR, \"objects\": [OBJECT...], \"locks\": [LOCK...]}
schema is 1 for this layout; fields may be added, never changed without a new number.
dir is escaped as names are.

OBJECT:
",
    object_fields!(),
    "

LOCK (lock files and temporary files):
",
    lock_fields!(),
    "

Remove every object listed:
  tmpshm ls --json | jq -r '.objects[].name' | xargs -d '\\n' tmpshm rm --escaped"
);

const STAT_JSON_HELP: &str = concat!(
    "JSON (--json): the OBJECT of `ls --json` plus \"schema\": 1 and \"lock\": its LOCK or null.

OBJECT:
",
    object_fields!(),
    "

LOCK:
",
    lock_fields!()
);

/// Any failure of a command: printed as one line, exit status 1.
pub type CliError = Box<dyn std::error::Error>;

/// A failure whose lines were already printed (one per failed file): print nothing more; exit
/// 2 if one of them was a usage error (a name the rules refuse), else 1.
#[derive(Debug)]
pub struct AlreadyReported {
    /// One of the failures was a usage error.
    pub usage: bool,
}

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed (see above)")
    }
}

impl std::error::Error for AlreadyReported {}

/// The directory the command line and environment choose, and where the choice came from.
fn shm_dir(
    cli_dir: Option<PathBuf>,
    trace: Option<Option<PathBuf>>,
) -> Result<(tmpshm::ShmDir, &'static str), CliError> {
    let env = tmpshm::ShmDir::from_env()?;
    let (mut shm, source) = match cli_dir {
        Some(d) => (
            tmpshm::ShmDir::new(d).with_cross_user(env.cross_user()),
            "--dir",
        ),
        // A set-user-ID run ignores TMPSHM_DIR: then the directory is the default.
        None if std::env::var_os(tmpshm::ENV_DIR).is_some_and(|v| v == env.dir().as_os_str()) => {
            (env, "$TMPSHM_DIR")
        }
        None => (env, "default"),
    };
    match trace {
        // A step names paths, and paths end in names anyone may choose: they are escaped.
        Some(None) => shm = shm.with_trace(|step| eprintln!("trace: {}", fmt::trace_line(step))),
        Some(Some(file)) => {
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .map_err(|e| fmt::os_err(format!("open {}", fmt::show_path(&file)), &e))?;
            let out = std::sync::Mutex::new(out);
            shm = shm.with_trace(move |step| {
                use std::io::Write;
                if let Ok(mut f) = out.lock() {
                    let _ = writeln!(f, "trace: {}", fmt::trace_line(step));
                }
            });
        }
        None => {}
    }
    Ok((shm, source))
}

/// Whether tmpshm refused the request itself, before touching anything (a name or flags).
pub fn is_usage(e: &tmpshm::Error) -> bool {
    matches!(e.op(), tmpshm::Op::Name | tmpshm::Op::Flags)
}

fn main() -> ExitCode {
    // Die quietly of SIGPIPE like other Unix tools (`tmpshm ls | head`), instead of Rust's
    // default of ignoring it and panicking in println!.
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid action.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Command::Exec {
        cross_user,
        names,
        command,
    } = cli.command
    {
        let dir = cli
            .dir
            .or_else(|| {
                std::env::var_os(tmpshm::ENV_DIR)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(tmpshm::DEFAULT_DIR));
        let e = exec::run(exec::Exec {
            dir,
            cross_user,
            names: names.map(|n| if n == "strict" { "strict" } else { "glibc" }),
            trace: cli.trace,
            command,
        })
        .expect_err("exec returns only when it failed");
        eprintln!("tmpshm exec: {}", fmt::error_line(&*e));
        // As a shell says of a program it cannot run.
        return ExitCode::from(127);
    }
    let result = shm_dir(cli.dir, cli.trace).and_then(|(shm, source)| match cli.command {
        Command::Create {
            name,
            size,
            mode,
            exist_ok,
        } => commands::create(&shm, &name, size, mode, exist_ok),
        Command::Ls { json } => commands::ls(&shm, json),
        Command::Stat { name, sem, json } => commands::stat(&shm, &name, sem, json),
        Command::Write { name, offset } => commands::write(&shm, &name, offset),
        Command::Cat { name } => commands::cat(&shm, &name),
        Command::Rm {
            names,
            escaped,
            sem,
        } => commands::rm(&shm, &names, escaped, sem),
        Command::Gc => commands::gc(&shm),
        Command::Tour { all_maps } => tour::run(&shm, all_maps),
        Command::Doctor => doctor::run(&shm, source),
        Command::Demo { name } => demo::run(&shm, &name),
        Command::DemoRead { name } => demo::read(&shm, &name),
        Command::Exec { .. } => unreachable!("handled above"),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "tmpshm", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| fmt::os_err("writing the manual page", &e).into())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.is::<AlreadyReported>() {
                eprintln!("tmpshm: {}", fmt::error_line(&*e));
            }
            // A name or flag the rules refuse is a usage error, as clap's own are: 2.
            let usage = e.downcast_ref::<tmpshm::Error>().is_some_and(is_usage)
                || e.downcast_ref::<AlreadyReported>().is_some_and(|r| r.usage);
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
