"""bthome-ble (Home Assistant's BTHome parser) over the payloads runtime/benches/bthome.rs wrote.

Usage: bthome_python.py PLAIN.hex SEALED.hex KEY_HEX. Prints nanoseconds per advertisement,
unencrypted then encrypted: one BTHomeBluetoothDeviceData per device, update() per
advertisement, service-info objects built before the clock starts.
"""

import sys
import time

from bthome_ble import BTHomeBluetoothDeviceData
from habluetooth import BluetoothServiceInfoBleak

ADDRESS = "54:48:E6:8F:80:A5"
UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"


def infos(path):
    with open(path) as f:
        payloads = [bytes.fromhex(line) for line in f.read().split()]
    return [
        BluetoothServiceInfoBleak(
            "room", ADDRESS, -60, {}, {UUID: p}, [UUID], "local", None, None, False, float(i) * 0.5, None
        )
        for i, p in enumerate(payloads)
    ]


def ns_per_advertisement(infos, bindkey):
    device = BTHomeBluetoothDeviceData(bindkey=bindkey)
    start = time.perf_counter()
    for info in infos:
        device.update(info)
    elapsed = time.perf_counter() - start
    return elapsed * 1e9 / len(infos), device


def check(infos, bindkey):
    device = BTHomeBluetoothDeviceData(bindkey=bindkey)
    for info in infos[:3]:
        update = device.update(info)
        names = {key.key for key in update.entity_values}
        assert {"temperature", "humidity", "battery"} <= names, names


def main():
    plain, sealed, key = infos(sys.argv[1]), infos(sys.argv[2]), bytes.fromhex(sys.argv[3])
    check(plain, None)
    check(sealed, key)
    plain_ns, _ = ns_per_advertisement(plain, None)
    sealed_ns, device = ns_per_advertisement(sealed, key)
    assert device.encryption_counter == len(sealed), device.encryption_counter
    print(f"{plain_ns:.1f} {sealed_ns:.1f}")


if __name__ == "__main__":
    main()
