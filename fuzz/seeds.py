"""Writes the seed inputs of each fuzz target to fuzz/seeds/<target>/ (run from the
repository root: `python3 fuzz/seeds.py`). Seeds are valid inputs taken from the test
vectors in fixtures/protocol/, so the fuzzer starts from the paths real peers take."""

import os
import struct

FIX = "fixtures/protocol"


def hexfile(name):
    with open(os.path.join(FIX, name)) as f:
        return bytes.fromhex(f.read().strip())


def u64(n):
    return struct.pack("<Q", n)


def string(s):
    b = s.encode()
    return u64(len(b)) + b


def envelope(service, kind, request_id, payload):
    return struct.pack("<IIQ", service, kind, request_id) + u64(len(payload)) + payload


def record(op, body):
    return bytes([op]) + struct.pack("<H", len(body)) + body


def frame(body):
    return struct.pack(">H", len(body)) + body


ping = hexfile("ping_envelope.hex")
pong = hexfile("pong_envelope.hex")
error_body = struct.pack("<H", 2) + string("unknown service")
close_body = string("bye")
error = envelope(0, 2, 1, error_body)
close = envelope(0, 6, 0, close_body)
sessions = {
    "one_message": bytes([1, 0]) + record(1, ping),
    "chunks_rekey_forgery": bytes([1, 0])
    + record(1, ping)
    + record(0, b"\x00" + ping[:5])
    + record(0, b"\x01" + ping[5:])
    + record(1, close)
    + record(1, error)
    + record(2, bytes(40)),
    "byte_by_byte": bytes([1, 1]) + record(1, ping) + record(1, pong),
    "raw_preamble_only": bytes([0, 0]) + hexfile("preamble.hex") + hexfile("handshake1.hex"),
}
seeds = {
    "envelope": {"ping": ping, "pong": pong, "error": error, "close": close},
    "message_ping": {"ping": u64(0x0123456789ABCDEF)},
    "message_pong": {"pong": u64(7)},
    "message_error_body": {"error": error_body},
    "message_close_body": {"close": close_body},
    "frame": {
        "handshake1": bytes([0, 0]) + hexfile("handshake1.hex"),
        "handshake2": bytes([1, 3]) + hexfile("handshake2.hex"),
        "transport": bytes([3, 0]) + hexfile("transport1.hex") + hexfile("transport2.hex"),
    },
    "preamble": {
        "preamble": bytes([0]) + hexfile("preamble.hex"),
        "answer": bytes([0]) + hexfile("answer.hex"),
        "version": bytes([2]) + b"EXO\x01\x01",
    },
    "key_text": {
        "public": b"pk_rkeohxlubhyzl7ks3mwtzos5olfgocn7dwkbeg7toseadnapn5opwbghxa",
        "secret": b"sk_aeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaea6eogx5y",
    },
    "session_responder": dict(sessions),
    "session_initiator": {k: v for k, v in sessions.items() if k != "raw_preamble_only"}
    | {"raw_answer": bytes([0, 0]) + hexfile("answer.hex") + hexfile("handshake2.hex")},
}
for target, files in seeds.items():
    directory = os.path.join("fuzz", "seeds", target)
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
print("wrote", sum(len(f) for f in seeds.values()), "seeds")
