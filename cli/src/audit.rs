//! Who besides root and us can rename or replace a directory, or anything on the way to it.
//!
//! The library trusts the directory it is given: every check it makes on a file is worth
//! nothing if someone else can swap the directory under it. Three kinds of user can:
//! - the owner of any directory on the way: the owner of a directory may rename anything in
//!   it, sticky bit or not (the sticky bit restricts everyone else, never the owner);
//! - anyone who may write a directory on the way that lacks the sticky bit: they may rename
//!   any entry of it, so the next component can be replaced;
//! - the owner of a symlink on the way: in a sticky directory its owner may remove it and
//!   plant another pointing elsewhere.
//!
//! [`audit_dir`] walks the path from `/` one component at a time with `lstat`, resolving
//! symlinks itself (relative and absolute targets, `..` against the real parent), and reports
//! each of these it meets.

use std::ffi::OsString;
use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::fmt::{owner, show, show_path};

/// Symlinks followed before giving up, as the kernel's own limit (`MAXSYMLINKS`).
const MAX_LINKS: u32 = 40;

/// What was found at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concern {
    /// A directory owned by another user (neither root nor us).
    ForeignOwner {
        /// Its owner.
        uid: u32,
    },
    /// A symlink owned by another user.
    ForeignSymlink {
        /// Its owner.
        uid: u32,
    },
    /// A directory that group or others may write, without the sticky bit.
    OpenToOthers {
        /// Its permission bits.
        mode: u32,
    },
    /// More than [`MAX_LINKS`] symlinks on the way.
    TooManyLinks,
    /// Something on the way is neither a directory nor a symlink.
    NotADirectory,
    /// `lstat` or `readlink` failed.
    Unexaminable(String),
}

impl fmt::Display for Concern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Concern::ForeignOwner { uid } => {
                write!(f, "owned by uid {uid} ({})", show(owner(*uid).as_ref()))
            }
            Concern::ForeignSymlink { uid } => write!(
                f,
                "reached through a symlink owned by uid {uid} ({})",
                show(owner(*uid).as_ref())
            ),
            Concern::OpenToOthers { mode } => write!(
                f,
                "writable by {} (mode {mode:04o}) without the sticky bit",
                match (mode & 0o020 != 0, mode & 0o002 != 0) {
                    (true, true) => "group and others",
                    (true, false) => "its group",
                    _ => "others",
                }
            ),
            Concern::TooManyLinks => write!(f, "more than {MAX_LINKS} symbolic links on the way"),
            Concern::NotADirectory => f.write_str("not a directory"),
            Concern::Unexaminable(e) => write!(f, "cannot be examined ({e})"),
        }
    }
}

/// One finding: the path it concerns, what is wrong there, and what that lets others do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The directory or symlink.
    pub path: PathBuf,
    /// What is wrong with it.
    pub what: Concern,
    /// Why that matters, in a sentence.
    pub why: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", show_path(&self.path), self.what, self.why)
    }
}

/// The walk's state: the real directory reached so far and what `lstat` said of it.
struct Walk {
    me: u32,
    findings: Vec<Finding>,
}

impl Walk {
    fn trusted(&self, uid: u32) -> bool {
        uid == 0 || uid == self.me
    }

    fn find(&mut self, path: &Path, what: Concern, why: String) {
        let f = Finding {
            path: path.to_path_buf(),
            what,
            why,
        };
        // `..` and symlinks can lead through the same place twice.
        if !self.findings.contains(&f) {
            self.findings.push(f);
        }
    }

    fn lstat(&mut self, path: &Path) -> Option<Metadata> {
        match std::fs::symlink_metadata(path) {
            Ok(m) => Some(m),
            Err(e) => {
                self.find(
                    path,
                    Concern::Unexaminable(format!("lstat: {e}")),
                    "the rest of the path was not checked".into(),
                );
                None
            }
        }
    }

    fn check_dir(&mut self, path: &Path, meta: &Metadata, below: &str) {
        if !self.trusted(meta.uid()) {
            self.find(
                path,
                Concern::ForeignOwner { uid: meta.uid() },
                format!("its owner can rename or replace {below}, whatever the sticky bit says"),
            );
        }
    }
}

/// Components of `p` in the order to walk them, as a stack (the next one last).
fn stack_of(p: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    v.reverse();
    v
}

/// Checks that nobody but root and the caller (the effective uid) can rename or replace
/// `dir` or any directory or symlink on the way to it; returns what it found, in walk order.
///
/// A relative `dir` is taken from the current directory. An empty result means the
/// directory is as safe a home as the directory itself makes it.
pub fn audit_dir(dir: &Path) -> Vec<Finding> {
    let mut w = Walk {
        me: nix::unistd::geteuid().as_raw(),
        findings: Vec::new(),
    };
    let start = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(dir),
            Err(e) => {
                w.find(
                    dir,
                    Concern::Unexaminable(format!("getcwd: {e}")),
                    "the path was not checked".into(),
                );
                return w.findings;
            }
        }
    };
    let root = Path::new("/");
    let Some(root_meta) = w.lstat(root) else {
        return w.findings;
    };
    w.check_dir(root, &root_meta, "everything");
    // `cur` is always a real directory (no symlink in it), so its parent is its real parent.
    let (mut cur, mut cur_meta) = (root.to_path_buf(), root_meta);
    let mut todo = stack_of(&start);
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            let Some(m) = w.lstat(&cur) else {
                return w.findings;
            };
            cur_meta = m;
            continue;
        }
        let next = cur.join(&c);
        let Some(meta) = w.lstat(&next) else {
            return w.findings;
        };
        let mode = cur_meta.mode() & 0o7777;
        // With the sticky bit, only `next`'s owner (checked below) and `cur`'s owner (checked
        // on the way here) may rename it.
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            w.find(
                &cur,
                Concern::OpenToOthers { mode },
                format!("they can rename or replace {}", show(c.as_os_str())),
            );
        }
        if meta.file_type().is_symlink() {
            if !w.trusted(meta.uid()) {
                w.find(
                    &next,
                    Concern::ForeignSymlink { uid: meta.uid() },
                    "its owner can replace it with a link to somewhere else".into(),
                );
            }
            links += 1;
            if links > MAX_LINKS {
                w.find(
                    &next,
                    Concern::TooManyLinks,
                    "the rest of the path was not checked".into(),
                );
                return w.findings;
            }
            let target = match std::fs::read_link(&next) {
                Ok(t) => t,
                Err(e) => {
                    w.find(
                        &next,
                        Concern::Unexaminable(format!("readlink: {e}")),
                        "the rest of the path was not checked".into(),
                    );
                    return w.findings;
                }
            };
            if target.is_absolute() {
                cur = root.to_path_buf();
                let Some(m) = w.lstat(root) else {
                    return w.findings;
                };
                cur_meta = m;
            }
            todo.extend(stack_of(&target));
            continue;
        }
        if !meta.is_dir() {
            w.find(
                &next,
                Concern::NotADirectory,
                "no directory can be reached this way".into(),
            );
            return w.findings;
        }
        let below = if todo.is_empty() {
            "anything in it, the objects included".to_string()
        } else {
            "what is below it".to_string()
        };
        w.check_dir(&next, &meta, &below);
        (cur, cur_meta) = (next, meta);
    }
    // The directory itself: whoever may write it without the sticky bit may rename any object.
    let mode = cur_meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        w.find(
            &cur,
            Concern::OpenToOthers { mode },
            "they can rename or delete every object in it".into(),
        );
    }
    w.findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn mkdir(p: &Path, mode: u32) {
        std::fs::create_dir(p).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A private directory of ours, whose ancestors the test machine provides.
    fn base() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(audit_dir(d.path()), vec![], "the test's own temp dir");
        d
    }

    #[test]
    fn a_private_directory_is_fine() {
        let d = base();
        let p = d.path().join("p");
        mkdir(&p, 0o700);
        assert_eq!(audit_dir(&p), vec![]);
        // Sticky and world-writable is fine too: only its owner (us) and root may rename.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(audit_dir(&p), vec![]);
    }

    #[test]
    fn a_writable_directory_without_the_sticky_bit_is_reported() {
        let d = base();
        let open = d.path().join("open");
        mkdir(&open, 0o777);
        let f = audit_dir(&open);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].what, Concern::OpenToOthers { mode: 0o777 });
        assert!(f[0].why.contains("every object"), "{}", f[0]);
        let inner = open.join("inner");
        mkdir(&inner, 0o700);
        let f = audit_dir(&inner);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].path, open);
        assert!(
            f[0].to_string().contains("group and others (mode 0777)"),
            "{}",
            f[0]
        );
        assert!(f[0].why.ends_with("inner"), "{}", f[0]);
    }

    #[test]
    fn symlinks_are_resolved_relative_absolute_and_through_dotdot() {
        let d = base();
        let real = d.path().join("real");
        mkdir(&real, 0o700);
        let x = d.path().join("x");
        mkdir(&x, 0o700);
        symlink("../real", x.join("up")).unwrap();
        symlink(&real, d.path().join("abs")).unwrap();
        assert_eq!(audit_dir(&x.join("up")), vec![]);
        assert_eq!(audit_dir(&d.path().join("abs")), vec![]);
        // A link inside a directory others may write can be swapped; the target is fine.
        std::fs::set_permissions(&x, std::fs::Permissions::from_mode(0o777)).unwrap();
        let f = audit_dir(&x.join("up"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].path, x);
        // Relative to the current directory.
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            audit_dir(Path::new(".")).is_empty(),
            audit_dir(&cwd).is_empty()
        );
    }

    #[test]
    fn loops_and_files_stop_the_walk() {
        let d = base();
        symlink("b", d.path().join("a")).unwrap();
        symlink("a", d.path().join("b")).unwrap();
        let f = audit_dir(&d.path().join("a"));
        assert_eq!(f.last().unwrap().what, Concern::TooManyLinks, "{f:?}");
        std::fs::write(d.path().join("file"), b"").unwrap();
        let f = audit_dir(&d.path().join("file"));
        assert_eq!(f.last().unwrap().what, Concern::NotADirectory, "{f:?}");
        let f = audit_dir(&d.path().join("missing"));
        assert!(
            matches!(f.last().unwrap().what, Concern::Unexaminable(_)),
            "{f:?}"
        );
    }
}
