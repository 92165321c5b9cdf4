//! Parsing and printing helpers shared by the commands.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use tmpshm::{Escaped, Step};

/// `4096`, `4K`, `4KiB`, `1M`, `2G` (suffixes are powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (bytes, or with a K, M or G suffix)"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("{s:?}: unknown size suffix {suffix:?} (K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .filter(|v| *v <= i64::MAX as u64)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Octal permission bits: `600`, `0600` or `0o600`, at most `777`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let m = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("{s:?} is not an octal mode such as 600"))?;
    if m > 0o777 {
        return Err(format!("{s:?} has bits outside the permission bits 777"));
    }
    Ok(m)
}

/// `what: ENOENT (No such file or directory)`: an `io::Error` as one line with its errno name.
/// Any name or path in `what` must already be escaped ([`show`], [`show_path`]).
pub fn os_err(what: impl std::fmt::Display, e: &std::io::Error) -> Shown {
    Shown(match e.raw_os_error() {
        Some(code) => {
            let errno = nix::errno::Errno::from_raw(code);
            format!("{what}: {errno:?} ({})", errno.desc())
        }
        None => format!("{what}: {}", show_text(&e.to_string())),
    })
}

/// An object name for people: control characters, bidi controls and invalid UTF-8 escaped.
/// Names are chosen by whoever can write the directory; nothing of one reaches a terminal raw.
pub fn show(s: &OsStr) -> Escaped<'_> {
    Escaped::new(s.as_bytes())
}

/// A path for people, escaped as [`show`] escapes names (paths end in names).
pub fn show_path(p: &Path) -> Escaped<'_> {
    Escaped::path(p)
}

/// Text that some `Display` rendered (a trace step, a library error) and that may carry
/// names: escaped as a whole, its spaces kept.
pub fn show_text(s: &str) -> Escaped<'_> {
    Escaped::new(s.as_bytes())
}

/// An error message whose names and paths were escaped when it was built: printed as it is.
#[derive(Debug)]
pub struct Shown(pub String);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Shown {}

/// One error, as one line a terminal can show safely. A library error escapes its own names
/// and paths; anything else is escaped as a whole.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(shown) = e.downcast_ref::<Shown>() {
        return shown.0.clone();
    }
    match e.downcast_ref::<tmpshm::Error>() {
        Some(err) => err.to_string(),
        None => show_text(&e.to_string()).to_string(),
    }
}

/// One traced step, as a line a terminal can show safely (the library escapes names and
/// paths in its steps).
pub fn trace_line(step: &Step<'_>) -> String {
    step.to_string()
}

/// The user name of `uid`, or the number.
pub fn owner(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// Seconds since the epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC.
pub fn utc(t: SystemTime) -> String {
    let secs = unix_seconds(t);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from a day count (the proleptic Gregorian calendar, eras of 400 years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1T").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("8").is_err());
    }

    #[test]
    fn error_lines_keep_path_bytes_and_escape_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let shm = tmpshm::ShmDir::new(dir.path());
        let e = shm
            .unlink(OsStr::from_bytes(b"/gone\xff\x1b[2K"))
            .unwrap_err();
        let line = error_line(&e);
        assert!(line.contains(".SHMDgone\\xff\\x1b[2K: ENOENT"), "{line}");
        let plain: Box<dyn std::error::Error> = "bad\nline".into();
        assert_eq!(error_line(&*plain), "bad\\nline");
        let shown: Box<dyn std::error::Error> = Box::new(Shown("a\\x1b".into()));
        assert_eq!(error_line(&*shown), "a\\x1b");
    }

    #[test]
    fn trace_lines_keep_path_bytes_and_escape_the_rest() {
        let data = Path::new(OsStr::from_bytes(b"/d/.SHMDa\n\xff"));
        let lock = Path::new(OsStr::from_bytes(b"/d/.SHMLa\n\xff"));
        let step = Step::Name {
            name: b"/a\n\xff",
            data,
            lock: Some(lock),
        };
        assert_eq!(
            trace_line(&step),
            "name \"/a\\n\\xff\" ok -> data /d/.SHMDa\\n\\xff, lock /d/.SHMLa\\n\\xff"
        );
        let step = Step::Open {
            role: tmpshm::Role::Object,
            path: data,
            flags: tmpshm::OFlag::O_RDONLY,
            mode: tmpshm::Mode::empty(),
        };
        assert_eq!(trace_line(&step), "open /d/.SHMDa\\n\\xff O_RDONLY");
    }

    #[test]
    fn dates() {
        let at = |s| utc(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(
            utc(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
    }
}
