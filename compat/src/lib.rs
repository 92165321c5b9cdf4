//! tmpshm for C, and the proof that it behaves like the system's `shm_open`.
//!
//! - [`ffi`]: the C ABI. Built as `libtmpshm_compat.so`, it exports `tmpshm_shm_open` and
//!   `tmpshm_shm_unlink` (declared in `compat/include/tmpshm.h`) and also `shm_open` and
//!   `shm_unlink`, so `LD_PRELOAD=libtmpshm_compat.so ./program` runs an unmodified C program
//!   on tmpshm, in `$TMPSHM_DIR` (else `/tmp`).
//! - [`oracle`]: libc's own `shm_open`, reached through the loader so that this crate's
//!   exports can never stand in for it.
//! - [`diff`] and [`table`]: the differential suite and its table of known divergences.
//!
//! # Example
//! ```
//! use tmpshm_compat::ffi::{tmpshm_shm_open, tmpshm_shm_unlink};
//! let dir = tempfile::tempdir().unwrap();
//! std::env::set_var("TMPSHM_DIR", dir.path());
//! // SAFETY: a NUL-terminated name.
//! let fd = unsafe { tmpshm_shm_open(c"/lib-doc".as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600) };
//! assert!(fd >= 0);
//! assert!(dir.path().join(".SHMDlib-doc").is_file());
//! // SAFETY: as above; fd is ours.
//! unsafe {
//!     assert_eq!(tmpshm_shm_unlink(c"/lib-doc".as_ptr()), 0);
//!     libc::close(fd);
//! }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod diff;
pub mod ffi;
pub mod oracle;
pub mod table;
