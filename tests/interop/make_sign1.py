#!/usr/bin/env python3
"""Make a signed sensor reading as an independent sensor would: a fresh
Ed25519 key (cryptography), a SenML-CBOR payload with one temperature
(cbor2, RFC 8428) and a COSE_Sign1 (pycose) with protected header
{alg: EdDSA, kid: "py-sensor", -65537 (counter): 42}. Nothing is imported
from edgeward.

Prints JSON: {"hex": the tagged COSE_Sign1, "forged": the same with one
signature byte flipped, "key": "ed25519:BASE64URL", "temperature": ...}.
"""

import base64
import json
import time

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat, PublicFormat, NoEncryption
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

SEQ = -65537  # edgeward's private-use label for the sensor's counter
# RFC 8428 §6 SenML-CBOR labels.
BASE_NAME, BASE_TIME, NAME, UNIT, VALUE = -2, -3, 0, 1, 2
TEMPERATURE = 21.5


def main() -> None:
    private = Ed25519PrivateKey.generate()
    d = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    x = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    payload = cbor2.dumps([
        {BASE_NAME: "urn:dev:py-sensor:", BASE_TIME: int(time.time()), NAME: "temperature", UNIT: "Cel",
         VALUE: TEMPERATURE},
    ])
    msg = Sign1Message(phdr={Algorithm: EdDSA, KID: b"py-sensor", SEQ: 42}, payload=payload)
    msg.key = OKPKey(crv=Ed25519, d=d, x=x)
    signed = msg.encode()  # tagged (18) by default
    # The signature is the message's last field, so its last byte is the message's.
    forged = signed[:-1] + bytes([signed[-1] ^ 0x01])
    print(json.dumps({
        "hex": signed.hex(),
        "forged": forged.hex(),
        "key": "ed25519:" + base64.urlsafe_b64encode(x).rstrip(b"=").decode(),
        "temperature": TEMPERATURE,
    }))


if __name__ == "__main__":
    main()
