//! Atomic publish: an object appears under its name complete (full size, final mode, its
//! contents written), or not at all.
//!
//! With plain `shm_open(O_CREAT)` + `ftruncate`, an object exists at size 0 for a moment, and
//! an opener that maps it then dies of `SIGBUS`. [`publish`] never lets that be seen. Under the
//! creation lock it:
//! 1. creates a temporary file `<dir>/.SHMT<pid>.<n>` (`<n>` unpredictable) with
//!    `O_CREAT|O_EXCL|O_NOFOLLOW`, mode `0600`, and takes `flock(LOCK_EX)` on it (so `gc` can
//!    tell a live creator's file from a crashed one's);
//! 2. reserves its blocks with `fallocate`, which also sets the size (`ENOSPC` now, never
//!    `SIGBUS` at a later write; `ftruncate` where the file system cannot reserve), writes its
//!    contents (a semaphore's `sem_t`), and `fchmod`s it to exactly the mode asked for;
//! 3. renames it to the data path with `renameat2(RENAME_NOREPLACE)` (`EEXIST` if anything is
//!    there: the kernel decides, atomically, and the file never has a second link);
//! 4. drops the `flock`.
//!
//! The data path therefore names either nothing or a finished file with one link. A creator
//! killed before step 3 leaves only a temporary file, which [`ShmDir::list`](crate::ShmDir::list)
//! shows and [`ShmDir::gc`](crate::ShmDir::gc) removes; one killed after it leaves a finished
//! object.
//!
//! Where `renameat2` is missing (a kernel before 3.15, a system other than Linux or Android)
//! or the file system refuses `RENAME_NOREPLACE` (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`), step 3 is
//! `link(temp, data)` followed by `unlink(temp)`. Only then is there a window in which the
//! object has two links: concurrent openers get `EPERM` for that instant, and a creator killed
//! inside it leaves the object with two links, refused by every open until `gc` removes the
//! temporary name.
//!
//! The temporary file is `0600` whatever the object's mode until just before the rename: a
//! file others could open, they could also `flock`, and so freeze this create (and the name's
//! lock with it). Its name has an unpredictable part, so no one can squat the next names.
//!
//! Why not `O_TMPFILE` + `linkat`: an unprivileged `linkat` of such a file needs `/proc` mounted
//! (`/proc/self/fd/N` with `AT_SYMLINK_FOLLOW`), and not every file system supports it; a named
//! temporary file works on any Unix file system, Android's app directories included.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, Mode};

use crate::call::Call;
use crate::error::{At, Fail, Op, Role, Why};
use crate::lock;
use crate::name::Target;
use crate::object;
use crate::sys::{Locked, StackPath};
use crate::vet;

/// Publishes a new object at `target`: see the module docs. `fill` writes its contents into
/// the (reserved, `size`-byte) temporary file before it gets its name. `EEXIST` if anything is
/// at the data path.
pub(crate) fn publish(
    call: &Call<'_>,
    target: &Target<'_>,
    size: u64,
    mode: Mode,
    fill: impl FnOnce(BorrowedFd<'_>) -> Result<(), Fail>,
) -> Result<OwnedFd, Fail> {
    let mut data = StackPath::new();
    let data = target.data_in(&mut data)?;
    let mut lock_path = StackPath::new();
    let _guard = match target.lock_in(&mut lock_path)? {
        Some(path) => Some(lock::acquire(call, path)?),
        None => None,
    };
    let mut temp_path = StackPath::new();
    let temp = make_temp(call, target, &mut temp_path)?;
    // Any error from here on drops `temp`, which unlinks the temporary name.
    object::grow(call, temp.fd(), temp.path(), temp.at, 0, size)?;
    fill(temp.fd().as_fd())?;
    call.fchmod(temp.fd().as_fd(), temp.path(), mode)
        .map_err(|e| Fail::new(e, Op::Open, temp.at))?;
    match place(call, temp.path(), data)? {
        // The fd already names the data file (in /proc/self/fd and /proc/self/maps).
        Placed::Renamed => temp.into_fd(),
        Placed::Linked => {
            // Unlinked while we still hold its flock, so that gc never removes a name in use.
            call.unlink(Role::Temp, temp.path())
                .map_err(|e| Fail::new(e, Op::Unlink, temp.at))?;
            let fd = temp.into_fd()?;
            Ok(reopen_by_name(call, fd, data))
        }
    }
}

/// A flocked temporary file. Dropped while it still has its name (an error on the way), it
/// unlinks the name while holding the `flock` (so `gc` never removes a name in use), then
/// unlocks.
struct Temp<'c, 'p> {
    /// Built in the caller's buffer (a `StackPath` moved around is a 4 KiB copy).
    path: &'p CStr,
    at: At,
    file: Option<Locked>,
    call: &'c Call<'c>,
}

impl Temp<'_, '_> {
    fn path(&self) -> &CStr {
        self.path
    }

    fn fd(&self) -> &OwnedFd {
        // Present until `into_fd`, which consumes the value.
        match &self.file {
            Some(l) => l.fd(),
            None => unreachable!("a Temp always holds its file until into_fd"),
        }
    }

    /// The name is gone (renamed or unlinked): unlock, and hand over the fd.
    fn into_fd(mut self) -> Result<OwnedFd, Fail> {
        let locked = self.file.take();
        let at = self.at;
        locked
            .map_or(Err(Errno::EBADF), Locked::unlock)
            .map_err(|e| Fail::new(e, Op::Lock, at))
    }
}

impl Drop for Temp<'_, '_> {
    fn drop(&mut self) {
        if let Some(locked) = self.file.take() {
            let _ = self.call.unlink(Role::Temp, self.path);
            drop(locked);
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A number no other user can guess, so no one can squat the next temporary names: the
/// sequence number hashed with std's per-process random keys (no allocation).
fn unpredictable(seq: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(seq);
    h.finish()
}

/// A fresh, flocked temporary file next to the objects, its path built in `buf`.
fn make_temp<'c, 'p>(
    call: &'c Call<'c>,
    target: &Target<'_>,
    buf: &'p mut StackPath,
) -> Result<Temp<'c, 'p>, Fail> {
    let pid = std::process::id();
    let flags = OFlag::O_RDWR
        | OFlag::O_CREAT
        | OFlag::O_EXCL
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    let mut made = None;
    for _ in 0..1000 {
        let n = unpredictable(SEQ.fetch_add(1, Ordering::Relaxed));
        let path = target.temp_in(buf, pid, n)?;
        let at = At::Temp(n);
        let fd = match call.open(Role::Temp, path, flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => fd,
            // Taken (by a crashed earlier process with our pid, or by chance): the next name.
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(Fail::new(e, Op::Open, at)),
        };
        // Until we hold the flock, a gc may take this fresh file for a crashed creator's: it
        // then holds the flock for an instant (we wait) and may unlink it (we start again).
        let locked = match call.lock(Role::Temp, path, fd, true) {
            Ok(l) => l,
            Err((_, e)) => {
                let _ = call.unlink(Role::Temp, path);
                return Err(lock::flock_error(e, at));
            }
        };
        match fstat(locked.as_fd()) {
            // Collected: the name is gone, or a new file of someone else is there. Unlinking
            // it would remove that: only let the lock go.
            Ok(st) if st.st_nlink == 0 => continue,
            Ok(_) => {
                made = Some((locked, at));
                break;
            }
            Err(e) => {
                // Ours and still named (or so we must assume): leave nothing behind.
                let _ = call.unlink(Role::Temp, path);
                return Err(Fail::new(e, Op::Lock, at));
            }
        }
    }
    let Some((locked, at)) = made else {
        return Err(Fail::new(Errno::EEXIST, Op::Open, At::Dir).why(Why::TempNamesTaken));
    };
    let buf: &'p StackPath = buf;
    Ok(Temp {
        path: buf.as_cstr(),
        at,
        file: Some(locked),
        call,
    })
}

/// How the temporary file reached the data path.
#[derive(Debug, PartialEq, Eq)]
enum Placed {
    /// Renamed: the temporary name is gone.
    Renamed,
    /// Linked (no `renameat2` here): the temporary name is still there.
    Linked,
}

/// Step 3 of the module docs: put the temporary file at `data`, never replacing anything.
fn place(call: &Call<'_>, temp: &CStr, data: &CStr) -> Result<Placed, Fail> {
    place_via(call, temp, data, |c, from, to| c.rename_noreplace(from, to))
}

/// [`place`] with the rename as a parameter, so that tests can take the fallback.
fn place_via(
    call: &Call<'_>,
    temp: &CStr,
    data: &CStr,
    rename: impl FnOnce(&Call<'_>, &CStr, &CStr) -> nix::Result<()>,
) -> Result<Placed, Fail> {
    let taken = |e| match e {
        Errno::EEXIST => Fail::new(e, Op::Open, At::Data).why(Why::NameTaken),
        e => Fail::new(e, Op::Open, At::Data),
    };
    match rename(call, temp, data) {
        Ok(()) => return Ok(Placed::Renamed),
        // No renameat2 in this kernel, or no RENAME_NOREPLACE in this file system.
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {}
        Err(e) => return Err(taken(e)),
    }
    call.link(temp, data).map_err(taken)?;
    Ok(Placed::Linked)
}

/// After a link: our fd still names the file by its temporary (now deleted) name in
/// /proc/self/fd and /proc/self/maps. Reopen it by its real name, so that tools show the data
/// file; keep the first fd if the object was unlinked or replaced in between.
fn reopen_by_name(call: &Call<'_>, fd: OwnedFd, data: &CStr) -> OwnedFd {
    match object::open_existing(call, data, OFlag::O_RDWR, false) {
        Ok(again) if same(again.as_fd(), fd.as_fd()) => again,
        _ => fd,
    }
}

fn same(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    matches!((fstat(a), fstat(b)), (Ok(x), Ok(y)) if vet::same_file(&x, &y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn cpath(p: &Path) -> CString {
        CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
    }

    #[test]
    fn place_renames_and_never_replaces() {
        let call = Call::new(false, None);
        let d = tempfile::tempdir().unwrap();
        let (temp, data) = (d.path().join(".SHMT1.0"), d.path().join(".SHMDx"));
        std::fs::write(&temp, b"new").unwrap();
        std::fs::write(&data, b"old").unwrap();
        let e = place(&call, &cpath(&temp), &cpath(&data)).unwrap_err();
        assert_eq!(e.errno, Errno::EEXIST);
        assert_eq!(std::fs::read(&data).unwrap(), b"old");
        std::fs::remove_file(&data).unwrap();
        assert_eq!(
            place(&call, &cpath(&temp), &cpath(&data)).unwrap(),
            Placed::Renamed
        );
        assert!(!temp.exists());
        assert_eq!(std::fs::metadata(&data).unwrap().nlink(), 1);
    }

    #[test]
    fn place_falls_back_to_link_where_renameat2_is_missing() {
        let call = Call::new(false, None);
        let d = tempfile::tempdir().unwrap();
        let (temp, data) = (d.path().join(".SHMT1.0"), d.path().join(".SHMDx"));
        std::fs::write(&temp, b"new").unwrap();
        for missing in [Errno::ENOSYS, Errno::EINVAL, Errno::EOPNOTSUPP] {
            let no_rename = |_: &Call<'_>, _: &CStr, _: &CStr| Err(missing);
            let placed = place_via(&call, &cpath(&temp), &cpath(&data), no_rename).unwrap();
            assert_eq!(placed, Placed::Linked);
            // The window the fallback has: both names, two links.
            assert_eq!(std::fs::metadata(&data).unwrap().nlink(), 2);
            let e = place_via(&call, &cpath(&temp), &cpath(&data), no_rename).unwrap_err();
            assert_eq!(e.errno, Errno::EEXIST);
            std::fs::remove_file(&data).unwrap();
        }
        // Any other rename error is final: no link is tried.
        let refused = |_: &Call<'_>, _: &CStr, _: &CStr| Err(Errno::EACCES);
        let e = place_via(&call, &cpath(&temp), &cpath(&data), refused).unwrap_err();
        assert_eq!(e.errno, Errno::EACCES);
        assert!(!data.exists());
    }
}
