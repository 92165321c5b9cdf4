//! Fuzzes name handling and the C ABI: arbitrary name bytes, flags and modes through the C
//! entry points (`tmpshm::capi::shm_open`/`shm_unlink` with the strict name rules, what
//! `tmpshm_shm_open` runs) and through `ShmDir::open`/`unlink` in both layouts, each outcome
//! checked against the reference model of the rules in `tmpshm-testkit` (which the property
//! test tests/props.rs also uses).
//!
//! Input: 4 bytes flags, 4 bytes mode, 1 selector byte, then the name.
#![no_main]

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tmpshm::capi::{self, Names};
use tmpshm::{Layout, Mode, OFlag, ShmDir};
use tmpshm_testkit as model;

/// One empty directory per fuzzing process, on tmpfs when there is one.
static DIR: OnceLock<PathBuf> = OnceLock::new();

fn dir() -> &'static PathBuf {
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        };
        let d = PathBuf::from(format!("{base}/tmpshm-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        // The C ABI reads the directory from the environment at every call.
        std::env::set_var("TMPSHM_DIR", &d);
        // libFuzzer ends the process with exit(3): remove the (empty) directory then.
        // SAFETY: registers a function that takes nothing; it runs once, at exit.
        unsafe { libc::atexit(remove_dir) };
        d
    })
}

extern "C" fn remove_dir() {
    if let Some(d) = DIR.get() {
        let _ = std::fs::remove_dir(d);
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The model's name for a layout of the library.
fn model_layout(layout: Layout) -> model::Layout {
    match layout {
        Layout::Glibc => model::Layout::Glibc,
        _ => model::Layout::Illumos,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let flags = i32::from_le_bytes(data[0..4].try_into().unwrap());
    let mode = u32::from_le_bytes(data[4..8].try_into().unwrap());
    let sel = data[8];
    let name = &data[9..];
    let dir = dir();
    if sel & 1 == 0 {
        // The C ABI: a C string ends at its first NUL; selector bit 1 passes NULL instead.
        let null = sel & 2 != 0;
        let c_name = CString::new(name.split(|&b| b == 0).next().unwrap()).unwrap();
        let ptr = if null {
            std::ptr::null()
        } else {
            c_name.as_ptr()
        };
        // SAFETY: ptr is NULL or a valid NUL-terminated string that outlives the call.
        let fd = unsafe { capi::shm_open(ptr, flags, mode as libc::mode_t, Names::Strict) };
        let outcome = if fd >= 0 {
            // SAFETY: a new fd that nothing else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            Err(errno())
        };
        // A NULL name is refused like an empty one.
        let model_name: &[u8] = if null { b"" } else { c_name.as_bytes() };
        let borrowed = outcome.as_ref().map(|f| f.as_fd()).map_err(|e| *e);
        let il = model::Layout::Illumos;
        if let Err(why) = model::check_open_fd(model_name, flags, mode, il, borrowed) {
            panic!("capi::shm_open({model_name:?}, {flags:#x}, {mode:#o}): {why}");
        }
        // SAFETY: as above.
        let rc = unsafe { capi::shm_unlink(ptr, Names::Strict) };
        let u = if rc == 0 { Ok(()) } else { Err(errno()) };
        if let Err(why) = model::check_unlink(model_name, il, outcome.is_ok(), u) {
            panic!("capi::shm_unlink({model_name:?}): {why}");
        }
    } else {
        // The Rust API takes any bytes, interior NULs included.
        let layout = if sel & 2 != 0 {
            Layout::Glibc
        } else {
            Layout::Illumos
        };
        let shm = ShmDir::new(dir).with_layout(layout);
        let os = OsStr::from_bytes(name);
        let r = shm.open(
            os,
            OFlag::from_bits_retain(flags),
            Mode::from_bits_retain(mode as libc::mode_t),
        );
        let borrowed: Result<BorrowedFd<'_>, i32> =
            r.as_ref().map(|f| f.as_fd()).map_err(|e| e.raw_os_error());
        let m = model_layout(layout);
        if let Err(why) = model::check_open_fd(name, flags, mode, m, borrowed) {
            panic!("ShmDir::open({name:?}, {flags:#x}, {mode:#o}, {layout:?}): {why}");
        }
        let u = shm.unlink(os).map_err(|e| e.raw_os_error());
        if let Err(why) = model::check_unlink(name, m, r.is_ok(), u) {
            panic!("ShmDir::unlink({name:?}, {layout:?}): {why}");
        }
    }
});
