#!/usr/bin/env python3
"""Verify every record of an edgeward uplink file with code the edgeward
team did not write: pycose checks each COSE_Sign1 (RFC 9052), and the RFC
9338 countersignature is checked here, from the RFC's Countersign_structure,
on cbor2 and cryptography. Nothing is imported from edgeward.

usage: check_signed.py UPLINK.jsonl SENSOR_PUB GATEWAY_PUB

A key is `ed25519:BASE64URL` or a file holding it. A record is either a
sensor's Sign1 (verified with SENSOR_PUB) countersigned by the gateway
(GATEWAY_PUB), or a Sign1 the gateway made for an unsigned sensor (header
-65540 = "gateway", verified with GATEWAY_PUB). Prints the counts as JSON;
exits 1 on the first failure, saying why.
"""

import base64
import json
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

ALG, KID, EDDSA = 1, 4, -8
COUNTERSIGNATURE_V2 = 11  # RFC 9338 §2, in the target's unprotected header
TAG_SIGN1 = 18
# edgeward's labels, in the private-use range below -65536 (RFC 9052).
RECEIVED_MS, MODULES, ATTESTATION = -65538, -65539, -65540
# RFC 8428 §6 SenML-CBOR labels.
SENML_NAME, SENML_VALUE = 0, 2


class Invalid(Exception):
    """A record that does not verify; the message says why."""


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(arg: str, kind: str) -> bytes:
    """The raw 32 bytes of a `KIND:BASE64URL` key given inline or in a file."""
    text = arg if arg.startswith(kind + ":") else open(arg).read().strip()
    prefix, _, value = text.partition(":")
    raw = b64url(value)
    if prefix != kind or len(raw) != 32:
        raise Invalid(f"{arg}: not a {kind} key")
    return raw


def senml_values(payload: bytes) -> dict:
    """Name to numeric value of a SenML-CBOR pack (RFC 8428), names without bn."""
    pack = cbor2.loads(payload)
    if not isinstance(pack, list) or not pack:
        raise Invalid("payload is not a SenML pack")
    return {r[SENML_NAME]: r[SENML_VALUE] for r in pack if SENML_VALUE in r}


def check_countersignatures(cose: bytes, gateway_pub: bytes) -> None:
    """RFC 9338 §3.3: each full countersignature signs
    ["CounterSignatureV2", body_protected, sign_protected, external_aad,
    payload, [signature]]; "V2" and other_fields because a COSE_Sign1 has a
    third bstr (its signature) after protected and payload."""
    item = cbor2.loads(cose)
    if isinstance(item, cbor2.CBORTag):
        if item.tag != TAG_SIGN1:
            raise Invalid(f"tag {item.tag}, expected {TAG_SIGN1}")
        item = item.value
    body_protected, unprotected, payload, signature = item
    value = unprotected.get(COUNTERSIGNATURE_V2)
    if not value:
        raise Invalid("no countersignature (label 11) in the unprotected header")
    # COSE_Countersignature / [+ COSE_Countersignature]: a single one starts with a bstr.
    for sign_protected, _, cs_signature in [value] if isinstance(value[0], bytes) else value:
        header = cbor2.loads(sign_protected)
        if header.get(ALG) != EDDSA or not isinstance(header.get(KID), bytes):
            raise Invalid(f"countersignature header {header}: expected alg EdDSA and a kid")
        if not isinstance(header.get(RECEIVED_MS), int):
            raise Invalid("countersignature has no receipt time (-65538)")
        for name, digest in header.get(MODULES, []):
            if not isinstance(name, str) or len(digest) != 32:
                raise Invalid(f"bad module entry {name!r} in the countersignature")
        tbs = cbor2.dumps(["CounterSignatureV2", body_protected, sign_protected, b"", payload, [signature]])
        try:
            Ed25519PublicKey.from_public_bytes(gateway_pub).verify(cs_signature, tbs)
        except InvalidSignature:
            raise Invalid("gateway countersignature (RFC 9338) does not verify") from None


def verify_sign1(cose: bytes, sensor_pub: bytes, gateway_pub: bytes) -> tuple[str, bytes]:
    """Verify a gateway-signed COSE_Sign1; returns its kind and payload."""
    msg = Sign1Message.decode(cose)
    attested = msg.phdr.get(ATTESTATION) == "gateway"
    msg.key = OKPKey(crv=Ed25519, x=gateway_pub if attested else sensor_pub)
    if not msg.verify_signature():
        who = "gateway attestation" if attested else "sensor"
        raise Invalid(f"{who} COSE_Sign1 signature does not verify (pycose)")
    if attested:
        return "gateway-attested", msg.payload
    check_countersignatures(cose, gateway_pub)
    return "countersigned", msg.payload


def records(path: str):
    """(line number, record, envelope bytes) of each uplink record."""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            record = json.loads(line)
            if record.get("kind") != "uplink":
                raise Invalid(f"line {number}: not an uplink record")
            yield number, record, base64.b64decode(record["body"])


def main(uplink: str, sensor_arg: str, gateway_arg: str) -> None:
    sensor_pub, gateway_pub = load_key(sensor_arg, "ed25519"), load_key(gateway_arg, "ed25519")
    counts = {"countersigned": 0, "gateway-attested": 0}
    for number, record, body in records(uplink):
        try:
            kind, payload = verify_sign1(body, sensor_pub, gateway_pub)
            # The record's plaintext summary must be what was signed.
            shown = {m["name"]: m["value"] for m in record.get("measurements", [])}
            if "measurements" in record and shown != senml_values(payload):
                raise Invalid(f"signed payload {senml_values(payload)} differs from the record's {shown}")
        except Exception as e:
            raise Invalid(f"{uplink} line {number} ({record.get('id')}): {e}") from e
        counts[kind] += 1
    total = sum(counts.values())
    if total == 0:
        raise Invalid(f"{uplink}: no records")
    print(json.dumps({"verified": total, **counts}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        main(*sys.argv[1:])
    except Invalid as e:
        sys.exit(f"FAILED: {e}")
