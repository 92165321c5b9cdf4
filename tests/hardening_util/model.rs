//! The documented rules of `ShmDir::open`/`unlink`, written independently of the code, shared
//! by the proptest (tests/hardening_props.rs) and the cargo-fuzz target (fuzz/).

use tmpshm::Layout;

/// The flags `ShmDir::open` accepts (beside the access mode).
pub fn allowed() -> i32 {
    libc::O_ACCMODE
        | libc::O_CREAT
        | libc::O_EXCL
        | libc::O_TRUNC
        | libc::O_CLOEXEC
        | libc::O_NOFOLLOW
}

/// The documented rules, independently of the code: `Some(why)` when the call must fail
/// with `EINVAL` before touching anything.
pub fn model_einval(name: &[u8], flags: i32, mode: u32, layout: Layout) -> Option<&'static str> {
    let acc = flags & libc::O_ACCMODE;
    if acc != libc::O_RDONLY && acc != libc::O_RDWR {
        return Some("access mode");
    }
    if flags & !allowed() != 0 {
        return Some("unknown flag");
    }
    if flags & libc::O_EXCL != 0 && flags & libc::O_CREAT == 0 {
        return Some("O_EXCL without O_CREAT");
    }
    if flags & libc::O_TRUNC != 0 && acc == libc::O_RDONLY {
        return Some("O_TRUNC with O_RDONLY");
    }
    if flags & libc::O_CREAT != 0 && mode & !0o777 != 0 {
        return Some("mode bits");
    }
    let rest = match name.split_first() {
        Some((b'/', rest)) => rest,
        _ => return Some("no leading slash"),
    };
    if rest.is_empty() || rest.contains(&b'/') || rest.contains(&0) {
        return Some("name");
    }
    if layout.data_prefix().is_empty() && (rest == b"." || rest == b"..") {
        return Some("dot name");
    }
    None
}

/// Checks the outcome of `open(name, flags, mode)` in an empty directory against the model:
/// `Ok(fd)` or the errno.
pub fn check_open(
    name: &[u8],
    flags: i32,
    mode: u32,
    layout: Layout,
    result: Result<std::os::fd::BorrowedFd<'_>, i32>,
) -> Result<(), String> {
    let einval = model_einval(name, flags, mode, layout);
    let too_long = name.len().saturating_sub(1) + layout.data_prefix().len() > 255;
    match (result, einval) {
        (Err(libc::EINVAL), Some(_)) => Ok(()),
        (Err(e), Some(why)) => Err(format!("errno {e}, want EINVAL ({why})")),
        (Ok(_), Some(why)) => Err(format!("accepted despite: {why}")),
        (Ok(fd), None) => {
            let st = nix::sys::stat::fstat(fd).map_err(|e| e.to_string())?;
            if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_nlink != 1 {
                return Err(format!(
                    "opened mode {:o} nlink {}",
                    st.st_mode, st.st_nlink
                ));
            }
            let fdflags =
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).map_err(|e| e.to_string())?;
            if fdflags & libc::FD_CLOEXEC == 0 {
                return Err("no FD_CLOEXEC".into());
            }
            if flags & libc::O_CREAT == 0 {
                return Err("opened an object in an empty directory without O_CREAT".into());
            }
            Ok(())
        }
        // A valid request fails only when the object is missing or the name too long.
        (Err(libc::ENOENT), None) if flags & libc::O_CREAT == 0 => Ok(()),
        (Err(libc::ENAMETOOLONG), None) if too_long => Ok(()),
        (Err(e), None) => Err(format!("valid request failed with errno {e}")),
    }
}

/// Checks the outcome of `unlink(name)` after [`check_open`]'s call (`created`: it succeeded).
pub fn check_unlink(
    name: &[u8],
    layout: Layout,
    created: bool,
    result: Result<(), i32>,
) -> Result<(), String> {
    let name_ok = model_einval(name, libc::O_RDONLY, 0, layout).is_none();
    let too_long = name.len().saturating_sub(1) + layout.data_prefix().len() > 255;
    match result {
        Ok(()) if name_ok && created => Ok(()),
        Err(libc::EINVAL) if !name_ok => Ok(()),
        Err(libc::ENOENT) if name_ok && !created => Ok(()),
        Err(libc::ENAMETOOLONG) if name_ok && too_long => Ok(()),
        other => Err(format!(
            "unlink: {other:?} (name valid: {name_ok}, created: {created})"
        )),
    }
}
