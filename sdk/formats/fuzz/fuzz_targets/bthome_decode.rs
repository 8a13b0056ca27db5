//! Any bytes into the BTHome v2 decoder, without and with a fixed bindkey and MAC address: it
//! must return, never panic, and never report more values than the input has bytes.
//!
//! Decoded values carry names, not object ids, so they cannot be fed back to `encode` as they
//! are. The round trip is checked the other way: the same bytes, read as (object id, value)
//! pairs, go through `encode` and `encode_encrypted`; whatever those accept must decode again
//! (with the same key and MAC) to as many values, the same packet id and the same counter.
#![no_main]

use edgeward_formats::bthome;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 16] =
    [0x23, 0x1d, 0x39, 0xc1, 0xd7, 0xcc, 0x1a, 0xb1, 0xae, 0xe2, 0x24, 0xcd, 0x09, 0x6d, 0xb9, 0x32];
const MAC: [u8; 6] = [0x54, 0x48, 0xE6, 0x8F, 0x80, 0xA5];

fuzz_target!(|data: &[u8]| {
    let plain = bthome::decode(data, None, None);
    let keyed = bthome::decode(data, Some(&KEY), Some(MAC));
    for packet in [&plain, &keyed].into_iter().flatten() {
        assert!(packet.values.len() <= data.len());
    }
    // Unencrypted data ignores the key and MAC.
    if let Ok(packet) = &plain {
        assert!(!packet.encrypted);
        assert_eq!(&keyed, &plain);
    }

    // The same bytes as values to encode: 1 byte of object id, 2 of a signed raw number.
    let values: Vec<(u8, f64)> = data
        .get(1..)
        .unwrap_or_default()
        .chunks_exact(3)
        .map(|c| (c[0], f64::from(i16::from_le_bytes([c[1], c[2]])) / 10.0))
        .collect();
    let packet_id = data.first().copied().filter(|b| b & 1 == 1);
    if let Ok(encoded) = bthome::encode(&values, packet_id) {
        let packet = bthome::decode(&encoded, None, None).expect("encode's output decodes");
        assert_eq!(packet.values.len(), values.len());
        assert_eq!(packet.packet_id, packet_id);
        assert!(!packet.encrypted);
    }
    if let Ok(encoded) = bthome::encode_encrypted(&values, packet_id, &KEY, MAC, 7) {
        let packet =
            bthome::decode(&encoded, Some(&KEY), Some(MAC)).expect("encode_encrypted's output decodes");
        assert_eq!(packet.values.len(), values.len());
        assert_eq!(packet.packet_id, packet_id);
        assert_eq!(packet.counter, Some(7));
        assert!(packet.encrypted);
    }
});
