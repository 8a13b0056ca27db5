#!/usr/bin/env python3
"""Open every record of an edgeward uplink file of sealed messages with code
the edgeward team did not write: the COSE-HPKE structures of
draft-ietf-cose-hpke-27 built here from the draft on cbor2, HPKE (RFC 9180)
from pyhpke, ChaCha20-Poly1305 from cryptography; then verify the inner
COSE_Sign1 as check_signed.py does. Nothing is imported from edgeward.

usage: open_sealed.py UPLINK.jsonl APP_SECRET_FILE KID SENSOR_PUB GATEWAY_PUB

APP_SECRET_FILE holds `x25519-secret:BASE64URL`; KID is the app's key id.
Prints the counts and padded plaintext sizes as JSON; exits 1 on the first
record that does not open or verify, saying why.
"""

import json
import sys

import cbor2
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

from check_signed import Invalid, load_key, records, senml_values, verify_sign1

ALG, KID, IV = 1, 4, 5  # RFC 9052 §3.1
TAG_ENCRYPT0, TAG_ENCRYPT = 16, 96  # RFC 9052 §2
CHACHA20_POLY1305 = 24  # RFC 9053 §4.3
# draft-27's "assumed" values for its TBD code points.
HPKE_4, HPKE_4_KE, EK = 42, 50, -4
# edgeward's envelope version (private-use label), standing for the values above.
ENVELOPE_VERSION, VERSION = -65541, 1
HPKE_4_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)


def expect(condition: bool, problem: str) -> None:
    if not condition:
        raise Invalid(problem)


def hpke_open(enc: bytes, secret, ciphertext: bytes, info: bytes, aad: bytes) -> bytes:
    """RFC 9180 §6.1 single-shot Open in base mode: SetupBaseR, then one Open."""
    return HPKE_4_SUITE.create_recipient_context(enc, secret, info=info).open(ciphertext, aad=aad)


def decrypt(sealed: bytes, secret, kid: bytes) -> bytes:
    """The padded plaintext of a COSE_Encrypt0 (integrated encryption, draft
    §3.2) or COSE_Encrypt (key encryption, draft §3.3); external aad is empty."""
    item = cbor2.loads(sealed)
    expect(isinstance(item, cbor2.CBORTag), "not a tagged COSE message")
    protected_bytes = item.value[0]
    protected = cbor2.loads(protected_bytes)
    expect(protected.get(ENVELOPE_VERSION) == VERSION, f"envelope version {protected.get(ENVELOPE_VERSION)}")
    if item.tag == TAG_ENCRYPT0:
        _, unprotected, ciphertext = item.value
        expect(protected.get(ALG) == HPKE_4, f"alg {protected.get(ALG)}, expected HPKE-4")
        expect(protected.get(KID, kid) == kid, f"sealed to kid {protected.get(KID)!r}")
        # HPKE info is empty; aad is the Enc_structure (RFC 9052 §5.3).
        aad = cbor2.dumps(["Encrypt0", protected_bytes, b""])
        return hpke_open(unprotected[EK], secret, ciphertext, info=b"", aad=aad)
    expect(item.tag == TAG_ENCRYPT, f"tag {item.tag}: neither COSE_Encrypt0 nor COSE_Encrypt")
    _, unprotected, ciphertext, recipients = item.value
    expect(protected.get(ALG) == CHACHA20_POLY1305, f"content alg {protected.get(ALG)}")
    mine = [r for r in recipients if cbor2.loads(r[0]).get(KID) == kid]
    expect(len(mine) == 1, f"kid {kid!r} is not among the {len(recipients)} recipients")
    r_protected, r_unprotected, wrapped_cek = mine[0]
    expect(cbor2.loads(r_protected).get(ALG) == HPKE_4_KE, "recipient alg is not HPKE-4-KE")
    # HPKE info is the Recipient_structure (draft §3.3.1), binding the
    # content layer's alg and the recipient's protected header; HPKE aad is empty.
    info = cbor2.dumps(["HPKE Recipient", CHACHA20_POLY1305, r_protected, b""])
    cek = hpke_open(r_unprotected[EK], secret, wrapped_cek, info=info, aad=b"")
    aad = cbor2.dumps(["Encrypt", protected_bytes, b""])
    return ChaCha20Poly1305(cek).decrypt(unprotected[IV], ciphertext, aad)


def unpad(padded: bytes) -> bytes:
    """Remove edgeward's padding: one 0x80, then zeros (ISO/IEC 7816-4)."""
    content = padded.rstrip(b"\0")
    expect(content.endswith(b"\x80"), "no 0x80 padding marker")
    return content[:-1]


def main(uplink: str, secret_file: str, kid: str, sensor_arg: str, gateway_arg: str) -> None:
    raw = load_key(open(secret_file).read().strip(), "x25519-secret")
    secret = KEMKey.from_pyca_cryptography_key(X25519PrivateKey.from_private_bytes(raw))
    sensor_pub, gateway_pub = load_key(sensor_arg, "ed25519"), load_key(gateway_arg, "ed25519")
    counts = {"countersigned": 0, "gateway-attested": 0}
    sizes = set()
    for number, record, body in records(uplink):
        try:
            padded = decrypt(body, secret, kid.encode())
            kind, payload = verify_sign1(unpad(padded), sensor_pub, gateway_pub)
            expect(senml_values(payload), "no values in the signed SenML")
        except Exception as e:
            raise Invalid(f"{uplink} line {number} ({record.get('id')}): {type(e).__name__}: {e}") from e
        counts[kind] += 1
        sizes.add(len(padded))
    total = sum(counts.values())
    expect(total > 0, f"{uplink}: no records")
    print(json.dumps({"opened": total, **counts, "padded_sizes": sorted(sizes)}))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    try:
        main(*sys.argv[1:])
    except Invalid as e:
        sys.exit(f"FAILED: {e}")
