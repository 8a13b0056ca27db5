//! `heating`: a thermostat for one or more heating zones.
//!
//! Each zone is driven by the `temperature` (in `Cel`) of one or more
//! sensors and switches one actuator on or off through commands.
//!
//! # Configuration
//!
//! ```toml
//! utc-offset-minutes = 60        # local time for schedules (default 0)
//!
//! [[zone]]
//! name = "living-room"           # required, unique
//! sensors = ["living-room"]      # required: the latest reading of any of them wins
//! actuator = "heating/living-room"  # required, one zone per actuator
//! setpoint = 20.0                # °C when the schedule is empty (default 20.0)
//! schedule = [ { at = "06:30", setpoint = 21.0 }, { at = "22:00", setpoint = 17.0 } ]
//! hysteresis = 0.5               # band width in °C (default 0.5, >= 0)
//! min-on-s = 300                 # stay on at least this long (default 0)
//! min-off-s = 300                # stay off at least this long (default 0)
//! stale-after-s = 900            # failsafe after this long without a reading (default 900)
//! failsafe = "off"               # "off" or "on" (default "off")
//! ```
//!
//! Unknown keys are refused (naming the key), as are duplicate zone names,
//! two zones on one actuator, times not in `HH:MM` form, duplicate schedule
//! times, empty `sensors`, negative `hysteresis` or times, and a
//! `stale-after-s` of 0.
//!
//! `utc-offset-minutes` is a fixed offset (within ±14 h): the rule knows
//! nothing of daylight saving time, so an operator who wants schedules to
//! follow it changes the offset twice a year (a configuration reload).
//!
//! # Behaviour
//!
//! Time is the reading's `received-ms` in `process` and the `now-ms`
//! argument in `tick`, both on the gateway's clock.
//!
//! * **Setpoint.** The schedule repeats daily: the entry with the latest `at`
//!   not after the local time of day applies; before the day's first entry
//!   the previous day's last entry still does. Without a schedule, `setpoint`.
//! * **Hysteresis.** Heating switches on when the temperature is below
//!   `setpoint - hysteresis/2` and off when it is above
//!   `setpoint + hysteresis/2`; inside the band the state is kept. The very
//!   first decision of a zone (state unknown) always commands a state, so the
//!   actuator's state becomes known: inside the band that is on when the
//!   temperature is below the setpoint, off otherwise.
//! * **Minimum times.** A switch is held back until the current state has
//!   lasted `min-on-s` / `min-off-s`; `tick` re-evaluates with the last known
//!   temperature, so a held-back switch happens at the first reading or tick
//!   after the minimum has passed.
//! * **Commands** go out only when the commanded state changes, to the
//!   zone's actuator, with a JSON payload such as
//!   `{"state":"on","zone":"living-room","setpoint":21.0,"temperature":19.6,"reason":"below setpoint"}`
//!   (`temperature` is `null` in a failsafe command).
//! * **Failsafe.** When a zone's newest reading is older than
//!   `stale-after-s` at a tick, the failsafe state is commanded at once
//!   (minimum times ignored: safety first, and the command is sent even if
//!   the actuator should already be in that state), and the alarm
//!   `heating-failsafe` (warning) is raised about the zone's first sensor;
//!   both once per stale episode. The next reading clears the alarm and
//!   normal control resumes (minimum times apply again).
//! * Every message is forwarded unchanged. Non-finite temperatures are ignored.
//!
//! # State
//!
//! Each zone's commanded state, when it last switched and whether it is in
//! failsafe are kept in kv under `zone/<name>` as JSON
//! (`{"actuator":…,"state":"on","switched_ms":…,"failsafe":false}`), written
//! only on transitions, so a replacement instance (after a trap or reload)
//! neither repeats a command nor forgets a minimum time or an open failsafe
//! alarm. A stored state for a different actuator is ignored. The last
//! temperature is kept in memory only: a replacement instance counts
//! staleness from its first tick or reading.

mod config;
#[cfg(test)]
mod tests;

pub use config::{Config, HeatState, ScheduleEntry, ZoneConfig};

use config::ZoneSettings;
use edgeward_sdk::{Alarm, Command, Effects, Message, Outcome, Rule, Severity, kv};
use serde::{Deserialize, Serialize};

/// The alarm code raised while a zone is in failsafe.
pub const FAILSAFE_ALARM: &str = "heating-failsafe";

/// The rule: every configured zone and its control state.
pub struct Thermostat {
    utc_offset_minutes: i32,
    zones: Vec<Zone>,
}

/// What survives an instance replacement, stored in kv under `zone/<name>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Control {
    /// The actuator the state was commanded to: a state stored for another
    /// actuator (the configuration changed) says nothing about this one.
    actuator: String,
    /// The state last commanded.
    state: HeatState,
    /// When the commanded state last changed (gateway ms).
    switched_ms: u64,
    /// Whether the zone is in failsafe (its alarm is raised).
    failsafe: bool,
}

/// The command payload.
#[derive(Serialize)]
struct Payload<'a> {
    state: HeatState,
    zone: &'a str,
    setpoint: f64,
    temperature: Option<f64>,
    reason: &'a str,
}

/// One zone: its settings, its persisted control state and what it last measured.
struct Zone {
    cfg: ZoneSettings,
    /// `None` until the first command (nothing known about the actuator).
    control: Option<Control>,
    /// The latest temperature (memory only).
    temperature: Option<f64>,
    /// The newest reading's time, or the first tick's while there was none:
    /// staleness counts from here.
    fresh_ms: Option<u64>,
    /// A held-back switch was already logged (so it is logged once, not per reading).
    held_back_logged: bool,
}

impl Zone {
    fn kv_key(name: &str) -> String {
        format!("zone/{name}")
    }

    /// A zone with its state restored from kv, if there is one for its actuator.
    fn load(cfg: ZoneSettings) -> Zone {
        let control = kv::get_json::<Control>(&Zone::kv_key(&cfg.name)).filter(|c| {
            let same = c.actuator == cfg.actuator;
            if !same {
                edgeward_sdk::info!(
                    "zone {}: stored state is for actuator {}, not {}; starting afresh",
                    cfg.name,
                    c.actuator,
                    cfg.actuator
                );
            }
            same
        });
        Zone { cfg, control, temperature: None, fresh_ms: None, held_back_logged: false }
    }

    fn persist(&self) {
        if let Some(control) = &self.control {
            kv::set_json(&Zone::kv_key(&self.cfg.name), control);
        }
    }

    fn in_failsafe(&self) -> bool {
        self.control.as_ref().is_some_and(|c| c.failsafe)
    }

    fn alarm_sensor(&self) -> &str {
        // Validation guarantees at least one sensor.
        self.cfg.sensors.first().map_or("", String::as_str)
    }

    /// A temperature reading for this zone at `now_ms`.
    fn on_reading(&mut self, temperature: f64, now_ms: u64, utc_offset: i32, fx: &mut Effects) {
        self.temperature = Some(temperature);
        self.fresh_ms = Some(now_ms);
        if let Some(control) = self.control.as_mut().filter(|c| c.failsafe) {
            control.failsafe = false;
            self.persist();
            let text = format!("heating zone {}: temperature readings resumed", self.cfg.name);
            edgeward_sdk::info!("{text}; back to normal control");
            fx.alarms.push(Alarm::cleared(self.alarm_sensor(), FAILSAFE_ALARM, Severity::Warning, text));
        }
        self.control_step(now_ms, utc_offset, fx);
    }

    /// The passage of time: failsafe when stale, otherwise re-evaluate.
    fn on_tick(&mut self, now_ms: u64, utc_offset: i32, fx: &mut Effects) {
        let fresh_ms = *self.fresh_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(fresh_ms) > self.cfg.stale_after_ms {
            self.enter_failsafe(now_ms, utc_offset, fx);
        } else {
            self.control_step(now_ms, utc_offset, fx);
        }
    }

    fn enter_failsafe(&mut self, now_ms: u64, utc_offset: i32, fx: &mut Effects) {
        if self.in_failsafe() {
            return; // once per stale episode
        }
        let state = self.cfg.failsafe;
        let seconds = self.cfg.stale_after_ms / 1000;
        let reason = format!("failsafe: no reading for {seconds} s");
        let setpoint = self.cfg.setpoint_at(now_ms, utc_offset);
        self.command(state, now_ms, setpoint, None, &reason, true, fx);
        let text = format!(
            "heating zone {}: no temperature reading for {seconds} s, heating commanded {} (failsafe)",
            self.cfg.name,
            state.as_str()
        );
        edgeward_sdk::warn!("{text}");
        fx.alarms.push(Alarm::raised(self.alarm_sensor(), FAILSAFE_ALARM, Severity::Warning, text));
    }

    /// Normal control with the last known temperature, if any.
    fn control_step(&mut self, now_ms: u64, utc_offset: i32, fx: &mut Effects) {
        let Some(temperature) = self.temperature else {
            return;
        };
        if self.in_failsafe() {
            return; // only a reading ends the failsafe
        }
        let setpoint = self.cfg.setpoint_at(now_ms, utc_offset);
        let current = self.control.as_ref().map(|c| c.state);
        let (wanted, reason) = decide(current, temperature, setpoint, self.cfg.hysteresis);
        if let Some(control) = self.control.as_mut() {
            if control.state == wanted {
                self.held_back_logged = false;
                return;
            }
            // After the clock stepped backwards, count the minimum time from
            // now rather than hold the switch back until the clock catches up.
            // (Memory only: not worth a kv write.)
            control.switched_ms = control.switched_ms.min(now_ms);
            let minimum = match control.state {
                HeatState::On => self.cfg.min_on_ms,
                HeatState::Off => self.cfg.min_off_ms,
            };
            let due_ms = control.switched_ms.saturating_add(minimum);
            if now_ms < due_ms {
                if !self.held_back_logged {
                    self.held_back_logged = true;
                    edgeward_sdk::debug!(
                        "zone {}: switching {} ({reason}) held back until the minimum {} time has passed ({} s left)",
                        self.cfg.name,
                        wanted.as_str(),
                        control.state.as_str(),
                        (due_ms - now_ms).div_ceil(1000)
                    );
                }
                return;
            }
        }
        self.command(wanted, now_ms, setpoint, Some(temperature), reason, false, fx);
    }

    /// Command `state`, record and persist the transition.
    #[allow(clippy::too_many_arguments)] // all of it goes into the command or the state
    fn command(
        &mut self,
        state: HeatState,
        now_ms: u64,
        setpoint: f64,
        temperature: Option<f64>,
        reason: &str,
        failsafe: bool,
        fx: &mut Effects,
    ) {
        // Re-commanding the same state (failsafe) is not a switch: the
        // minimum time keeps counting from the real one.
        let switched_ms = match &self.control {
            Some(c) if c.state == state => c.switched_ms,
            _ => now_ms,
        };
        self.control = Some(Control { actuator: self.cfg.actuator.clone(), state, switched_ms, failsafe });
        self.held_back_logged = false;
        self.persist();
        let payload = Payload { state, zone: &self.cfg.name, setpoint, temperature, reason };
        // Serializing this struct cannot fail (non-finite floats become null);
        // the fallback only keeps the rule panic-free.
        let payload = serde_json::to_string(&payload)
            .unwrap_or_else(|_| format!("{{\"state\":\"{}\"}}", state.as_str()));
        edgeward_sdk::info!(
            "zone {}: heating {} ({reason}) via {}",
            self.cfg.name,
            state.as_str(),
            self.cfg.actuator
        );
        fx.commands.push(Command::new(self.cfg.actuator.clone(), payload));
    }
}

/// The state wanted for `temperature` against `setpoint`, and why.
fn decide(
    current: Option<HeatState>,
    temperature: f64,
    setpoint: f64,
    hysteresis: f64,
) -> (HeatState, &'static str) {
    let half = hysteresis / 2.0;
    if temperature < setpoint - half {
        (HeatState::On, "below setpoint")
    } else if temperature > setpoint + half {
        (HeatState::Off, "above setpoint")
    } else {
        match current {
            Some(state) => (state, "within band"),
            // Unknown state: pick a side so the actuator's state becomes known.
            None if temperature < setpoint => (HeatState::On, "within band, below setpoint"),
            None => (HeatState::Off, "within band, not below setpoint"),
        }
    }
}

impl Rule for Thermostat {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let settings = config.validate()?;
        let zones = settings.zones.into_iter().map(Zone::load).collect();
        Ok(Thermostat { utc_offset_minutes: settings.utc_offset_minutes, zones })
    }

    fn process(&mut self, msg: Message) -> Result<Outcome, String> {
        let mut fx = Effects::none();
        if let Some(temperature) = msg.value_in("temperature", "Cel") {
            let (sensor, now_ms) = (msg.sensor(), msg.received_ms());
            for zone in self.zones.iter_mut() {
                if zone.cfg.members.contains(sensor) {
                    zone.on_reading(temperature, now_ms, self.utc_offset_minutes, &mut fx);
                }
            }
        }
        Ok(Outcome::forward(msg).with_effects(fx))
    }

    fn tick(&mut self, now_ms: u64) -> Result<Effects, String> {
        let mut fx = Effects::none();
        for zone in self.zones.iter_mut() {
            zone.on_tick(now_ms, self.utc_offset_minutes, &mut fx);
        }
        Ok(fx)
    }
}

edgeward_sdk::export_rule!(Thermostat);
