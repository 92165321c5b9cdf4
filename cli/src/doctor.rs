//! `tmpshm doctor`: is this directory a good home for shared memory?

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tmpshm::{LockState, ShmDir};

use crate::audit;
use crate::fmt::{os_err, owner, show, show_path, Shown};
use crate::CliError;

/// File systems whose pages live only in memory.
const MEMORY_BACKED: &[(u64, &str)] = &[
    (0x0102_1994, "tmpfs"),
    (0x8584_58f6, "ramfs"),
    (0x9584_58f6, "hugetlbfs"),
];

const ON_DISK: &[(u64, &str)] = &[
    (0xef53, "ext2/ext3/ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683e, "btrfs"),
    (0x2fc1_2fc1, "zfs"),
    (0xf2f5_2010, "f2fs"),
    (0x794c_7630, "overlayfs"),
    (0x6969, "nfs"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
    (0x4d44, "vfat"),
];

#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(clippy::unnecessary_cast)] // f_type's type differs between libcs
fn fs_magic(dir: &std::path::Path) -> Result<u64, String> {
    let st =
        nix::sys::statfs::statfs(dir).map_err(|e| format!("statfs {}: {e}", show_path(dir)))?;
    Ok(st.filesystem_type().0 as u64 & 0xffff_ffff)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn fs_magic(_dir: &std::path::Path) -> Result<u64, String> {
    Err("the file system type is only known on Linux".into())
}

fn sysctl(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/sys/fs/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn meaning(name: &str, v: u32) -> &'static str {
    match (name, v) {
        ("protected_symlinks", 0) => {
            "symlinks in sticky world-writable dirs are followed for anyone: a planted link can redirect other programs' opens; tmpshm never follows one (O_NOFOLLOW)"
        }
        ("protected_symlinks", _) => {
            "symlinks in sticky world-writable dirs are followed only by their owner or the dir's owner"
        }
        ("protected_hardlinks", 0) => {
            "anyone may hard-link any file they can see, yours included, under any name in the directory"
        }
        ("protected_hardlinks", _) => {
            "users may hard-link only files they own or can read and write; tmpshm refuses objects with more than one link, and objects other users could read and write"
        }
        ("protected_regular", 0) => {
            "O_CREAT may open another user's existing file in a sticky dir (squatting); tmpshm creates with O_EXCL and checks the owner with fstat"
        }
        ("protected_regular", _) => {
            "the kernel refuses O_CREAT on another user's file in a sticky dir (EACCES): squatting fails early"
        }
        ("protected_fifos", 0) => {
            "O_CREAT may open a planted FIFO; tmpshm opens without blocking and refuses anything but a regular file"
        }
        ("protected_fifos", _) => "the kernel refuses O_CREAT on another user's FIFO in a sticky dir",
        _ => "",
    }
}

/// What `flock(2)` does in a directory.
enum FlockCheck {
    /// `LOCK_EX` was taken and released.
    Works,
    /// `flock` failed with this errno.
    Fails(Errno),
    /// No file could be created to try it on.
    Untested(Errno),
}

/// Removes the probe file however the check ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Tries `flock(2)` in `dir` as the creation lock uses it: a new file there, made with an
/// unpredictable name and `O_EXCL` (`mkstemp`), locked `LOCK_EX|LOCK_NB`, unlocked, and
/// removed (also when anything fails).
fn flock_check(dir: &Path) -> FlockCheck {
    let template = dir.join(".tmpshm-doctor-XXXXXX");
    let (fd, path) = match nix::unistd::mkstemp(&template) {
        Ok(made) => made,
        Err(e) => return FlockCheck::Untested(e),
    };
    let _remove = RemoveOnDrop(path);
    match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => {
            // Unlocked here, or by the close if unlocking fails.
            let _ = locked.unlock();
            FlockCheck::Works
        }
        Err((_, e)) => FlockCheck::Fails(e),
    }
}

/// What kind of file system a directory is on.
pub struct FileSystem {
    /// A name for people ("tmpfs", "ext2/ext3/ext4", "unknown").
    pub name: &'static str,
    /// `statfs`'s `f_type`.
    pub magic: u64,
    /// Whether its pages live only in memory.
    pub in_memory: bool,
}

/// The advice when a directory is not memory-backed.
pub const NOT_IN_MEMORY: &str = "every dirty page of an object is written back to disk; use a tmpfs (e.g. --dir /dev/shm, or TMPSHM_DIR on a tmpfs mount)";

/// The file system `dir` is on.
pub fn file_system(dir: &std::path::Path) -> Result<FileSystem, String> {
    let magic = fs_magic(dir)?;
    if let Some((_, name)) = MEMORY_BACKED.iter().find(|(m, _)| *m == magic) {
        return Ok(FileSystem {
            name,
            magic,
            in_memory: true,
        });
    }
    let name = ON_DISK
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or("unknown", |(_, n)| n);
    Ok(FileSystem {
        name,
        magic,
        in_memory: false,
    })
}

pub fn run(shm: &ShmDir, source: &str) -> Result<(), CliError> {
    let dir = shm.dir();
    let mut warnings = 0;
    let meta =
        std::fs::metadata(dir).map_err(|e| os_err(format!("stat {}", show_path(dir)), &e))?;
    if !meta.is_dir() {
        return Err(Shown(format!("{} is not a directory", show_path(dir))).into());
    }
    let mode = meta.mode() & 0o7777;
    println!("directory:    {} (from {source})", show_path(dir));
    let sticky = mode & 0o1000 != 0;
    let world = mode & 0o002 != 0;
    let ours = meta.uid() == 0 || meta.uid() == nix::unistd::geteuid().as_raw();
    let who = show(owner(meta.uid()).as_ref()).to_string();
    println!(
        "              owner {who}, mode {mode:04o}{}",
        match (world, sticky, ours) {
            (true, true, true) =>
                " (world-writable, sticky: others cannot remove your files)".to_string(),
            // The sticky bit binds everyone but the directory's owner.
            (true, true, false) => {
                format!(" (world-writable, sticky, but its owner {who} can rename or remove your files)")
            }
            (true, false, _) => " (world-writable, NOT sticky)".to_string(),
            (false, _, _) => " (not world-writable)".to_string(),
        }
    );
    let findings = audit::audit_dir(dir);
    if findings.is_empty() {
        println!("path:         / down to it owned by root or you, none writable by others without the sticky bit");
    } else {
        println!("path:         others can rename or replace it or the way to it");
    }
    for f in &findings {
        warnings += 1;
        println!("  WARNING: {f}");
    }
    if !findings.is_empty() {
        println!("  (use a directory that only you or root own and can write, e.g. under $XDG_RUNTIME_DIR)");
    }

    match file_system(dir) {
        Ok(FileSystem {
            name,
            magic,
            in_memory: true,
        }) => println!("file system:  {name} ({magic:#x}): memory-backed, good"),
        Ok(FileSystem { name, magic, .. }) => {
            warnings += 1;
            println!("file system:  {name} ({magic:#x}): NOT memory-backed");
            println!("  WARNING: {NOT_IN_MEMORY}");
        }
        Err(e) => println!("file system:  {e}"),
    }

    match flock_check(dir) {
        FlockCheck::Works => {
            println!("flock:        works (LOCK_EX taken and released on a new file here)");
        }
        FlockCheck::Fails(e) => {
            warnings += 1;
            println!("flock:        FAILS here: {e:?} ({})", e.desc());
            println!(
                "  WARNING: flock(2) fails with {e:?} in this directory, and the creation lock needs it: \
                 creating an object or a semaphore here fails at once with ENOSYS; opening and \
                 unlinking existing ones still work, and ls and gc cannot tell held lock files \
                 from stale ones. Use a directory on a local file system, such as a tmpfs \
                 (/dev/shm) or an app's own directory"
            );
        }
        FlockCheck::Untested(e) => {
            warnings += 1;
            println!(
                "flock:        not tested: no file can be created here ({e:?}: {})",
                e.desc()
            );
            println!("  WARNING: creating objects fails here too; use a directory you can write");
        }
    }

    match nix::unistd::pathconf(dir, nix::unistd::PathconfVar::NAME_MAX) {
        Ok(Some(max)) => {
            #[allow(clippy::useless_conversion)] // c_long is i32 on 32-bit systems
            let max = i64::from(max);
            let prefix = tmpshm::ObjectKind::Shm.data_prefix(shm.layout()).len() as i64;
            println!(
                "NAME_MAX:     {max}: names up to {} bytes after the '/' ({:?} takes {prefix})",
                max - prefix,
                tmpshm::ObjectKind::Shm.data_prefix(shm.layout())
            );
        }
        Ok(None) => println!("NAME_MAX:     no limit"),
        Err(e) => println!("NAME_MAX:     pathconf failed: {e}"),
    }

    for name in [
        "protected_symlinks",
        "protected_hardlinks",
        "protected_regular",
        "protected_fifos",
    ] {
        let value = sysctl(name);
        match value {
            Some(v) => println!("fs.{name} = {v}: {}", meaning(name, v)),
            None => println!("fs.{name}: not available here"),
        }
        // With protected_hardlinks=1 only users who may read and write a file can link it under
        // another name, and tmpshm refuses objects that others may read and write; with 0
        // anyone may link any file, and that refusal proves nothing.
        if name == "protected_hardlinks" && value == Some(0) {
            warnings += 1;
            println!("  WARNING: anyone can hard-link any file they can see into this directory; tmpshm's refusal of objects other users could have linked to a name holds only with protected_hardlinks=1");
        }
    }

    let inv = shm.list()?;
    let count = |f: fn(&LockState) -> bool| inv.locks.iter().filter(|l| f(&l.state)).count();
    let stale = count(|s| *s == LockState::Stale);
    let unknown = count(|s| matches!(s, LockState::Unknown(_)));
    println!(
        "contents:     objects {}, lock/temporary files {} ({stale} stale{})",
        inv.objects.len(),
        inv.locks.len(),
        if unknown > 0 {
            format!(", {unknown} not probed: see `tmpshm ls`")
        } else {
            String::new()
        }
    );
    if stale > 0 {
        warnings += 1;
        println!("  WARNING: stale files left by crashed processes; `tmpshm gc` removes them");
    }
    println!(
        "{}",
        if warnings == 0 {
            "no problems found".to_string()
        } else {
            format!("{warnings} warning(s)")
        }
    );
    Ok(())
}
