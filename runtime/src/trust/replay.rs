//! The replay guard: per sensor, the highest counter accepted and a window
//! of the 32 counters below it (OSCORE's replay window, RFC 8613 §7.4), kept
//! in `state.db` so it survives restarts. A counter ahead of the highest is
//! accepted and moves the window; one inside the window is accepted once;
//! anything else is a replay.
//!
//! Counters that wrap (BTHome's 32 bits) are compared with serial-number
//! arithmetic (RFC 1982): a counter up to half the space ahead is ahead, so
//! 0x00000002 follows 0xffffffff. A 64-bit counter never wraps.

/// How many counters below the highest are remembered.
pub const WINDOW: u64 = 32;

/// What the guard remembers about one sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The highest counter accepted (unwrapped: it keeps counting past a wrap).
    pub high: u64,
    /// Bit `i` set: counter `high - i` was accepted (bit 0 is `high` itself).
    pub seen: u32,
}

/// Why a counter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("counter {seq} was already accepted (highest so far {high})")]
    Replayed { seq: u64, high: u64 },
    #[error("counter {seq} is older than the replay window (highest so far {high})")]
    TooOld { seq: u64, high: u64 },
}

/// The width of a sensor's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterWidth {
    /// Wraps after 2^32 (BTHome's encrypted-advertisement counter).
    Bits32,
    /// Never wraps (COSE readings).
    Bits64,
}

/// Check `seq` against `window` (None: first message of the sensor) and
/// return the window to store when it is accepted.
pub fn check(window: Option<Window>, seq: u64, width: CounterWidth) -> Result<Window, ReplayError> {
    let Some(w) = window else {
        return Ok(Window { high: seq, seen: 1 });
    };
    let (ahead, behind) = match width {
        CounterWidth::Bits64 => (seq.checked_sub(w.high).filter(|d| *d > 0), w.high.checked_sub(seq)),
        CounterWidth::Bits32 => {
            let modulus = 1u64 << 32;
            let forward = (seq.wrapping_sub(w.high)) % modulus;
            if forward != 0 && forward < modulus / 2 {
                (Some(forward), None)
            } else {
                (None, Some((w.high.wrapping_sub(seq)) % modulus))
            }
        }
    };
    let shown = |w: &Window| match width {
        CounterWidth::Bits64 => w.high,
        CounterWidth::Bits32 => w.high % (1 << 32),
    };
    if let Some(d) = ahead {
        let seen = if d >= WINDOW { 1 } else { (w.seen << d) | 1 };
        return Ok(Window { high: w.high + d, seen });
    }
    match behind {
        Some(b) if b < WINDOW => {
            if w.seen & (1 << b) != 0 {
                Err(ReplayError::Replayed { seq, high: shown(&w) })
            } else {
                Ok(Window { high: w.high, seen: w.seen | (1 << b) })
            }
        }
        _ => Err(ReplayError::TooOld { seq, high: shown(&w) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CounterWidth::*;

    fn run(width: CounterWidth, seqs: &[u64]) -> Vec<bool> {
        let mut window = None;
        seqs.iter()
            .map(|&s| match check(window, s, width) {
                Ok(w) => {
                    window = Some(w);
                    true
                }
                Err(_) => false,
            })
            .collect()
    }

    /// Increasing counters pass; a repeat fails.
    #[test]
    fn increasing_and_repeat() {
        assert_eq!(run(Bits64, &[5, 6, 9, 9, 10]), vec![true, true, true, false, true]);
    }

    /// Late counters inside the window pass once; older ones fail.
    #[test]
    fn window_accepts_late_once() {
        assert_eq!(run(Bits64, &[100, 90, 90, 68, 69]), vec![true, true, false, false, true]);
        let err = check(Some(Window { high: 100, seen: 1 }), 50, Bits64).unwrap_err();
        assert_eq!(err, ReplayError::TooOld { seq: 50, high: 100 });
    }

    /// A 32-bit counter wraps forward; going back across the wrap is a replay.
    #[test]
    fn wrap_32_bit() {
        let max = u64::from(u32::MAX);
        assert_eq!(run(Bits32, &[max - 1, max, 0, 1, max, 3]), vec![true, true, true, true, false, true]);
        let w = check(Some(Window { high: max, seen: 1 }), 1, Bits32).unwrap();
        assert_eq!(w.high, max + 2, "the stored counter keeps counting past the wrap");
    }

    /// A jump far ahead resets the window, and the old counters become too old.
    #[test]
    fn big_jump() {
        assert_eq!(run(Bits64, &[1, 2, 1000, 2, 999]), vec![true, true, true, false, true]);
    }
}
