//! Stand-in for `sysv.rs` on platforms without System V shared memory (Android's bionic).

use crate::tour::heading;
use crate::CliError;

/// Stands for the attached segment that this platform cannot have.
pub struct NoSegment;

/// The tour's first part, where there is no `shmget`.
pub fn tour_part(
    _marks: &mut Vec<(usize, String)>,
    _size: usize,
) -> Result<Option<NoSegment>, CliError> {
    heading("1. System V shared memory");
    println!("not available on this platform (no shmget); skipped");
    Ok(None)
}
