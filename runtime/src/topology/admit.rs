//! Admission: raw frames become numbered messages for their sensors'
//! profiles. A frame is decoded, a signed reading's signature verified and
//! its counter checked against the replay guard; what fails is counted and
//! logged with the sensor and the reason, and goes no further.
//!
//! Frames are admitted in batches of whatever has queued up (never waiting
//! for more), so light traffic gets no added latency, while under load the
//! signatures of a batch are verified together (`decode::verify_all`, about
//! half the cost each) and its counters recorded in one commit.

use super::SensorEntry;
use crate::clock::wall_ms;
use crate::decode::{DecodeError, Frame, SensorRef, decode_unverified, verify_all};
use crate::pipeline::Message;
use crate::pipeline::bindings::Authenticity;
use crate::state::StateStore;
use crate::telemetry::Counters;
use crate::trust::replay::CounterWidth;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The most frames admitted together.
pub const ADMIT_BATCH: usize = 64;

/// A message ready for its sensor's profile.
pub struct Admitted<'a> {
    pub sensor: &'a SensorEntry,
    /// Unique per gateway run: `GATEWAY-BOOT-N`.
    pub id: String,
    /// When its frame entered the gateway.
    pub entered: Instant,
    pub message: Message,
}

/// Decodes, verifies and numbers frames; see the module documentation.
pub struct Admission {
    state: StateStore,
    ids: MessageIds,
    counters: Arc<Counters>,
}

impl Admission {
    pub fn new(state: StateStore, gateway: &str, counters: Arc<Counters>) -> Self {
        Admission { state, ids: MessageIds::new(gateway), counters }
    }

    /// Admit `frames` (in order) from the sensors of `sensors`. Blocks on
    /// the state store for the replay guard.
    pub fn admit<'a>(
        &self,
        frames: &[Frame],
        sensors: &'a HashMap<[u8; 6], SensorEntry>,
    ) -> Vec<Admitted<'a>> {
        let counters = &self.counters;
        Counters::add(&counters.frames, frames.len() as u64);
        let mut decoded: Vec<Option<(&'a SensorEntry, Instant, Message)>> = Vec::with_capacity(frames.len());
        let (mut checks, mut checked) = (Vec::new(), Vec::new());
        for frame in frames {
            let Some(sensor) = sensors.get(&frame.address) else {
                Counters::add(&counters.unknown_sender, 1);
                continue;
            };
            match decode_unverified(frame, &sensor.decoding()) {
                Ok((message, check)) => {
                    if let Some(check) = check {
                        checks.push(check);
                        checked.push(decoded.len());
                    }
                    decoded.push(Some((sensor, frame.entered, message)));
                }
                Err(e) => self.reject(sensor, &e),
            }
        }
        for (valid, &i) in verify_all(&checks).into_iter().zip(&checked) {
            if !valid && let Some((sensor, ..)) = decoded[i].take() {
                self.reject(sensor, &DecodeError::BadSignature);
            }
        }
        self.guard_replays(&mut decoded);
        decoded
            .into_iter()
            .flatten()
            .map(|(sensor, entered, message)| Admitted { sensor, id: self.ids.next(), entered, message })
            .collect()
    }

    /// Check the counters of verified readings (signed, or encrypted
    /// BTHome) and remove the replays.
    fn guard_replays(&self, decoded: &mut [Option<(&SensorEntry, Instant, Message)>]) {
        let guarded: Vec<(usize, (&str, u64, CounterWidth))> = decoded
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| {
                let (sensor, _, message) = entry.as_ref()?;
                let width = match message.reading.authenticity {
                    Authenticity::SensorSigned => CounterWidth::Bits64,
                    Authenticity::MicVerified => CounterWidth::Bits32,
                    _ => return None,
                };
                Some((i, (sensor.name.as_str(), message.reading.seq?, width)))
            })
            .collect();
        if guarded.is_empty() {
            return;
        }
        let counters: Vec<_> = guarded.iter().map(|(_, counter)| *counter).collect();
        match self.state.replay_accept_all(&counters) {
            Ok(verdicts) => {
                for ((i, _), verdict) in guarded.iter().zip(verdicts) {
                    if let Err(replay) = verdict
                        && let Some((sensor, ..)) = decoded[*i].take()
                    {
                        Counters::add(&self.counters.replays, 1);
                        tracing::warn!(sensor = %sensor.name, reason = "replay", "frame rejected: {replay}");
                    }
                }
            }
            Err(e) => {
                for (i, _) in &guarded {
                    if let Some((sensor, ..)) = decoded[*i].take() {
                        tracing::error!(sensor = %sensor.name, "replay guard unavailable, frame rejected: {e}");
                    }
                }
            }
        }
    }

    fn reject(&self, sensor: &SensorEntry, e: &DecodeError) {
        Counters::add(&self.counters.decode_errors, 1);
        tracing::warn!(sensor = %sensor.name, reason = e.kind(), "frame rejected: {e}");
    }
}

impl SensorEntry {
    /// What the decoder needs to know of this sensor.
    fn decoding(&self) -> SensorRef<'_> {
        SensorRef {
            name: &self.name,
            address: &self.address,
            format: self.format,
            kid: &self.kid,
            key: self.key.as_ref(),
            bindkey: self.bindkey.as_ref(),
        }
    }
}

/// Unique message ids, `GATEWAY-BOOT-N`, so consumers can deduplicate.
struct MessageIds {
    prefix: String,
    next: AtomicU64,
}

impl MessageIds {
    fn new(gateway: &str) -> Self {
        // Distinguishes restarts without persisting a counter.
        let boot = (wall_ms() ^ (u64::from(std::process::id()) << 40)) & 0xffff_ffff_ffff;
        MessageIds { prefix: format!("{gateway}-{boot:012x}"), next: AtomicU64::new(1) }
    }

    fn next(&self) -> String {
        // Fixed width: the id travels in sealed envelopes, whose sizes must not vary.
        format!("{}-{:010}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }
}
