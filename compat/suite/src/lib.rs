//! The differential suite: tmpshm, and the preload library built from it, against the system's
//! own `shm_open`, case by case. Not shipped: the C libraries are `compat/lib` (`libtmpshm`)
//! and `compat/preload` (`libtmpshm_preload.so`).
//!
//! - [`oracle`]: libc's own `shm_open`, reached through the loader so that no interposer can
//!   stand in for it.
//! - [`preload`]: the preload library's `shm_open`/`shm_unlink`, loaded from its file.
//! - [`diff`]: the matrix of names x operations x prior states, run on both sides.
//! - [`matrix`]: how a pass runs a matrix and reports it, for [`diff`] and [`sem`] alike.
//! - [`table`]: the tables of known divergences, one per subject, and their Markdown.
//! - [`sem`]: the same for named semaphores: glibc's `sem_open` against tmpshm's C entry
//!   points and the preload library's.
//!
//! The `divergences` binary prints the tables and runs the matrix; the tests under
//! `compat/suite/tests` also run C programs natively, under `LD_PRELOAD`, and linked against
//! `libtmpshm`.
//!
//! The oracle and the preload pass need a program linked against glibc
//! ([`oracle::needs_glibc`]); built for musl, the tests that need them say so and skip.
//!
//! # Example
//! ```ignore-musl
//! use tmpshm_compat::diff::{observe, ops, Side};
//! use tmpshm_compat::oracle::Native;
//! let native = Side::Native(Native::get()?);
//! let unlink = ops().pop().unwrap();
//! // glibc's shm_unlink says ENOENT even for a name its shm_open refuses.
//! assert_eq!(observe(&native, c"/a/b", &unlink).result.summary(), "ENOENT");
//! # Ok::<(), String>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod diff;
pub mod matrix;
pub mod oracle;
pub mod preload;
pub mod sem;
pub mod table;
