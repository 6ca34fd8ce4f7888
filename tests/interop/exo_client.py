#!/usr/bin/env python3
"""An Exocore client written from spec/protocol.md alone: preamble, Noise XX handshake as
initiator, one Ping request, check the Pong.

Usage:
    exo_client.py HOST:PORT CLIENT_SK CELL_PK SERVER_PK
        connects, pings, prints `ping ok <rtt ms>` and exits 0, or prints an error, exits 1.
    exo_client.py --check-vectors DIR
        replays the handshake of fixtures/protocol/ with its fixed ephemeral key and compares
        every byte the initiator produces; prints `vectors ok` and exits 0, or exits 1.

Requires the PyPI package `noiseprotocol` (which brings `cryptography`). If the PyPI package
`blake3` is installed, key checksums are verified; without it they are skipped (decoding is
unaffected). The ed25519 -> X25519 conversions use only the standard library.
"""

import base64
import hashlib
import os
import socket
import struct
import sys
import time

from noise.connection import Keypair, NoiseConnection

try:
    import blake3  # optional: verifies key-text checksums
except ImportError:  # pragma: no cover
    blake3 = None

NOISE_NAME = b"Noise_XX_25519_ChaChaPoly_BLAKE2s"
VERSION = 1
MAGIC = b"EXO"
HANDSHAKE_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 60
TAG = 16
CHUNK_DATA_MAX = 65535 - TAG - 1
MESSAGE_MAX = 16 * 1024 * 1024
REKEY_INTERVAL = 1 << 20

SERVICE_PING = 0
KIND_REQUEST, KIND_RESPONSE, KIND_ERROR, KIND_CLOSE = 0, 1, 2, 6

P = 2**255 - 19


class ProtocolError(Exception):
    pass


# ---- keys (spec/identity.md) -------------------------------------------------------------

def parse_key(text, prefix):
    """`pk_`/`sk_` + lowercase base32 (no padding) of 32 key bytes + 4 checksum bytes."""
    text = text.strip()
    if not text.lower().startswith(prefix):
        raise ProtocolError(f"a key of this kind starts with `{prefix}`")
    body = text[len(prefix):].upper()
    body += "=" * (-len(body) % 8)
    try:
        raw = base64.b32decode(body)
    except Exception as e:
        raise ProtocolError(f"bad key text: {e}")
    if len(raw) != 36:
        raise ProtocolError(f"key is {len(raw)} bytes long, expected 36")
    key, checksum = raw[:32], raw[32:]
    if blake3 is not None:
        expected = blake3.blake3(prefix.encode() + key).digest()[:4]
        if checksum != expected:
            raise ProtocolError("key checksum does not match (mistyped?)")
    return key


def x25519_secret(ed25519_seed):
    """The clamped first half of SHA-512(seed)."""
    h = bytearray(hashlib.sha512(ed25519_seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


def x25519_public(ed25519_public):
    """Montgomery u = (1 + y) / (1 - y) mod p of the Edwards point's y coordinate."""
    y = int.from_bytes(ed25519_public, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow((1 - y) % P, P - 2, P) % P
    return u.to_bytes(32, "little")


# ---- encoding (bincode, fixed-width little endian) ---------------------------------------

def envelope(service, kind, request_id, payload):
    return struct.pack("<IIQQ", service, kind, request_id, len(payload)) + payload


def parse_envelope(data):
    if len(data) < 24:
        raise ProtocolError("envelope shorter than its 24-byte header")
    service, kind, request_id, length = struct.unpack_from("<IIQQ", data)
    if length != len(data) - 24:
        raise ProtocolError("envelope payload length does not match")
    return service, kind, request_id, data[24:]


def parse_string(data):
    if len(data) < 8:
        raise ProtocolError("string shorter than its length")
    (length,) = struct.unpack_from("<Q", data)
    if length != len(data) - 8:
        raise ProtocolError("string length does not match")
    return data[8:].decode("utf-8", errors="replace")


def parse_error_body(data):
    if len(data) < 2:
        raise ProtocolError("error body too short")
    (code,) = struct.unpack_from("<H", data)
    return code, parse_string(data[2:])


# ---- frames and the Noise session --------------------------------------------------------

def frame(body):
    if len(body) > 65535:
        raise ProtocolError("frame over 65535 bytes")
    return struct.pack(">H", len(body)) + body


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError(f"connection closed ({len(out)} of {n} bytes received)")
        out += chunk
    return out


def recv_frame(sock):
    (length,) = struct.unpack(">H", recv_exact(sock, 2))
    return recv_exact(sock, length)


class Session:
    def __init__(self, sock, noise):
        self.sock, self.noise = sock, noise
        self.sent = self.received = 0

    def send(self, message):
        if len(message) > MESSAGE_MAX:
            raise ProtocolError("message over 16 MiB")
        chunks = [message[i:i + CHUNK_DATA_MAX] for i in range(0, len(message), CHUNK_DATA_MAX)] or [b""]
        out = b""
        for i, chunk in enumerate(chunks):
            header = b"\x01" if i == len(chunks) - 1 else b"\x00"
            out += frame(self.noise.encrypt(header + chunk))
            self.sent += 1
            if self.sent % REKEY_INTERVAL == 0:
                self.noise.rekey_outbound_cipher()
        self.sock.sendall(out)

    def receive(self):
        message = b""
        while True:
            body = recv_frame(self.sock)
            if len(body) < TAG + 1:
                raise ProtocolError("transport frame too short")
            plain = self.noise.decrypt(body)
            self.received += 1
            if self.received % REKEY_INTERVAL == 0:
                self.noise.rekey_inbound_cipher()
            header, data = plain[0], plain[1:]
            if header not in (0, 1):
                raise ProtocolError(f"bad chunk header {header}")
            message += data
            if len(message) > MESSAGE_MAX:
                raise ProtocolError("message over 16 MiB")
            if header == 1:
                return bytes(message)


def preamble(cell_public):
    return MAGIC + bytes([VERSION]) + cell_public


def new_initiator(client_seed, prologue, ephemeral=None):
    noise = NoiseConnection.from_name(NOISE_NAME)
    if ephemeral is not None:
        import warnings  # noiseprotocol warns that a fixed ephemeral key is for tests only

        warnings.simplefilter("ignore", UserWarning)
    noise.set_as_initiator()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, x25519_secret(client_seed))
    if ephemeral is not None:
        noise.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral)
    noise.set_prologue(prologue)
    noise.start_handshake()
    return noise


def remote_static(noise):
    return bytes(noise.noise_protocol.handshake_state.rs.public_bytes)


def connect(host, port, client_seed, cell_public, server_public):
    sock = socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pre = preamble(cell_public)
    sock.sendall(pre)
    answer = recv_exact(sock, 4)
    if answer[:3] != MAGIC:
        raise ProtocolError("the peer is not an Exocore node")
    if answer[3] == 1:
        supported = recv_exact(sock, 1)[0]
        raise ProtocolError(f"the node speaks protocol version {supported}, not {VERSION}")
    if answer[3] == 2:
        raise ProtocolError("the node does not serve this cell")
    if answer[3] != 0:
        raise ProtocolError(f"unknown preamble status {answer[3]}")
    noise = new_initiator(client_seed, pre)
    sock.sendall(frame(noise.write_message()))          # -> e
    noise.read_message(recv_frame(sock))                # <- e, ee, s, es
    if remote_static(noise) != x25519_public(server_public):
        raise ProtocolError("the node's key is not the expected server key")
    sock.sendall(frame(noise.write_message()))          # -> s, se
    sock.settimeout(REQUEST_TIMEOUT_S)
    return Session(sock, noise)


def ping(session, request_id=1):
    nonce = int.from_bytes(os.urandom(8), "little")
    start = time.monotonic()
    session.send(envelope(SERVICE_PING, KIND_REQUEST, request_id, struct.pack("<Q", nonce)))
    while True:
        try:
            service, kind, rid, payload = parse_envelope(session.receive())
        except EOFError:
            raise ProtocolError("the node closed the connection (is this key a member of the cell?)")
        if kind == KIND_RESPONSE and rid == request_id:
            rtt = time.monotonic() - start
            if payload != struct.pack("<Q", nonce):
                raise ProtocolError("pong does not carry our nonce")
            return rtt
        if kind == KIND_ERROR and rid == request_id:
            code, message = parse_error_body(payload)
            raise ProtocolError(f"the node answered error {code}: {message}")
        if kind == KIND_CLOSE:
            raise ProtocolError(f"the node closed the connection: {parse_string(payload)}")
        if kind == KIND_REQUEST and service == SERVICE_PING:  # keepalive from the node
            session.send(envelope(SERVICE_PING, KIND_RESPONSE, rid, payload))


def close(session, reason):
    body = struct.pack("<Q", len(reason.encode())) + reason.encode()
    session.send(envelope(SERVICE_PING, KIND_CLOSE, 0, body))
    session.sock.shutdown(socket.SHUT_WR)
    session.sock.close()


# ---- test vectors ------------------------------------------------------------------------

def check_vectors(directory):
    def read(name):
        with open(os.path.join(directory, name)) as f:
            return f.read().strip()

    inputs = {}
    for line in read("inputs.txt").splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            inputs[key.strip()] = value.strip()
    hexb = lambda name: bytes.fromhex(read(name))

    client_seed = parse_key(inputs["initiator_sk"], "sk_")
    cell = parse_key(inputs["cell_pk"], "pk_")
    server = parse_key(inputs["responder_pk"], "pk_")
    checks = [
        ("initiator seed", client_seed, bytes.fromhex(inputs["initiator_seed"])),
        ("initiator X25519 secret", x25519_secret(client_seed), bytes.fromhex(inputs["initiator_x25519_secret_clamped"])),
        ("responder X25519 public", x25519_public(server), bytes.fromhex(inputs["responder_x25519_public"])),
        ("cell key", cell, bytes.fromhex(inputs["cell_pk_hex"])),
    ]
    pre = preamble(cell)
    checks.append(("preamble", pre, hexb("preamble.hex")))
    checks.append(("answer", MAGIC + b"\x00", hexb("answer.hex")))
    noise = new_initiator(client_seed, pre, bytes.fromhex(inputs["initiator_ephemeral_secret"]))
    checks.append(("handshake1", frame(bytes(noise.write_message())), hexb("handshake1.hex")))
    message2 = hexb("handshake2.hex")
    noise.read_message(message2[2:])
    checks.append(("responder static", remote_static(noise), x25519_public(server)))
    checks.append(("handshake3", frame(bytes(noise.write_message())), hexb("handshake3.hex")))
    checks.append(("handshake hash", bytes(noise.get_handshake_hash()), hexb("handshake_hash.hex")))
    nonce = int(inputs["ping_nonce"], 16)
    request_id = int(inputs["request_id"])
    ping_env = envelope(SERVICE_PING, KIND_REQUEST, request_id, struct.pack("<Q", nonce))
    checks.append(("ping envelope", ping_env, hexb("ping_envelope.hex")))
    checks.append(("transport1", frame(noise.encrypt(b"\x01" + ping_env)), hexb("transport1.hex")))
    pong_plain = noise.decrypt(hexb("transport2.hex")[2:])
    checks.append(("transport2 plaintext", pong_plain, b"\x01" + hexb("pong_envelope.hex")))
    expected_pong = envelope(SERVICE_PING, KIND_RESPONSE, request_id, struct.pack("<Q", nonce))
    checks.append(("pong envelope", expected_pong, hexb("pong_envelope.hex")))

    failed = 0
    for name, got, want in checks:
        if got != want:
            failed += 1
            print(f"MISMATCH {name}:\n  got  {got.hex()}\n  want {want.hex()}")
    if failed:
        print(f"vectors: {failed} of {len(checks)} checks failed")
        return 1
    print(f"vectors ok ({len(checks)} checks{'' if blake3 else ', key checksums not verified: no blake3'})")
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--check-vectors":
        try:
            return check_vectors(argv[2])
        except Exception as e:
            print(f"error: {e}")
            return 1
    if len(argv) != 5:
        print(__doc__.strip())
        return 2
    try:
        host, _, port = argv[1].rpartition(":")
        client_seed = parse_key(argv[2], "sk_")
        cell = parse_key(argv[3], "pk_")
        server = parse_key(argv[4], "pk_")
        session = connect(host.strip("[]"), int(port), client_seed, cell, server)
        rtt = ping(session)
        close(session, "ping done")
    except (ProtocolError, OSError, EOFError, ValueError) as e:
        print(f"error: {e}")
        return 1
    except Exception as e:  # a Noise failure, e.g. a handshake that does not authenticate
        print(f"error: {type(e).__name__}: {e}")
        return 1
    print(f"ping ok {rtt * 1000:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
