//! The settings the environment chooses: `TMPSHM_DIR` and `TMPSHM_CROSS_USER`.
//!
//! One rule for the Rust API (which reads the environment through `std::env`) and the C entry
//! points (which read it without allocating): an unset or empty `TMPSHM_DIR` means `/tmp`, a
//! relative one is refused (it would name a different directory in every process with another
//! working directory), and `TMPSHM_CROSS_USER=1` allows other users' files. In a
//! secure-execution process (set-user-ID, set-group-ID, file capabilities) both variables are
//! ignored, as glibc's `secure_getenv` ignores the environment there: the user who started the
//! program controls it.

use nix::errno::Errno;

use crate::error::{At, Fail, Op, Why};
use crate::sys;

/// The environment variable that moves the default directory away from `/tmp`.
pub const ENV_DIR: &str = "TMPSHM_DIR";
/// The environment variable that, set to `1`, allows opening objects owned by other users.
pub const ENV_CROSS_USER: &str = "TMPSHM_CROSS_USER";
/// The directory used when [`ENV_DIR`] is not set, as on illumos.
pub const DEFAULT_DIR: &str = "/tmp";

/// What the environment chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings<'a> {
    /// The directory (never empty).
    pub(crate) dir: &'a [u8],
    /// Whether `TMPSHM_DIR` chose it (else it is the default).
    pub(crate) dir_from_env: bool,
    pub(crate) cross_user: bool,
}

/// Applies the rules to the values of `TMPSHM_DIR` and `TMPSHM_CROSS_USER`.
pub(crate) fn settings<'a>(
    dir: Option<&'a [u8]>,
    cross: Option<&[u8]>,
) -> Result<Settings<'a>, Fail> {
    let default = Settings {
        dir: DEFAULT_DIR.as_bytes(),
        dir_from_env: false,
        cross_user: false,
    };
    if sys::secure_execution() {
        return Ok(default);
    }
    let cross_user = cross == Some(b"1");
    match dir {
        Some(d) if !d.is_empty() => {
            if d[0] != b'/' {
                return Err(Fail::new(Errno::EINVAL, Op::Env, At::Dir).why(Why::DirNotAbsolute));
            }
            Ok(Settings {
                dir: d,
                dir_from_env: true,
                cross_user,
            })
        }
        _ => Ok(Settings {
            cross_user,
            ..default
        }),
    }
}

/// [`settings`] from the variables read from the environment as it is now, without allocating
/// ([`sys::vars`], for the C entry points).
pub(crate) fn from_vars(vars: &sys::Vars) -> Result<Settings<'static>, Fail> {
    let bytes = |v: Option<&'static std::ffi::CStr>| v.map(std::ffi::CStr::to_bytes);
    settings(bytes(vars.dir), bytes(vars.cross_user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let s = settings(None, None).unwrap();
        assert_eq!(
            (s.dir, s.dir_from_env, s.cross_user),
            (&b"/tmp"[..], false, false)
        );
        let s = settings(Some(b""), Some(b"1")).unwrap();
        assert_eq!((s.dir, s.cross_user), (&b"/tmp"[..], true));
        let s = settings(Some(b"/x"), Some(b"yes")).unwrap();
        assert_eq!(
            (s.dir, s.dir_from_env, s.cross_user),
            (&b"/x"[..], true, false)
        );
        let e = settings(Some(b"rel"), None).unwrap_err();
        assert_eq!((e.errno, e.why), (Errno::EINVAL, Why::DirNotAbsolute));
    }
}
