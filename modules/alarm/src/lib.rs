//! # `alarm`: threshold and stale-sensor alarms
//!
//! An edgeward policy rule that raises local alarms when a measurement stays
//! beyond a limit, and when a sensor falls silent. It never changes or drops
//! a message: every message is forwarded, with any alarms as effects.
//!
//! ## Configuration
//!
//! ```toml
//! stale-after-s = 300          # optional: raise `stale` (warning) for a sensor silent longer than this
//!
//! [[threshold]]
//! measurement = "temperature"  # required: the measurement's name
//! unit = "Cel"                 # optional: only measurements in this SenML unit
//! above = 38.0                 # optional \ at least one of the two;
//! below = 35.0                 # optional / when both, `above` must be greater than `below`
//! hysteresis = 0.3             # default 0, >= 0: how far a value must recover before the alarm clears
//! min-duration-s = 30          # default 0: how long the condition must hold before the alarm is raised
//! severity = "critical"        # info | warning | critical; default warning
//! code = "fever"               # optional; default "<measurement>-high" / "<measurement>-low"
//! sensors = ["wearable-1"]     # optional: only these sensors; default all
//! ```
//!
//! Unknown keys are refused (naming the key), as are thresholds without a
//! limit, negative or non-finite numbers, an empty `sensors` list, the code
//! `stale` (reserved), and two thresholds that could raise the same code for
//! the same sensor (their alarms would be indistinguishable downstream).
//!
//! ## Thresholds
//!
//! Each (sensor, threshold, direction) moves through three states:
//!
//! * **normal** → **pending** when a value goes beyond the limit
//!   (`value > above`, or `value < below`), remembering when (the reading's
//!   `received-ms`);
//! * **pending** → **raised** once a reading beyond the limit arrives at
//!   least `min-duration-s` after the pending began; one
//!   [`Alarm::raised`] is emitted, e.g.
//!   `temperature 38.6 Cel above 38 on wearable-1 for 30 s`. With
//!   `min-duration-s = 0` the first value beyond the limit raises at once;
//! * **pending** → **normal** silently when a value is no longer beyond the
//!   limit before that;
//! * **raised** → **normal** only once the value recovers past the
//!   hysteresis (`value <= above - hysteresis`, or
//!   `value >= below + hysteresis`), emitting [`Alarm::cleared`] with the
//!   same code.
//!
//! While raised nothing more is emitted, so a value hovering around the limit
//! gives one alarm, not a storm. Readings without the measurement (or whose
//! value is NaN or infinite) leave the state as it is. A pending alarm is
//! promoted only by a reading that confirms it, never by the clock alone.
//!
//! ## Stale sensors
//!
//! With `stale-after-s`, every [`tick`](Rule::tick) raises `stale` once for
//! each sensor whose last reading is more than `stale-after-s` old; the
//! sensor's next reading clears it.
//!
//! ## State
//!
//! The gateway replaces an instance after a trap, so whatever must survive
//! that lives in the instance's `kv` store, written only when something
//! changes (the store is SQLite on flash; a write per message would wear it):
//!
//! * `state/<sensor>`: the sensor's pending and raised thresholds and its
//!   stale flag, as JSON; deleted when all are back to normal. Read lazily
//!   the first time an instance meets the sensor, then kept in memory.
//! * `known-sensors`: the sensors ever seen, written when a new one appears
//!   (only with `stale-after-s`), so that a sensor that goes silent while
//!   the instance is being replaced is still noticed.
//!
//! When each sensor was last seen is kept in memory only: after a
//! replacement, a known sensor's silence is counted from the first tick (or
//! its first reading, if sooner).

use edgeward_sdk::{Alarm, Effects, Message, Outcome, Rule, Severity, kv};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The code of the stale-sensor alarm.
pub const STALE_CODE: &str = "stale";

/// The kv key holding the names of all sensors seen (JSON list).
const KNOWN_SENSORS_KEY: &str = "known-sensors";

/// The kv key prefix for one sensor's alarm state (JSON [`SensorState`]).
const STATE_KEY_PREFIX: &str = "state/";

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The rule's configuration: the module's TOML table, given as JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Raise `stale` for a sensor silent for longer than this many seconds.
    #[serde(default)]
    pub stale_after_s: Option<f64>,
    /// The `[[threshold]]` tables.
    #[serde(default)]
    pub threshold: Vec<ThresholdConfig>,
}

/// One `[[threshold]]` table.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ThresholdConfig {
    /// The measurement's name, e.g. `temperature`.
    pub measurement: String,
    /// Only measurements in this SenML unit; any unit when absent.
    #[serde(default)]
    pub unit: Option<String>,
    /// Alarm when the value is greater than this.
    #[serde(default)]
    pub above: Option<f64>,
    /// Alarm when the value is less than this.
    #[serde(default)]
    pub below: Option<f64>,
    /// How far past the limit the value must recover to clear the alarm.
    #[serde(default)]
    pub hysteresis: f64,
    /// How long (seconds) the value must stay beyond the limit before the alarm is raised.
    #[serde(default)]
    pub min_duration_s: f64,
    /// The alarm's severity.
    #[serde(default)]
    pub severity: SeverityName,
    /// The alarm's code; `<measurement>-high` / `<measurement>-low` when absent.
    #[serde(default)]
    pub code: Option<String>,
    /// Only these sensors; all sensors when absent.
    #[serde(default)]
    pub sensors: Option<Vec<String>>,
}

/// A severity as spelled in the configuration.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeverityName {
    /// `info`
    Info,
    /// `warning` (the default)
    #[default]
    Warning,
    /// `critical`
    Critical,
}

impl From<SeverityName> for Severity {
    fn from(name: SeverityName) -> Self {
        match name {
            SeverityName::Info => Severity::Info,
            SeverityName::Warning => Severity::Warning,
            SeverityName::Critical => Severity::Critical,
        }
    }
}

/// Seconds from the configuration to milliseconds; the caller checked that
/// `s` is finite and not negative (`as` saturates absurdly large values).
fn secs_to_ms(s: f64) -> u64 {
    (s * 1000.0).round() as u64
}

// ---------------------------------------------------------------------------
// Validated thresholds
// ---------------------------------------------------------------------------

/// Which side of the limit is alarming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// `above`: values greater than the limit.
    Above,
    /// `below`: values less than the limit.
    Below,
}

impl Direction {
    /// The word used in configuration and alarm texts.
    fn word(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }
}

/// One direction of a threshold: a limit with its own alarm state.
#[derive(Debug)]
struct Limit {
    direction: Direction,
    value: f64,
    hysteresis: f64,
    code: String,
    /// Where this limit's state lives in a [`SensorState`]: the direction is
    /// part of it because both directions of a threshold may share a code.
    state_key: String,
}

impl Limit {
    fn new(direction: Direction, value: f64, hysteresis: f64, code: String) -> Self {
        let state_key = format!("{}:{code}", direction.word());
        Limit { direction, value, hysteresis, code, state_key }
    }

    /// Whether `v` is beyond the limit (the alarming side).
    fn is_beyond(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v > self.value,
            Direction::Below => v < self.value,
        }
    }

    /// Whether `v` has recovered far enough to clear a raised alarm.
    fn has_recovered(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v <= self.value - self.hysteresis,
            Direction::Below => v >= self.value + self.hysteresis,
        }
    }
}

/// A validated `[[threshold]]`.
#[derive(Debug)]
struct Threshold {
    measurement: String,
    unit: Option<String>,
    /// One or two limits; `above` first.
    limits: Vec<Limit>,
    min_duration_ms: u64,
    severity: Severity,
    sensors: Option<BTreeSet<String>>,
}

impl Threshold {
    /// Validate the `index`th (0-based) `[[threshold]]` table.
    fn from_config(index: usize, c: ThresholdConfig) -> Result<Self, String> {
        // Errors name the table as a person counts them in the TOML file.
        let at = format!("[[threshold]] #{} ({:?})", index + 1, c.measurement);
        if c.measurement.is_empty() {
            return Err(format!("{at}: `measurement` must not be empty"));
        }
        for (key, v) in [("above", c.above), ("below", c.below)] {
            if let Some(v) = v
                && !v.is_finite()
            {
                return Err(format!("{at}: `{key}` must be a finite number, not {v}"));
            }
        }
        if !(c.hysteresis.is_finite() && c.hysteresis >= 0.0) {
            return Err(format!("{at}: `hysteresis` must be a number >= 0, not {}", c.hysteresis));
        }
        if !(c.min_duration_s.is_finite() && c.min_duration_s >= 0.0) {
            return Err(format!(
                "{at}: `min-duration-s` must be a number of seconds >= 0, not {}",
                c.min_duration_s
            ));
        }
        if let Some(code) = &c.code {
            if code.is_empty() {
                return Err(format!("{at}: `code` must not be empty"));
            }
            if code == STALE_CODE {
                return Err(format!("{at}: the code `{STALE_CODE}` is reserved for the stale-sensor alarm"));
            }
        }
        let sensors = match c.sensors {
            Some(list) if list.is_empty() => {
                return Err(format!(
                    "{at}: `sensors` is empty, so the threshold would never apply; \
                     leave it out to watch all sensors"
                ));
            }
            list => list.map(|l| l.into_iter().collect::<BTreeSet<_>>()),
        };

        let mut limits = Vec::with_capacity(2);
        if let Some(above) = c.above {
            let code = c.code.clone().unwrap_or_else(|| format!("{}-high", c.measurement));
            limits.push(Limit::new(Direction::Above, above, c.hysteresis, code));
        }
        if let Some(below) = c.below {
            let code = c.code.clone().unwrap_or_else(|| format!("{}-low", c.measurement));
            limits.push(Limit::new(Direction::Below, below, c.hysteresis, code));
        }
        match (c.above, c.below) {
            (None, None) => {
                return Err(format!("{at}: needs `above`, `below` or both"));
            }
            (Some(above), Some(below)) if above <= below => {
                // Then one value could be beyond both limits at once: surely a typo.
                return Err(format!("{at}: `above` ({above}) must be greater than `below` ({below})"));
            }
            (Some(above), Some(below)) if c.code.is_some() && above - c.hysteresis < below => {
                // Both directions share the code; if their hysteresis bands
                // overlapped, the code could be raised twice without a clear.
                return Err(format!(
                    "{at}: with one `code` for both directions, `above` minus `hysteresis` \
                     ({}) must not be less than `below` ({below})",
                    above - c.hysteresis
                ));
            }
            _ => {}
        }

        Ok(Threshold {
            measurement: c.measurement,
            unit: c.unit,
            limits,
            min_duration_ms: secs_to_ms(c.min_duration_s),
            severity: c.severity.into(),
            sensors,
        })
    }

    /// Whether this threshold watches `sensor`.
    fn applies_to(&self, sensor: &str) -> bool {
        self.sensors.as_ref().is_none_or(|s| s.contains(sensor))
    }

    /// Whether some sensor is watched by both thresholds.
    fn shares_sensors_with(&self, other: &Threshold) -> bool {
        match (&self.sensors, &other.sensors) {
            (Some(a), Some(b)) => !a.is_disjoint(b),
            _ => true,
        }
    }

    /// The first finite value this threshold looks at in `msg` (NaN or
    /// infinity says nothing about the quantity).
    fn value(&self, msg: &Message) -> Option<f64> {
        match &self.unit {
            Some(unit) => msg.value_in(&self.measurement, unit),
            None => msg.value(&self.measurement),
        }
    }

    /// The unit of the value [`Threshold::value`] found, for alarm texts:
    /// looked up only when an alarm is written.
    fn unit_of(&self, msg: &Message) -> String {
        let unit = match &self.unit {
            Some(unit) => unit.clone(),
            None => msg
                .reading()
                .measurements
                .iter()
                .find(|m| m.name == self.measurement && m.value.is_finite())
                .map(|m| m.unit.clone())
                .unwrap_or_default(),
        };
        if unit.is_empty() { unit } else { format!(" {unit}") }
    }
}

/// Refuse two thresholds that could raise the same code for one sensor:
/// downstream an alarm is known by (sensor, code), so one could clear the
/// other's alarm.
fn check_codes_distinct(thresholds: &[Threshold]) -> Result<(), String> {
    for (j, later) in thresholds.iter().enumerate() {
        for (i, earlier) in thresholds[..j].iter().enumerate() {
            if !later.shares_sensors_with(earlier) {
                continue;
            }
            if let Some(limit) = later.limits.iter().find(|l| earlier.limits.iter().any(|e| e.code == l.code))
            {
                return Err(format!(
                    "[[threshold]] #{} ({:?}) and #{} ({:?}) both raise the code `{}` \
                     for the same sensors; give one of them its own `code`",
                    i + 1,
                    earlier.measurement,
                    j + 1,
                    later.measurement,
                    limit.code
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Persistent state
// ---------------------------------------------------------------------------

/// Where a limit stands for one sensor; absent means normal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Phase {
    /// Beyond the limit since `since_ms`, not yet for `min-duration-s`.
    Pending {
        #[serde(rename = "since-ms")]
        since_ms: u64,
    },
    /// The alarm was raised and has not been cleared.
    Raised,
}

/// One sensor's alarm state, as stored under `state/<sensor>`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct SensorState {
    /// Non-normal limits, by [`Limit::state_key`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    limits: BTreeMap<String, Phase>,
    /// Whether `stale` is raised for the sensor.
    #[serde(default, skip_serializing_if = "is_false")]
    stale: bool,
}

/// For `skip_serializing_if`.
fn is_false(b: &bool) -> bool {
    !*b
}

impl SensorState {
    /// Everything normal: nothing worth storing.
    fn is_normal(&self) -> bool {
        self.limits.is_empty() && !self.stale
    }
}

/// The kv key of `sensor`'s state.
fn state_key(sensor: &str) -> String {
    format!("{STATE_KEY_PREFIX}{sensor}")
}

/// `sensor`'s state from the cache, read from kv the first time. Stored
/// state that no longer decodes counts as normal rather than failing every
/// message.
fn cached<'c>(cache: &'c mut BTreeMap<String, SensorState>, sensor: &str) -> &'c mut SensorState {
    cache.entry(sensor.to_owned()).or_insert_with(|| kv::get_json(&state_key(sensor)).unwrap_or_default())
}

/// Write `sensor`'s state after a transition (deleting it once all normal,
/// so the store does not fill with sensors that are fine).
fn persist(sensor: &str, state: &SensorState) {
    let key = state_key(sensor);
    if state.is_normal() {
        kv::delete(&key);
    } else {
        kv::set_json(&key, state);
    }
}

// ---------------------------------------------------------------------------
// The state machine
// ---------------------------------------------------------------------------

/// An alarm-worthy change of a limit's state.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transition {
    /// Raised after the value was beyond the limit for `held_ms`.
    Raised { held_ms: u64 },
    /// The value recovered past the hysteresis.
    Cleared,
}

/// What `value`, received at `at_ms`, does to a limit in `phase` (`None`
/// is normal): the new phase, and the alarm to emit if any.
fn step(
    phase: Option<Phase>,
    limit: &Limit,
    value: f64,
    at_ms: u64,
    min_duration_ms: u64,
) -> (Option<Phase>, Option<Transition>) {
    let since_ms = match phase {
        Some(Phase::Raised) if limit.has_recovered(value) => {
            return (None, Some(Transition::Cleared));
        }
        // Between the limit and the hysteresis point: stay raised, quietly.
        Some(Phase::Raised) => return (phase, None),
        // A pending that is no longer beyond the limit was a blip.
        _ if !limit.is_beyond(value) => return (None, None),
        Some(Phase::Pending { since_ms }) => since_ms,
        None => at_ms,
    };
    // saturating: a reading received out of order must not underflow.
    let held_ms = at_ms.saturating_sub(since_ms);
    if held_ms >= min_duration_ms {
        (Some(Phase::Raised), Some(Transition::Raised { held_ms }))
    } else {
        (Some(Phase::Pending { since_ms }), None)
    }
}

/// A number for an alarm text: at most three decimals, so float noise such
/// as `38.599999999999994` reads as `38.6`.
fn fmt_num(v: f64) -> String {
    let r = (v * 1000.0).round() / 1000.0;
    // `r + 0.0` turns -0 into 0.
    if r.is_finite() { format!("{}", r + 0.0) } else { format!("{v}") }
}

/// A duration for an alarm text, e.g. `30 s` or `1.5 s`.
fn fmt_secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{} s", ms / 1000) } else { format!("{:.1} s", ms as f64 / 1000.0) }
}

// ---------------------------------------------------------------------------
// The rule
// ---------------------------------------------------------------------------

/// The `alarm` rule: see the [crate documentation](crate).
#[derive(Debug)]
pub struct AlarmRule {
    thresholds: Vec<Threshold>,
    /// `stale-after-s` in ms; `None` disables stale detection.
    stale_after_ms: Option<u64>,
    /// Sensors' states, read lazily from kv.
    cache: BTreeMap<String, SensorState>,
    /// When each sensor was last seen (memory only; see the crate docs).
    last_seen: BTreeMap<String, u64>,
    /// The `known-sensors` list, read from kv on first use.
    known: Option<BTreeSet<String>>,
}

impl AlarmRule {
    /// Note a reading of `sensor` for stale detection.
    fn note_seen(&mut self, sensor: &str, received_ms: u64) {
        if self.stale_after_ms.is_none() {
            return;
        }
        match self.last_seen.get_mut(sensor) {
            // max: a late, out-of-order reading must not make a sensor look staler.
            Some(seen) => *seen = (*seen).max(received_ms),
            None => {
                self.last_seen.insert(sensor.to_owned(), received_ms);
            }
        }
        let known = self.known.get_or_insert_with(|| kv::get_json(KNOWN_SENSORS_KEY).unwrap_or_default());
        if !known.contains(sensor) {
            known.insert(sensor.to_owned());
            kv::set_json(KNOWN_SENSORS_KEY, known);
        }
    }
}

impl Rule for AlarmRule {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let stale_after_ms = match config.stale_after_s {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 => Some(secs_to_ms(s)),
            Some(s) => {
                return Err(format!("`stale-after-s` must be a number of seconds > 0, not {s}"));
            }
        };
        let thresholds = config
            .threshold
            .into_iter()
            .enumerate()
            .map(|(i, c)| Threshold::from_config(i, c))
            .collect::<Result<Vec<_>, _>>()?;
        check_codes_distinct(&thresholds)?;
        if thresholds.is_empty() && stale_after_ms.is_none() {
            edgeward_sdk::warn!("no [[threshold]] and no stale-after-s: this rule will never alarm");
        }
        Ok(AlarmRule {
            thresholds,
            stale_after_ms,
            cache: BTreeMap::new(),
            last_seen: BTreeMap::new(),
            known: None,
        })
    }

    fn process(&mut self, msg: Message) -> Result<Outcome, String> {
        let sensor = msg.sensor();
        let received_ms = msg.received_ms();
        self.note_seen(sensor, received_ms);

        // Clears go before raises, so that when one reading moves a shared
        // code from one direction to the other, the sink sees it end first.
        let mut cleared = Vec::new();
        let mut raised = Vec::new();
        let state = cached(&mut self.cache, sensor);
        let mut changed = false;

        if state.stale {
            state.stale = false;
            changed = true;
            cleared.push(Alarm::cleared(
                sensor,
                STALE_CODE,
                Severity::Warning,
                format!("{sensor} is reporting again"),
            ));
        }

        for t in self.thresholds.iter().filter(|t| t.applies_to(sensor)) {
            let Some(value) = t.value(&msg) else { continue };
            for limit in &t.limits {
                let phase = state.limits.get(&limit.state_key).copied();
                let (next, transition) = step(phase, limit, value, received_ms, t.min_duration_ms);
                if next != phase {
                    changed = true;
                    match next {
                        Some(p) => state.limits.insert(limit.state_key.clone(), p),
                        None => state.limits.remove(&limit.state_key),
                    };
                }
                let Some(transition) = transition else { continue };
                let head = format!("{} {}{}", t.measurement, fmt_num(value), t.unit_of(&msg));
                let (dir, lim) = (limit.direction.word(), fmt_num(limit.value));
                match transition {
                    Transition::Raised { held_ms } => {
                        let held =
                            if held_ms > 0 { format!(" for {}", fmt_secs(held_ms)) } else { String::new() };
                        raised.push(Alarm::raised(
                            sensor,
                            limit.code.as_str(),
                            t.severity,
                            format!("{head} {dir} {lim} on {sensor}{held}"),
                        ));
                    }
                    Transition::Cleared => cleared.push(Alarm::cleared(
                        sensor,
                        limit.code.as_str(),
                        t.severity,
                        format!("{head} no longer {dir} {lim} on {sensor}"),
                    )),
                }
            }
        }

        // One write per reading at most, and only when something changed.
        if changed {
            persist(sensor, state);
        }
        cleared.append(&mut raised);
        Ok(Outcome::forward(msg).with_effects(Effects { alarms: cleared, commands: Vec::new() }))
    }

    fn tick(&mut self, now_ms: u64) -> Result<Effects, String> {
        let Some(stale_after_ms) = self.stale_after_ms else {
            return Ok(Effects::none());
        };
        // Sensors known from before a replacement but not heard from since
        // start their silence now, so a sensor that died meanwhile is caught.
        let known = self.known.get_or_insert_with(|| kv::get_json(KNOWN_SENSORS_KEY).unwrap_or_default());
        for sensor in known.iter() {
            if !self.last_seen.contains_key(sensor) {
                self.last_seen.insert(sensor.clone(), now_ms);
            }
        }

        let mut alarms = Vec::new();
        for (sensor, &seen) in &self.last_seen {
            let silent_ms = now_ms.saturating_sub(seen);
            if silent_ms <= stale_after_ms {
                continue;
            }
            let state = cached(&mut self.cache, sensor);
            if state.stale {
                continue;
            }
            state.stale = true;
            persist(sensor, state);
            alarms.push(Alarm::raised(
                sensor.as_str(),
                STALE_CODE,
                Severity::Warning,
                format!(
                    "no reading from {sensor} for {} (stale after {})",
                    fmt_secs(silent_ms),
                    fmt_secs(stale_after_ms)
                ),
            ));
        }
        Ok(Effects { alarms, commands: Vec::new() })
    }
}

edgeward_sdk::export_rule!(AlarmRule);

#[cfg(test)]
mod tests;
