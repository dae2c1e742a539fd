//! An operator's pin that stays written.
//!
//! The controller decides about a device (or a gNB) by reading its stage entry and, if it is not
//! an operator's (`STAGE_FLAG_MANUAL`), writing its own a few microseconds later; its prune
//! deletes expired entries it read a moment before. Maps offer no compare-and-swap on a value, so
//! a pin that lands between the controller's read and its write is overwritten, after the CLI
//! said "pinned". So the CLI looks again once the controller's in-flight write must have landed,
//! and writes its entry again if it was taken: the controller reads it as an operator's from then
//! on and leaves it alone.

use std::time::Duration;

use anyhow::{bail, Result};

/// How long after its write the CLI looks again: far longer than the controller's read-to-write
/// gap (microseconds), unless its thread is descheduled between the two.
pub const SETTLE: Duration = Duration::from_millis(25);
/// Looks (each after [`SETTLE`]) before giving up.
const LOOKS: u32 = 4;

/// After an operator's entry was written: wait [`SETTLE`], `read` it, and `write` it again while
/// it is not `ours` (gone, or the controller's). Returns how many times it was written again; an
/// error if it never stayed.
pub fn settle<T>(
    mut read: impl FnMut() -> Result<Option<T>>,
    ours: impl Fn(&T) -> bool,
    mut write: impl FnMut() -> Result<()>,
) -> Result<u32> {
    for again in 0..LOOKS {
        std::thread::sleep(SETTLE);
        if read()?.as_ref().is_some_and(&ours) {
            return Ok(again);
        }
        write()?;
    }
    bail!(
        "the entry was overwritten {LOOKS} times in {} ms (by the controller?): it is not in force; check `guard status` and pin again",
        (SETTLE * LOOKS).as_millis()
    )
}

/// The line that says so, when the entry had to be written again.
pub fn rewritten_note(again: u32) -> String {
    if again == 0 {
        String::new()
    } else {
        format!("\n(written again: the controller wrote over it {again} time(s) as it was being pinned)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn an_entry_that_stays_is_written_once() {
        let writes = Cell::new(0);
        let again = settle(
            || Ok(Some(true)),
            |v| *v,
            || {
                writes.set(writes.get() + 1);
                Ok(())
            },
        )
        .expect("settles");
        assert_eq!((again, writes.get()), (0, 0));
    }

    #[test]
    fn an_entry_the_controller_overwrote_is_written_again_until_it_stays() {
        // The controller's entry (false) is read twice, then ours.
        let reads = Cell::new(0);
        let writes = Cell::new(0);
        let again = settle(
            || {
                reads.set(reads.get() + 1);
                Ok(Some(reads.get() > 2))
            },
            |v| *v,
            || {
                writes.set(writes.get() + 1);
                Ok(())
            },
        )
        .expect("settles");
        assert_eq!((again, writes.get()), (2, 2));
        assert!(rewritten_note(again).contains("2 time"));
    }

    #[test]
    fn an_entry_that_never_stays_is_an_error_not_a_pin() {
        let writes = Cell::new(0);
        let r = settle(
            || Ok(None::<bool>),
            |v| *v,
            || {
                writes.set(writes.get() + 1);
                Ok(())
            },
        );
        assert!(r.is_err());
        assert_eq!(writes.get(), LOOKS);
    }
}
