//! The rule's configuration as written in TOML, and its validation into the
//! settings the thermostat runs on.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};

/// The `heating` rule's configuration table (`[module.NAME.config]`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Minutes added to UTC to get the local time the schedules are written
    /// in. A fixed offset: daylight saving time is the operator's business.
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// The zones, one `[[zone]]` table each. At least one is required.
    #[serde(default)]
    pub zone: Vec<ZoneConfig>,
}

/// One heating zone: the sensors that measure it and the actuator that heats it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone's name, unique among the zones; also its state's kv key.
    pub name: String,
    /// Sensors whose `temperature` in `Cel` drives the zone; the latest reading wins.
    pub sensors: Vec<String>,
    /// The actuator the zone's commands go to.
    pub actuator: String,
    /// The setpoint (°C) when the schedule is empty.
    #[serde(default = "default_setpoint")]
    pub setpoint: f64,
    /// Daily setpoint changes, in local time.
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    /// Width (°C) of the band around the setpoint in which nothing switches.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: f64,
    /// Once switched on, stay on at least this many seconds.
    #[serde(default)]
    pub min_on_s: i64,
    /// Once switched off, stay off at least this many seconds.
    #[serde(default)]
    pub min_off_s: i64,
    /// Seconds without a reading after which the zone goes to its failsafe state.
    #[serde(default = "default_stale_after_s")]
    pub stale_after_s: i64,
    /// The state commanded while the zone's readings are stale.
    #[serde(default)]
    pub failsafe: HeatState,
}

/// A daily schedule entry: from `at` (local `HH:MM`) on, the setpoint is `setpoint`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ScheduleEntry {
    /// Local time of day, `HH:MM` in 24-hour form.
    pub at: String,
    /// The setpoint (°C) from then on.
    pub setpoint: f64,
}

/// The state of a heating actuator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeatState {
    /// Not heating: the default failsafe.
    #[default]
    Off,
    /// Heating.
    On,
}

impl HeatState {
    /// `"on"` or `"off"`, as in the configuration and the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            HeatState::Off => "off",
            HeatState::On => "on",
        }
    }
}

fn default_setpoint() -> f64 {
    20.0
}

fn default_hysteresis() -> f64 {
    0.5
}

fn default_stale_after_s() -> i64 {
    900
}

/// Real-world UTC offsets lie within ±14 hours; anything beyond is a typo.
const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;

/// The validated configuration.
#[derive(Debug)]
pub(crate) struct Settings {
    pub utc_offset_minutes: i32,
    pub zones: Vec<ZoneSettings>,
}

/// One validated zone; times in milliseconds, the schedule sorted.
#[derive(Debug)]
pub(crate) struct ZoneSettings {
    pub name: String,
    /// As listed; the first names the zone's stale alarms.
    pub sensors: Vec<String>,
    /// The same names, to find a reading's zones without a scan (a zone of a
    /// large building lists hundreds).
    pub members: BTreeSet<String>,
    pub actuator: String,
    pub setpoint: f64,
    /// `(minute of the local day, setpoint)`, sorted by minute, minutes unique.
    pub schedule: Vec<(u16, f64)>,
    pub hysteresis: f64,
    pub min_on_ms: u64,
    pub min_off_ms: u64,
    pub stale_after_ms: u64,
    pub failsafe: HeatState,
}

impl ZoneSettings {
    /// The setpoint at `now_ms` (gateway time), following the schedule in local time.
    pub fn setpoint_at(&self, now_ms: u64, utc_offset_minutes: i32) -> f64 {
        let minute = local_minute_of_day(now_ms, utc_offset_minutes);
        self.schedule
            .iter()
            .rev()
            .find(|(at, _)| *at <= minute)
            // Before the day's first entry, the previous day's last one still applies.
            .or(self.schedule.last())
            .map_or(self.setpoint, |(_, setpoint)| *setpoint)
    }
}

/// The minute of the local day (0..1440) at `now_ms`.
pub(crate) fn local_minute_of_day(now_ms: u64, utc_offset_minutes: i32) -> u16 {
    // u64::MAX / 60_000 fits an i64 comfortably, so nothing here can overflow.
    let minutes = (now_ms / 60_000) as i64 + i64::from(utc_offset_minutes);
    minutes.rem_euclid(24 * 60) as u16
}

/// `"HH:MM"` (24-hour, two digits each) as a minute of the day.
pub(crate) fn parse_time_of_day(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// Whole seconds from the configuration as milliseconds, refusing negatives.
fn seconds_to_ms(zone: &str, key: &str, seconds: i64) -> Result<u64, String> {
    u64::try_from(seconds)
        .map(|s| s.saturating_mul(1000))
        .map_err(|_| format!("zone \"{zone}\": `{key}` must not be negative (got {seconds})"))
}

impl Config {
    /// Check everything serde could not, with messages that name the zone.
    pub(crate) fn validate(self) -> Result<Settings, String> {
        if !(-MAX_UTC_OFFSET_MINUTES..=MAX_UTC_OFFSET_MINUTES).contains(&self.utc_offset_minutes) {
            return Err(format!(
                "`utc-offset-minutes` must lie within ±{MAX_UTC_OFFSET_MINUTES} (got {})",
                self.utc_offset_minutes
            ));
        }
        if self.zone.is_empty() {
            return Err("no zones configured: add at least one `[[zone]]` table".to_string());
        }
        let mut names = HashSet::new();
        let mut actuators: Vec<(String, String)> = Vec::new();
        let mut zones = Vec::with_capacity(self.zone.len());
        for (index, zone) in self.zone.into_iter().enumerate() {
            let zone = zone.validate(index)?;
            if !names.insert(zone.name.clone()) {
                return Err(format!("zone \"{}\": the name is used by another zone", zone.name));
            }
            // Two zones driving one actuator would fight over it.
            if let Some((other, _)) = actuators.iter().find(|(_, a)| *a == zone.actuator) {
                return Err(format!(
                    "zone \"{}\": actuator \"{}\" is already driven by zone \"{other}\"",
                    zone.name, zone.actuator
                ));
            }
            actuators.push((zone.name.clone(), zone.actuator.clone()));
            zones.push(zone);
        }
        Ok(Settings { utc_offset_minutes: self.utc_offset_minutes, zones })
    }
}

impl ZoneConfig {
    fn validate(self, index: usize) -> Result<ZoneSettings, String> {
        if self.name.trim().is_empty() {
            return Err(format!("zone #{}: `name` must not be empty", index + 1));
        }
        let name = self.name;
        if self.sensors.is_empty() {
            return Err(format!("zone \"{name}\": `sensors` must list at least one sensor"));
        }
        if self.sensors.iter().any(|s| s.trim().is_empty()) {
            return Err(format!("zone \"{name}\": `sensors` contains an empty name"));
        }
        if self.actuator.trim().is_empty() {
            return Err(format!("zone \"{name}\": `actuator` must not be empty"));
        }
        if !self.setpoint.is_finite() {
            return Err(format!("zone \"{name}\": `setpoint` must be a finite number"));
        }
        if !self.hysteresis.is_finite() || self.hysteresis < 0.0 {
            return Err(format!(
                "zone \"{name}\": `hysteresis` must be a finite number >= 0 (got {})",
                self.hysteresis
            ));
        }
        let mut schedule = Vec::with_capacity(self.schedule.len());
        for entry in &self.schedule {
            let Some(minute) = parse_time_of_day(&entry.at) else {
                return Err(format!(
                    "zone \"{name}\": schedule time \"{}\" is not a time of day in \"HH:MM\" (24-hour) form",
                    entry.at
                ));
            };
            if !entry.setpoint.is_finite() {
                return Err(format!(
                    "zone \"{name}\": the setpoint at \"{}\" must be a finite number",
                    entry.at
                ));
            }
            if schedule.iter().any(|(m, _)| *m == minute) {
                return Err(format!(
                    "zone \"{name}\": schedule time \"{}\" appears more than once",
                    entry.at
                ));
            }
            schedule.push((minute, entry.setpoint));
        }
        schedule.sort_by_key(|(minute, _)| *minute);
        let min_on_ms = seconds_to_ms(&name, "min-on-s", self.min_on_s)?;
        let min_off_ms = seconds_to_ms(&name, "min-off-s", self.min_off_s)?;
        let stale_after_ms = seconds_to_ms(&name, "stale-after-s", self.stale_after_s)?;
        if stale_after_ms == 0 {
            return Err(format!("zone \"{name}\": `stale-after-s` must be greater than 0"));
        }
        Ok(ZoneSettings {
            name,
            members: self.sensors.iter().cloned().collect(),
            sensors: self.sensors,
            actuator: self.actuator,
            setpoint: self.setpoint,
            schedule,
            hysteresis: self.hysteresis,
            min_on_ms,
            min_off_ms,
            stale_after_ms,
            failsafe: self.failsafe,
        })
    }
}
