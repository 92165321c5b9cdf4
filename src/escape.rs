//! Escaping names and paths for people: object names are bytes that anyone who can write the
//! directory chooses.
//!
//! A name may hold a newline (a forged line in a listing), an escape sequence (a new window
//! title, an erased line), a C1 control (which some terminals obey as a one-byte escape), a
//! bidirectional override (text shown in an order other than its bytes) or bytes that are not
//! UTF-8. [`Escaped`] prints such a name so that a terminal shows it and acts on none of it;
//! [`unescape`] gives the exact bytes back.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes for people: shown with control characters, bidi controls and invalid UTF-8 escaped,
/// so that a terminal shows a name and acts on none of it. [`unescape`] reverses it.
///
/// Object names are bytes that anyone who can write the directory chooses: a newline forges a
/// line of a listing, an escape sequence sets a window title or erases a line, a C1 control is
/// a one-byte escape to some terminals, a bidi override shows text in another order than its
/// bytes.
///
/// # The escaped form
/// Printable UTF-8 is kept as it is. Everything else becomes an escape:
///
/// | bytes or characters                                   | printed as          |
/// |-------------------------------------------------------|---------------------|
/// | `\`                                                   | `\\`                |
/// | newline, tab, carriage return                         | `\n`, `\t`, `\r`    |
/// | other C0 controls (`0x00`–`0x1f`), DEL (`0x7f`)       | `\x1b`, `\x7f`      |
/// | C1 controls (U+0080–U+009F)                           | `\u{9b}`            |
/// | bidi controls: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069 | `\u{202e}` |
/// | line and paragraph separators (U+2028, U+2029)        | `\u{2028}`          |
/// | each byte of invalid UTF-8                            | `\xff`              |
///
/// Hex digits are lowercase. The result is valid UTF-8 without control characters or
/// newlines, and equals the input for ordinary names, so it also serves as a lossless text form
/// of a name (the `tmpshm` command's `--json` output and its `rm --escaped`).
///
/// Width and alignment (`{:<20}`) apply to the escaped text.
///
/// # Example
/// ```
/// use tmpshm::Escaped;
/// let name = b"/evil\n\x1b]0;pwned\x07\xff";
/// let shown = Escaped::new(name).to_string();
/// assert_eq!(shown, r"/evil\n\x1b]0;pwned\x07\xff");
/// assert_eq!(tmpshm::unescape(&shown)?, name);
/// assert_eq!(Escaped::new(b"/blah").to_string(), "/blah");
/// # Ok::<(), tmpshm::UnescapeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escaped<'a>(&'a [u8]);

impl<'a> Escaped<'a> {
    /// Escapes `bytes` when displayed.
    ///
    /// # Example
    /// ```
    /// assert_eq!(tmpshm::Escaped::new("/a\u{202e}b".as_bytes()).to_string(), r"/a\u{202e}b");
    /// ```
    pub fn new(bytes: &'a [u8]) -> Escaped<'a> {
        Escaped(bytes)
    }

    /// Escapes a path (its bytes, whatever their encoding) when displayed.
    ///
    /// # Example
    /// ```
    /// use std::path::Path;
    /// let p = Path::new("/tmp/.SHMD\u{1b}[2K");
    /// assert_eq!(tmpshm::Escaped::path(p).to_string(), r"/tmp/.SHMD\x1b[2K");
    /// ```
    pub fn path(path: &'a Path) -> Escaped<'a> {
        Escaped(path.as_os_str().as_bytes())
    }

    /// The bytes being escaped.
    ///
    /// # Example
    /// ```
    /// assert_eq!(tmpshm::Escaped::new(b"\n").as_bytes(), b"\n");
    /// ```
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            let valid = chunk.valid();
            let mut plain = 0;
            for (i, c) in valid.char_indices() {
                if !needs_escape(c) {
                    continue;
                }
                out.write_str(&valid[plain..i])?;
                plain = i + c.len_utf8();
                match c {
                    '\\' => out.write_str("\\\\")?,
                    '\n' => out.write_str("\\n")?,
                    '\t' => out.write_str("\\t")?,
                    '\r' => out.write_str("\\r")?,
                    '\0'..='\x1f' | '\x7f' => write!(out, "\\x{:02x}", c as u32)?,
                    _ => write!(out, "\\u{{{:x}}}", c as u32)?,
                }
            }
            out.write_str(&valid[plain..])?;
            for b in chunk.invalid() {
                write!(out, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Whether `c` is printed as an escape rather than as itself.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\\'
        | '\0'..='\x1f'
        | '\x7f'..='\u{9f}'
        | '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() || f.precision().is_some() {
            let mut s = String::new();
            self.write_to(&mut s)?;
            return f.pad(&s);
        }
        self.write_to(f)
    }
}

/// Why [`unescape`] refused its input.
///
/// # Example
/// ```
/// let e = tmpshm::unescape(r"/a\q").unwrap_err();
/// assert_eq!(e.offset(), 2);
/// assert_eq!(e.to_string(), r"bad escape at byte 2 of the escaped name: unknown escape \q");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnescapeError {
    offset: usize,
    reason: String,
}

impl UnescapeError {
    /// Where the bad escape starts: a byte offset into the escaped text.
    ///
    /// # Example
    /// ```
    /// assert_eq!(tmpshm::unescape(r"ab\x4").unwrap_err().offset(), 2);
    /// ```
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for UnescapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad escape at byte {} of the escaped name: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for UnescapeError {}

/// The bytes that [`Escaped`] printed as `s`.
///
/// Accepts exactly the escapes that [`Escaped`] writes (`\\`, `\n`, `\t`, `\r`, `\xNN` for any
/// byte, `\u{N}` with 1 to 6 hex digits for any character); everything else is taken as it is.
/// `\xNN` stands for one byte even when it is not UTF-8 on its own, so that
/// `unescape(&Escaped::new(b).to_string())` gives back `b` for every byte string `b`.
///
/// # Errors
/// [`UnescapeError`] for a backslash followed by anything else, a truncated escape, a hex digit
/// missing, or a `\u{...}` that is no Unicode scalar value (a surrogate, or above U+10FFFF).
///
/// # Example
/// ```
/// assert_eq!(tmpshm::unescape(r"/a\x1b\u{9b}\xff\\")?, b"/a\x1b\xc2\x9b\xff\\");
/// assert!(tmpshm::unescape(r"/trailing\").is_err());
/// # Ok::<(), tmpshm::UnescapeError>(())
/// ```
pub fn unescape(s: &str) -> Result<Vec<u8>, UnescapeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let err = |reason: String| UnescapeError { offset: i, reason };
        let Some(&kind) = bytes.get(i + 1) else {
            return Err(err("a backslash ends the text (write \\\\ for one)".into()));
        };
        match kind {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let hex = bytes.get(i + 2..i + 4).unwrap_or_default();
                let value = std::str::from_utf8(hex)
                    .ok()
                    .filter(|h| h.len() == 2 && h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| err("\\x needs two hex digits".into()))?;
                out.push(value);
                i += 4;
                continue;
            }
            b'u' => {
                let rest = &s[i + 2..];
                let close = rest
                    .strip_prefix('{')
                    .and_then(|r| r.find('}'))
                    .ok_or_else(|| err("\\u needs {hex digits}".into()))?;
                let hex = &rest[1..=close];
                if hex.is_empty() || hex.len() > 6 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(err(format!("\\u{{{hex}}} needs 1 to 6 hex digits")));
                }
                let c = u32::from_str_radix(hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| err(format!("\\u{{{hex}}} is not a Unicode scalar value")))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 2 + close + 2;
                continue;
            }
            _ => {
                let shown: String = s[i + 1..].chars().take(1).collect();
                return Err(err(format!(
                    "unknown escape \\{}",
                    Escaped::new(shown.as_bytes())
                )));
            }
        }
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn esc(b: &[u8]) -> String {
        Escaped::new(b).to_string()
    }

    /// What no escaped text may contain: anything a terminal would act on.
    fn inert(s: &str) -> bool {
        !s.chars().any(|c| c != '\\' && needs_escape(c))
    }

    #[test]
    fn escapes_each_class() {
        assert_eq!(esc(b"/blah"), "/blah");
        assert_eq!(
            esc("/caf\u{e9} \u{1f600}".as_bytes()),
            "/caf\u{e9} \u{1f600}"
        );
        assert_eq!(esc(b"a\\b"), r"a\\b");
        assert_eq!(esc(b"\n\t\r"), r"\n\t\r");
        assert_eq!(esc(b"\0\x01\x1b\x1f\x7f"), r"\x00\x01\x1b\x1f\x7f");
        assert_eq!(
            esc("\u{80}\u{9b}\u{9f}\u{a0}".as_bytes()),
            "\\u{80}\\u{9b}\\u{9f}\u{a0}"
        );
        assert_eq!(
            esc(
                "\u{61c}\u{200e}\u{200f}\u{202a}\u{202e}\u{2066}\u{2069}\u{2028}\u{2029}"
                    .as_bytes()
            ),
            r"\u{61c}\u{200e}\u{200f}\u{202a}\u{202e}\u{2066}\u{2069}\u{2028}\u{2029}"
        );
        // Neighbours of the escaped ranges are printable and kept.
        assert_eq!(
            esc("\u{200d}\u{202f}\u{2065}\u{206a}".as_bytes()),
            "\u{200d}\u{202f}\u{2065}\u{206a}"
        );
        // Invalid UTF-8: each byte, including a truncated sequence and an encoded surrogate.
        assert_eq!(esc(b"\xff\xfe"), r"\xff\xfe");
        assert_eq!(esc(b"a\xe2\x82"), r"a\xe2\x82");
        assert_eq!(esc(b"\xed\xa0\x80"), r"\xed\xa0\x80");
        assert_eq!(esc(b"\xc2"), r"\xc2");
    }

    #[test]
    fn pads_the_escaped_text() {
        assert_eq!(format!("[{:<6}]", Escaped::new(b"\n")), r"[\n    ]");
        assert_eq!(format!("[{:>4}]", Escaped::new(b"ab")), "[  ab]");
    }

    #[test]
    fn paths_keep_their_bytes() {
        use std::ffi::OsStr;
        let p = Path::new(OsStr::from_bytes(b"/tmp/.SHMD\xff\n"));
        assert_eq!(Escaped::path(p).to_string(), r"/tmp/.SHMD\xff\n");
    }

    #[test]
    fn unescape_refuses_what_escape_never_writes_badly() {
        for bad in [
            r"\",
            r"\q",
            r"\x",
            r"\x4",
            r"\xg0",
            r"\u",
            r"\u41",
            r"\u{",
            r"\u{}",
            r"\u{1234567}",
            r"\u{d800}",
            r"\u{110000}",
            r"\u{4g}",
            "\\\u{e9}",
        ] {
            assert!(unescape(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(unescape(r"a\u{41}\x41").unwrap(), b"aAA");
        // Raw text passes through as it is.
        assert_eq!(unescape("\u{e9}\n").unwrap(), "\u{e9}\n".as_bytes());
        assert_eq!(unescape(r"x\u{10ffff}").unwrap(), "x\u{10ffff}".as_bytes());
    }

    proptest! {
        #[test]
        fn round_trips_every_byte_string(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = esc(&b);
            prop_assert!(inert(&s), "{:?}", s);
            prop_assert_eq!(unescape(&s).unwrap(), b);
        }

        #[test]
        fn round_trips_every_string(s in any::<String>()) {
            let e = esc(s.as_bytes());
            prop_assert!(inert(&e), "{:?}", e);
            prop_assert_eq!(unescape(&e).unwrap(), s.as_bytes());
            if !s.chars().any(needs_escape) {
                prop_assert_eq!(e, s);
            }
        }

        #[test]
        fn round_trips_mixed_text(parts in proptest::collection::vec(
            prop_oneof![
                any::<char>().prop_map(|c| c.to_string().into_bytes()),
                proptest::collection::vec(128u8.., 1..4),
                proptest::collection::vec(0u8..32, 1..3),
                Just(b"\\".to_vec()),
                Just(b"\\x1b".to_vec()),
                Just("\u{202e}".as_bytes().to_vec()),
            ],
            0..16,
        )) {
            let b = parts.concat();
            let s = esc(&b);
            prop_assert!(inert(&s), "{:?}", s);
            prop_assert_eq!(unescape(&s).unwrap(), b);
        }
    }
}
