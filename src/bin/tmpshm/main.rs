//! The `tmpshm` command: named shared memory the illumos way, from the shell.

mod demo;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn shm_dir(cli_dir: Option<PathBuf>) -> Result<tmpshm::ShmDir, tmpshm::Error> {
    let env = tmpshm::ShmDir::from_env()?;
    Ok(match cli_dir {
        Some(d) => tmpshm::ShmDir::new(d).cross_user(env.is_cross_user()),
        None => env,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = shm_dir(cli.dir)
        .map_err(CliError::from)
        .and_then(|shm| match cli.command {
            Command::Demo { name } => demo::run(&shm, &name),
            Command::DemoRead { name } => demo::read(&shm, &name),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tmpshm: {e}");
            ExitCode::FAILURE
        }
    }
}
