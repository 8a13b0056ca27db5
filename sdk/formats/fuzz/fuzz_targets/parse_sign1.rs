//! Any bytes into the COSE_Sign1 parser (what a signed sensor or a broker
//! hands us): it must return, never panic or allocate without bound; what it
//! accepts must survive a countersignature and parse again intact.
#![no_main]

use edgeward_formats::cose;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = cose::parse_sign1(data) {
        let _ = parsed.tbs();
        for cs in parsed.countersignatures() {
            let _ = cs.tbs();
        }
        let signed = cose::countersign(data, b"gw", 1, &[], |_| Ok::<_, ()>(vec![0u8; 64]));
        if let Ok(bytes) = signed {
            let again = cose::parse_sign1(&bytes).expect("a countersigned message parses");
            assert_eq!(again.payload(), parsed.payload());
            assert_eq!(again.signature(), parsed.signature());
            assert_eq!(again.countersignatures().len(), parsed.countersignatures().len() + 1);
        }
    }
});
