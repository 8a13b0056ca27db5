//! Simulated sensors: realistic series sent in the same raw format real
//! sensors use (BTHome v2 service data), so they travel the same decode path
//! as real input. Deterministic for a given seed; with `speed = 0` they run
//! as fast as the gateway takes them, driving the gateway's clock.

use crate::clock::Clock;
use crate::config::SimModel;
use crate::decode::bthome;
use crate::decode::{Frame, Payload};
use crate::state::StateStore;
use ed25519_dalek::{Signer as _, SigningKey};
use edgeward_formats::{cose, senml};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::f64::consts::TAU;
use tokio::sync::mpsc;

/// BTHome object ids the simulator sends.
const BATTERY: u8 = 0x01;
const TEMPERATURE: u8 = 0x02;
const HUMIDITY: u8 = 0x03;
const DOOR: u8 = 0x1A;

const DAY_MS: f64 = 86_400_000.0;

/// One simulated sensor.
#[derive(Clone)]
pub struct SimSensor {
    pub name: String,
    pub address: [u8; 6],
    pub model: SimModel,
    pub interval_ms: u64,
    /// A signed sensor signs each reading like the real one: a COSE_Sign1
    /// with its production key, sent as a GATT notification.
    pub signing: Option<SimSigning>,
}

/// What a simulated signed sensor keeps in its "flash".
#[derive(Clone)]
pub struct SimSigning {
    pub key: SigningKey,
    pub kid: String,
    /// Where its counter persists across restarts, as a real sensor's does.
    pub state: StateStore,
}

/// A sensor's series: its model's state and its own random stream.
struct Series {
    sensor: SimSensor,
    rng: ChaCha8Rng,
    packet_id: u8,
    battery: f64,
    /// Wearable: simulated time a fever episode ends, and its peak.
    fever: Option<(u64, f64)>,
    /// Door: open?
    open: bool,
}

impl Series {
    fn new(sensor: SimSensor, seed: u64) -> Self {
        // Each sensor's stream depends on the seed and its name only, so
        // adding a sensor does not change the others' readings.
        let name_hash = sensor
            .name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_hash);
        let battery = rng.random_range(70.0..100.0);
        Series { sensor, rng, packet_id: 0, battery, fever: None, open: false }
    }

    /// Gaussian-ish noise from the sum of uniforms: cheap and bounded.
    fn noise(&mut self, scale: f64) -> f64 {
        let sum: f64 = (0..4).map(|_| self.rng.random_range(-1.0..1.0)).sum();
        sum / 2.0 * scale
    }

    /// The BTHome objects of the reading at simulated time `now_ms`.
    fn objects(&mut self, now_ms: u64) -> Vec<(u8, f64)> {
        self.battery = (self.battery - 0.001).max(1.0);
        let day_phase = (now_ms as f64 % DAY_MS) / DAY_MS;
        match self.sensor.model {
            SimModel::Room => {
                // Coolest near 05:00 UTC, warmest mid-afternoon: a swing wide
                // enough to cross a thermostat's band twice a day.
                let temperature = 19.5 + 2.5 * (TAU * (day_phase - 0.458)).sin() + self.noise(0.15);
                let humidity = 50.0 - 8.0 * (TAU * (day_phase - 0.458)).sin() + self.noise(1.0);
                vec![
                    (BATTERY, self.battery.round()),
                    (TEMPERATURE, round(temperature, 2)),
                    (HUMIDITY, round(humidity.clamp(0.0, 100.0), 2)),
                ]
            }
            SimModel::Wearable => {
                if let Some((ends, _)) = self.fever
                    && now_ms >= ends
                {
                    self.fever = None;
                }
                // About one fever episode per simulated 12 hours.
                let per_reading = self.sensor.interval_ms as f64 / (12.0 * 3_600_000.0);
                if self.fever.is_none() && self.rng.random_bool(per_reading.min(1.0)) {
                    let minutes = self.rng.random_range(20..60);
                    let peak = self.rng.random_range(38.3..39.6);
                    self.fever = Some((now_ms + minutes * 60_000, peak));
                }
                let base = 36.6 + 0.2 * (TAU * (day_phase - 0.7)).sin();
                let temperature = match self.fever {
                    Some((_, peak)) => peak + self.noise(0.1),
                    None => base + self.noise(0.08),
                };
                vec![(BATTERY, self.battery.round()), (TEMPERATURE, round(temperature, 2))]
            }
            SimModel::Door => {
                if self.rng.random_bool(0.5) {
                    self.open = !self.open;
                }
                vec![(BATTERY, self.battery.round()), (DOOR, f64::from(u8::from(self.open)))]
            }
        }
    }

    fn frame(&mut self, now_ms: u64) -> Frame {
        self.packet_id = self.packet_id.wrapping_add(1);
        let objects = self.objects(now_ms);
        let payload = match &self.sensor.signing {
            None => Payload::ServiceData {
                uuid16: bthome::SERVICE_UUID16,
                data: bthome::encode(&objects, Some(self.packet_id))
                    .expect("simulated values are within BTHome's ranges"),
            },
            Some(signing) => {
                Payload::Notification { data: signed_reading(signing, &self.sensor, now_ms, &objects) }
            }
        };
        Frame {
            address: self.sensor.address,
            rssi: Some(-60 + self.noise(6.0) as i16),
            received_ms: now_ms,
            entered: std::time::Instant::now(),
            payload,
        }
    }
}

/// The reading as a signed sensor sends it: SenML-CBOR with its own time,
/// in a COSE_Sign1 under its persisted counter.
fn signed_reading(signing: &SimSigning, sensor: &SimSensor, now_ms: u64, objects: &[(u8, f64)]) -> Vec<u8> {
    let measurements: Vec<senml::Measurement> = objects
        .iter()
        .map(|&(id, value)| {
            let (name, unit) = match id {
                BATTERY => ("battery", "%EL"),
                TEMPERATURE => ("temperature", "Cel"),
                DOOR => ("door", ""),
                _ => ("humidity", "%RH"),
            };
            senml::Measurement { name: name.into(), unit: unit.into(), value }
        })
        .collect();
    let mac = crate::config::format_mac(&sensor.address);
    let payload = senml::encode(&mac, now_ms, &measurements);
    // A sensor whose counter store fails must not reuse a counter: skip ahead instead.
    let seq = signing.state.sim_next_counter(&sensor.name).unwrap_or_else(|e| {
        tracing::error!(sensor = %sensor.name, "simulated sensor counter: {e}");
        now_ms
    });
    cose::build_sensor_sign1(signing.kid.as_bytes(), seq, &payload, |tbs| {
        Ok::<_, std::convert::Infallible>(signing.key.sign(tbs).to_bytes().to_vec())
    })
    .expect("a well-formed sensor reading")
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Run the simulated `sensors` from `start_ms` until `end_ms` (simulated
/// time; `None`: forever), sending frames to `frames`. Returns when done or
/// when the receiver is gone.
pub async fn run(
    sensors: Vec<SimSensor>,
    seed: u64,
    clock: Clock,
    start_ms: u64,
    end_ms: Option<u64>,
    frames: mpsc::Sender<Frame>,
) {
    let mut series: Vec<Series> = sensors.into_iter().map(|s| Series::new(s, seed)).collect();
    // Earliest next reading first; each sensor starts at a random point of its interval.
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = series
        .iter_mut()
        .enumerate()
        .map(|(i, s)| {
            let offset = s.rng.random_range(0..s.sensor.interval_ms.max(1));
            Reverse((start_ms + offset, i))
        })
        .collect();
    while let Some(Reverse((due_ms, i))) = queue.pop() {
        if end_ms.is_some_and(|end| due_ms > end) {
            break;
        }
        match clock.real_wait_until(due_ms) {
            Some(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
            Some(_) => {}
            None => clock.advance_to(due_ms),
        }
        let frame = series[i].frame(due_ms);
        if frames.send(frame).await.is_err() {
            return;
        }
        queue.push(Reverse((due_ms + series[i].sensor.interval_ms, i)));
    }
    tracing::info!("simulation finished");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(model: SimModel) -> SimSensor {
        SimSensor { name: "s".into(), address: [1, 2, 3, 4, 5, 6], model, interval_ms: 60_000, signing: None }
    }

    async fn collect(model: SimModel, seed: u64, hours: u64) -> Vec<Frame> {
        let (tx, mut rx) = mpsc::channel(100_000);
        let clock = Clock::manual(0);
        run(vec![sensor(model)], seed, clock, 0, Some(hours * 3_600_000), tx).await;
        let mut frames = Vec::new();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        frames
    }

    fn temperatures(frames: &[Frame]) -> Vec<f64> {
        frames
            .iter()
            .map(|f| {
                let Payload::ServiceData { data, .. } = &f.payload else {
                    panic!("unsigned sensors advertise")
                };
                let packet = bthome::decode(data, None, None).unwrap();
                packet.values.iter().find(|v| v.name == "temperature").unwrap().value
            })
            .collect()
    }

    /// The same seed gives the same frames; another seed gives others.
    #[tokio::test]
    async fn deterministic_per_seed() {
        let a = temperatures(&collect(SimModel::Room, 7, 2).await);
        let b = temperatures(&collect(SimModel::Room, 7, 2).await);
        let c = temperatures(&collect(SimModel::Room, 8, 2).await);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 120);
    }

    /// A room swings across a thermostat's band over a day.
    #[tokio::test]
    async fn room_follows_a_daily_curve() {
        let t = temperatures(&collect(SimModel::Room, 1, 24).await);
        let (min, max) = t.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        assert!(min < 17.8 && max > 21.2, "min {min} max {max}");
    }

    /// A door sensor reports `door` as 0 or 1, and is seen both open and closed.
    #[tokio::test]
    async fn door_opens_and_closes() {
        let states: Vec<f64> = collect(SimModel::Door, 5, 24)
            .await
            .iter()
            .map(|f| {
                let Payload::ServiceData { data, .. } = &f.payload else { panic!("advertised") };
                let packet = bthome::decode(data, None, None).unwrap();
                let door = packet.values.iter().find(|v| v.name == "door").unwrap();
                assert_eq!(door.unit, "");
                door.value
            })
            .collect();
        assert!(states.iter().all(|v| *v == 0.0 || *v == 1.0), "{states:?}");
        assert!(states.contains(&0.0) && states.contains(&1.0), "{states:?}");
    }

    /// A wearable has fever episodes over a few days, and normal readings otherwise.
    #[tokio::test]
    async fn wearable_has_fever_episodes() {
        let t = temperatures(&collect(SimModel::Wearable, 3, 72).await);
        let fever = t.iter().filter(|v| **v > 38.0).count();
        let normal = t.iter().filter(|v| (36.0..37.5).contains(*v)).count();
        assert!(fever > 0, "no fever in 3 days");
        assert!(normal > t.len() / 2, "mostly normal: {normal} of {}", t.len());
    }
}
