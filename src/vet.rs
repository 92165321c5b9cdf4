//! What tmpshm accepts in a shared directory: the checks of every file it finds in place.
//!
//! One policy for objects and lock files alike: a regular file, ours unless cross-user sharing
//! is on, with at most one link. On top of it, an object that a user other than its owner may
//! both read and write is refused without cross-user sharing (where `fs.protected_hardlinks=1`,
//! exactly those users can hard-link it under a name its owner never created, and keep an fd to
//! read what the owner writes there; where it is 0, anyone can link any file they can see, and
//! the rule cannot hold). A lock file that others may open is never waited on; that is the lock
//! layer's business.

use nix::errno::Errno;
use nix::sys::stat::FileStat;

use crate::call::Call;
use crate::error::{At, Fail, Op, Role, Why};

/// The common policy (see the module docs); `role` and `at` name the file in a refusal.
pub(crate) fn file(call: &Call<'_>, st: &FileStat, op: Op, role: Role, at: At) -> Result<(), Fail> {
    let fail = |errno, why| Err(Fail::new(errno, op, at).why(why));
    if !is_regular(st) {
        let found = found(st);
        return fail(Errno::EINVAL, Why::NotRegular { found, role });
    }
    if !call.cross_user && st.st_uid != call.euid().as_raw() {
        let (uid, euid) = (st.st_uid, call.euid().as_raw());
        return fail(Errno::EPERM, Why::Foreign { uid, euid, role });
    }
    // 0 links: unlinked since we opened it, which is an open followed by an unlink. Fine.
    if st.st_nlink > 1 {
        #[allow(clippy::useless_conversion)] // nlink_t differs between platforms
        let n = u64::from(st.st_nlink);
        return fail(Errno::EPERM, Why::Links { n, role });
    }
    Ok(())
}

/// The policy for an existing object: [`file`], and no group or other read+write pair without
/// cross-user sharing.
pub(crate) fn object(call: &Call<'_>, st: &FileStat, op: Op) -> Result<(), Fail> {
    file(call, st, op, Role::Object, At::Data)?;
    if !call.cross_user && others_can_link(st) {
        let mode = mode(st) & 0o7777;
        return Err(Fail::new(Errno::EPERM, op, At::Data).why(Why::OthersCanLink { mode }));
    }
    Ok(())
}

/// The policy for an existing lock file: [`file`].
pub(crate) fn lock(call: &Call<'_>, st: &FileStat) -> Result<(), Fail> {
    file(call, st, Op::Lock, Role::Lock, At::Lock)
}

/// Whether a user other than the owner has both read and write permission (through the group
/// or other bits), which is what `fs.protected_hardlinks=1` asks of a user who links a file
/// they do not own.
pub(crate) fn others_can_link(st: &FileStat) -> bool {
    let mode = mode(st);
    mode & 0o060 == 0o060 || mode & 0o006 == 0o006
}

/// Whether users other than the owner can open the file (any read or write bit for group or
/// other). Whoever can open a lock file can `flock` it, for as long as it likes.
pub(crate) fn open_to_others(st: &FileStat) -> bool {
    mode(st) & 0o066 != 0
}

/// `st_mode` as a `u32`, whatever width `mode_t` has here (16 bits on some systems).
#[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // mode_t differs
pub(crate) fn mode(st: &FileStat) -> u32 {
    st.st_mode as u32
}

/// The file type bits of `st` (`S_IFMT`).
#[allow(clippy::unnecessary_cast)] // mode_t differs
fn file_type(st: &FileStat) -> u32 {
    mode(st) & libc::S_IFMT as u32
}

/// Whether `st` is a regular file.
#[allow(clippy::unnecessary_cast)] // mode_t differs
pub(crate) fn is_regular(st: &FileStat) -> bool {
    file_type(st) == libc::S_IFREG as u32
}

/// Whether `st` is a directory.
#[allow(clippy::unnecessary_cast)] // mode_t differs
pub(crate) fn is_dir(st: &FileStat) -> bool {
    file_type(st) == libc::S_IFDIR as u32
}

/// Whether two `stat`s are of the same file.
pub(crate) fn same_file(a: &FileStat, b: &FileStat) -> bool {
    (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
}

/// What kind of file `st` is, for a refusal.
#[allow(clippy::unnecessary_cast)] // mode_t differs
fn found(st: &FileStat) -> &'static str {
    let t = file_type(st);
    let is = |k: libc::mode_t| t == k as u32;
    if is(libc::S_IFDIR) {
        "a directory"
    } else if is(libc::S_IFIFO) {
        "a FIFO"
    } else if is(libc::S_IFSOCK) {
        "a socket"
    } else if is(libc::S_IFCHR) {
        "a character device"
    } else if is(libc::S_IFBLK) {
        "a block device"
    } else if is(libc::S_IFLNK) {
        "a symbolic link"
    } else {
        "something"
    }
}
