#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/)."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
LAST, PASID = 2, 1


def rec(flags, dev, pasid, cookie, addr, perm=1, grpid=0, length=0, reserved=0):
    return struct.pack("<IIIIIIQII", flags, dev, pasid, grpid, perm, reserved, addr, length, cookie)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


streams = {
    "one-group": rec(LAST, 0, 0, 1, 0x1000),
    "pasid-groups": b"".join(rec(LAST | PASID, d, d, c, 0x1000 * c) for c, d in enumerate([1, 2, 3, 1, 2])),
    "multi-fault": rec(0, 1, 1, 4, 0x2000) + rec(PASID, 1, 1, 4, 0x3000) + rec(LAST | PASID, 1, 1, 4, 0x4000),
    "mixed-cookie": rec(0, 0, 0, 1, 0) + rec(LAST, 0, 0, 2, 0x1000),
    "dup-cookie": rec(LAST, 0, 0, 7, 0) + rec(LAST, 0, 0, 7, 0x1000),
    "partial": rec(LAST, 0, 0, 1, 0) + rec(0, 0, 0, 2, 0x1000)[:23],
    "reserved": rec(LAST, 0, 0, 1, 0, reserved=5) + rec(LAST, 3, 3, 2, 0xff000, perm=7),
    "outside": rec(LAST, 0, 0, 1, 0x7fff0000) + rec(LAST, 9, 0, 2, 0),
    "hint": rec(LAST, 2, 2, 3, 0x5000, length=1 << 20),
}
for name, data in streams.items():
    write("batch", name, bytes([16, 32]) + data)
    write("relay", name, data)

calls = {
    "RegisterQueue": (0, 0x04, {"fdIndex": 0, "transport": "relay", "name": "q"}),
    "UnregisterQueue": (1, 0, {"queue": 1}),
    "CreateSpace": (2, 0, {"backend": "mlock", "quota": 65536, "windowMin": 4096, "windowMax": 16384}),
    "DestroySpace": (3, 0, {"space": 1}),
    "AddRegion": (4, 0x01, {"space": 1, "iova": 0, "length": 65536, "memfdIndex": 0, "access": ["read", "write"]}),
    "RemoveRegion": (5, 0, {"space": 1, "region": 1}),
    "Bind": (6, 0, {"queue": 1, "device": 0, "pasid": 3, "space": 1}),
    "Unbind": (7, 0, {"queue": 1, "device": 0}),
    "ListQueues": (8, 0, {}),
    "ListSpaces": (9, 0, {}),
    "ListBindings": (10, 0, {}),
    "GetStatistics": (11, 0, {}),
    "Monitor": (12, 0x80, {"intervalMs": 100}),
    "MetricsList": (13, 0x80, {}),
    "MetricsDescribe": (14, 0x80, {}),
    "RegisterQueue-persistent": (0, 0x04, {"fdIndex": 0, "name": "p", "persistent": True}),
    "CreateSpace-persistent": (2, 0, {"backend": "none", "quota": 65536, "name": "p", "persistent": True}),
}
for name, (idx, fds, params) in calls.items():
    write("varlink", name, bytes([idx, fds]) + json.dumps(params).encode())
