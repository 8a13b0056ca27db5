//! The gateway's clock. Rules, ticks and the simulator all read time from
//! here, so a simulation can run faster than real time and every part of the
//! gateway still agrees on what time it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, shared by everything that reads time.
#[derive(Clone, Debug)]
pub struct Clock(Arc<Mode>);

#[derive(Debug)]
enum Mode {
    /// Wall-clock time.
    Real,
    /// `start_ms` at `origin`, then `speed` simulated ms per real ms.
    Scaled { start_ms: u64, origin: Mutex<Instant>, speed: f64 },
    /// Moved only by [`Clock::advance_to`]: the simulator at full speed.
    Manual(AtomicU64),
}

impl Clock {
    /// The system's wall clock.
    pub fn real() -> Self {
        Clock(Arc::new(Mode::Real))
    }

    /// A clock that starts at `start_ms` and runs `speed` times faster than real time.
    pub fn scaled(start_ms: u64, speed: f64) -> Self {
        Clock(Arc::new(Mode::Scaled { start_ms, origin: Mutex::new(Instant::now()), speed }))
    }

    /// A clock that only moves when told to.
    pub fn manual(start_ms: u64) -> Self {
        Clock(Arc::new(Mode::Manual(AtomicU64::new(start_ms))))
    }

    /// The current time in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &*self.0 {
            Mode::Real => wall_ms(),
            Mode::Scaled { start_ms, origin, speed } => {
                let origin = *origin.lock().unwrap_or_else(|p| p.into_inner());
                start_ms + (origin.elapsed().as_secs_f64() * 1000.0 * speed) as u64
            }
            Mode::Manual(now) => now.load(Ordering::Acquire),
        }
    }

    /// Start a scaled clock's run now: it reads its start time again. The
    /// gateway calls this when its sources start, so a slow start-up (say,
    /// compiling modules) does not eat into a simulation.
    pub fn restart(&self) {
        if let Mode::Scaled { origin, .. } = &*self.0 {
            *origin.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }

    /// A clock for one consumer of events: a manual clock gets its own copy
    /// (starting now), which that consumer advances with the events it
    /// handles, so a queue behind the producer never sees time run ahead of
    /// its messages. Other clocks are shared.
    pub fn fork(&self) -> Clock {
        match &*self.0 {
            Mode::Manual(now) => Clock::manual(now.load(Ordering::Acquire)),
            _ => self.clone(),
        }
    }

    /// Move a manual clock forward to `ms` (never backwards); other clocks ignore it.
    pub fn advance_to(&self, ms: u64) {
        if let Mode::Manual(now) = &*self.0 {
            now.fetch_max(ms, Ordering::AcqRel);
        }
    }

    /// How long to wait in real time until this clock reads `target_ms`;
    /// `None` for a manual clock, which moves only with events.
    pub fn real_wait_until(&self, target_ms: u64) -> Option<Duration> {
        let ahead_ms = target_ms.saturating_sub(self.now_ms()) as f64;
        match &*self.0 {
            Mode::Real => Some(Duration::from_secs_f64(ahead_ms / 1000.0)),
            Mode::Scaled { speed, .. } => Some(Duration::from_secs_f64(ahead_ms / 1000.0 / speed)),
            Mode::Manual(_) => None,
        }
    }
}

/// The system's wall clock in ms since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Parse an RFC 3339 UTC time (`2026-01-15T06:00:00Z`) to ms since the Unix epoch.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339(text).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// Format ms since the Unix epoch as RFC 3339 with millisecond precision.
pub fn format_rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manual clock moves only forward and only when told.
    #[test]
    fn manual_clock_moves_forward_only() {
        let clock = Clock::manual(1_000);
        clock.advance_to(5_000);
        clock.advance_to(2_000);
        assert_eq!(clock.now_ms(), 5_000);
        assert_eq!(clock.real_wait_until(9_000), None);
    }

    /// A scaled clock converts simulated waits into shorter real waits.
    #[test]
    fn scaled_clock_shortens_waits() {
        let clock = Clock::scaled(0, 100.0);
        let wait = clock.real_wait_until(1_000_000).unwrap();
        assert!(wait <= Duration::from_secs(10), "{wait:?}");
        assert!(wait > Duration::from_secs(9), "{wait:?}");
    }

    /// RFC 3339 times round-trip through milliseconds.
    #[test]
    fn rfc3339_round_trip() {
        let ms = parse_rfc3339_ms("2026-01-15T06:00:00Z").unwrap();
        assert_eq!(ms, 1_768_456_800_000);
        assert_eq!(format_rfc3339_ms(ms), "2026-01-15T06:00:00.000Z");
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
