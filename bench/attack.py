#!/usr/bin/env python3
"""Attacks on graced and nginx in one run (bench/attack), each against both servers:

* slowloris headers, slow body and slow read (Debian's slowhttptest);
* 10,000 idle HTTP/1.1 keep-alive connections (`idle`), 5,000 idle HTTPS connections (`idle-tls`)
  and 5,000 idle HTTP/2 connections over TLS (`idle-h2`): each served one request, then held;
  RSS per connection, fds, a new client, memory after they close and a minute later;
* a TLS handshake flood (`tls-flood`): threads doing full handshakes they drop at once, plus
  connections that send nothing or half a ClientHello;
* 1,000 reloads (`reloads`) and 1,000 binary upgrades (`upgrades`) with a client polling all along:
  fds and RSS before and after.

Results: the latest run of each attack is kept in bench/results/attack.json (a partial run,
`--attacks idle-tls`, replaces only that attack's entry), and the table between the
attack-results markers of RELIABILITY.md is rendered from that file, each row with its run's date.

Each attack runs against a server started for it. For each attack and each server a control
client requests /1k.txt on a new connection every 200 ms throughout (every 10 ms for reloads and
upgrades; requests lost = failed or slower than 5 s), and the server's memory (RSS of all its
processes) and descriptors are taken before, at the peak and after.

Servers are started as children of this script on 127.0.0.1 (bench.py's Graced, Nginx and
NginxDaemon classes, certificates and state directory); during the upgrades the script is a
child subreaper, so the successors it did not start directly are its children too. Only
processes this script started are signalled, by PID. Every load is bounded in time and count.
"""

import argparse
import csv
import ctypes
import datetime
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import bench
from bench import STATE, Graced, Nginx, NginxDaemon, cleanup, log, spawn, tree_mem, finish, get_status

try:  # Python's h2 (Debian python3-h2, PyPI h2), for the idle HTTP/2 connections
    import h2.config
    import h2.connection
    import h2.events
except ImportError:
    h2 = None

RESULTS_BEGIN = "<!-- attack-results-begin -->"
RESULTS_END = "<!-- attack-results-end -->"
STORE = f"{bench.HERE}/results/attack.json"

SLOW_ATTACKS = ("slowloris", "slow body", "slow read")
IDLE_ATTACKS = ("idle", "idle-tls", "idle-h2")
TLS_ATTACKS = ("idle-tls", "idle-h2", "tls-flood")
ATTACKS = (*SLOW_ATTACKS, "idle", "idle-tls", "idle-h2", "tls-flood", "reloads", "upgrades")


class AttackGraced(Graced):
    """graced with room for 16,384 connections and a keep-alive long enough to hold them idle;
    every other limit (header_timeout 20 s, send_timeout 60 s, [tls] handshake_timeout 10 s) at
    its default. With `tls`: HTTPS only, TLS 1.3, HTTP/2 offered by ALPN beside HTTP/1.1
    (bench.py's HTTPS configuration, header_timeout 60 s as nginx's)."""

    def conf_text(self, root):
        if self.tls:
            return super().conf_text(root).replace('keepalive_timeout = "15s"', 'keepalive_timeout = "120s"')
        return super().conf_text(root) + '\n[limits]\nmax_connections = 16384\nkeepalive_timeout = "120s"\n'


class AttackNginx(Nginx):
    """nginx likewise: 12,000 connections per worker, keepalive_timeout 120 s, other timeouts
    at their defaults (client_header_timeout and client_body_timeout 60 s, send_timeout 60 s).
    With `tls`: bench.py's HTTPS configuration (`listen … ssl http2`, TLS 1.3, session cache)."""

    def conf_text(self, root):
        text = super().conf_text(root)
        if not self.tls:  # the TLS configuration has these already
            text = text.replace("worker_connections 4096;", "worker_connections 12000;")
            text = text.replace("daemon off;", "worker_rlimit_nofile 19000;\ndaemon off;")
        return text.replace("keepalive_timeout 15s;", "keepalive_timeout 120s;")


# ------------------------------------------------------------------ measuring


def fds(pid):
    total = 0
    for p in bench.descendants(pid):
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return total


def snapshot_pid(pid):
    rss, _, procs = tree_mem(pid)
    return {"rss_kib": rss, "fds": fds(pid), "procs": procs}


def snapshot(server):
    return snapshot_pid(server.proc.pid)


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def load():
    return open("/proc/loadavg").read().split()[:3]


def tls_ctx(alpn=None):
    ctx = bench.tls_context()  # TLS 1.3, no chain check, as bench.py's clients
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class Control(threading.Thread):
    """A well-behaved client: GET /1k.txt on a new connection every `interval` seconds (HTTPS
    if `tls`); counts the requests that failed or took longer than 5 s (lost), and the slowest."""

    def __init__(self, port, tls=False, interval=0.2):
        super().__init__(daemon=True)
        self.port, self.tls, self.interval = port, tls, interval
        self.stop, self.ok, self.lost, self.slowest, self.failures = threading.Event(), 0, 0, 0.0, []

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            status = get_status(self.port, "/1k.txt", timeout=5, tls=self.tls)
            took = time.monotonic() - t
            self.slowest = max(self.slowest, took)
            if status == 200 and took < 5:
                self.ok += 1
            else:
                self.lost += 1
                if len(self.failures) < 5:
                    self.failures.append(f"{status} after {took:.3f} s")
            self.stop.wait(self.interval)

    def finish(self):
        self.stop.set()
        self.join(10)
        return {"control_ok": self.ok, "control_lost": self.lost, "control_slowest_s": round(self.slowest, 3),
                "control_failures": self.failures}


class Peak(threading.Thread):
    """Samples the RSS and descriptors of `pid()`'s process tree every 250 ms; keeps the highest."""

    def __init__(self, server=None, pid=None):
        super().__init__(daemon=True)
        self.pid = pid or (lambda: server.proc.pid)
        self.stop, self.rss, self.fds = threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            try:
                s = snapshot_pid(self.pid())
                self.rss, self.fds = max(self.rss, s["rss_kib"]), max(self.fds, s["fds"])
            except (OSError, ValueError):
                pass
            self.stop.wait(0.25)

    def finish(self):
        self.stop.set()
        self.join(5)
        return {"rss_kib": self.rss, "fds": self.fds}


# ------------------------------------------------------------------ slowhttptest


SLOW = {
    # name: (slowhttptest mode arguments, path)
    "slowloris": (["-H", "-i", "10", "-x", "24"], "/1k.txt"),
    "slow body": (["-B", "-i", "10", "-s", "100000", "-x", "24"], "/1k.txt"),
    "slow read": (["-X", "-w", "512", "-y", "1024", "-n", "5", "-z", "32", "-k", "3"], "/1m.txt"),
}


def slow_attack(server, name, conns, secs):
    mode, path = SLOW[name]
    prefix = f"{STATE}/attack/{server.name}-{name.replace(' ', '-')}"
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    before = snapshot(server)
    control, peak = Control(server.port), Peak(server)
    control.start()
    peak.start()
    cmd = ["slowhttptest", *mode, "-c", str(conns), "-r", "200", "-l", str(secs), "-p", "3", "-g", "-o", prefix,
           "-u", f"http://127.0.0.1:{server.port}{path}"]
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = finish(proc, secs + 60)
    time.sleep(2)
    r = {**control.finish(), "peak": peak.finish(), "before": before, "after": snapshot(server)}
    rows = []
    try:
        with open(prefix + ".csv") as f:
            rows = [{k: int(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, ValueError):
        pass
    if rows:
        r["max_connected"] = max(row["Connected"] for row in rows)
        r["closed_by_server"] = rows[-1]["Closed"]
        r["connected_at_end"] = rows[-1]["Connected"]
        r["available_secs"] = sum(1 for row in rows if row["Service Available"] > 0)
        r["secs"] = len(rows)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    m = re.search(r"Exit status:\s*([^\n]+)", plain)
    r["exit"] = m.group(1).strip() if m else " ".join(plain.strip().splitlines()[-1:])
    r["alive"] = server.proc.poll() is None
    log(f"  {server.name} {name}: {r.get('max_connected')} connected at most, {r.get('closed_by_server')} closed "
        f"by the server, service available {r.get('available_secs')}/{r.get('secs')} s ({r['exit']}); control "
        f"{r['control_ok']} ok, {r['control_lost']} lost, slowest {r['control_slowest_s']} s; RSS "
        f"{before['rss_kib']} → {r['peak']['rss_kib']} → {r['after']['rss_kib']} KiB, fds {before['fds']} → "
        f"{r['peak']['fds']} → {r['after']['fds']}")
    return r


# ------------------------------------------------------------------ idle connections


def read_http1(s):
    """One HTTP/1.1 response with a Content-Length body; its status (None if there was none)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    need = int(m.group(1)) if m else 0
    while len(body) < need:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    try:
        return int(head.split(b" ")[1]) if head.startswith(b"HTTP/") and len(body) >= need else None
    except (IndexError, ValueError):
        return None


def open_http(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /1k.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return s, read_http1(s)


def open_https(port):
    """A TLS 1.3 connection (ALPN http/1.1) that has been served one keep-alive request."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = tls_ctx(["http/1.1"]).wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"GET /1k.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        return s, read_http1(s)
    except (OSError, ssl.SSLError):
        raw.close()
        raise


def open_h2(port):
    """An HTTP/2 connection over TLS (ALPN h2) that has been served one request (stream 1); the
    client's HTTP/2 state is dropped afterwards, the socket kept."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = tls_ctx(["h2"]).wrap_socket(raw, server_hostname="localhost")
    except (OSError, ssl.SSLError):
        raw.close()
        raise
    if s.selected_alpn_protocol() != "h2":
        s.close()
        raise OSError(f"ALPN chose {s.selected_alpn_protocol()!r}, not h2")
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", "/1k.txt"), (":scheme", "https"),
                          (":authority", "localhost")], end_stream=True)
    s.sendall(conn.data_to_send())
    status, done = None, False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers).get(":status", 0))
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                done = True
        out = conn.data_to_send()
        if out:
            s.sendall(out)
    return s, status if done else None


OPENERS = {"idle": (open_http, False), "idle-tls": (open_https, True), "idle-h2": (open_h2, True)}


def new_client(kind, port):
    """A new client's request while the idle connections are held: (status, seconds)."""
    opener, _ = OPENERS[kind]
    t = time.monotonic()
    try:
        s, status = opener(port)
        s.close()
    except (OSError, ssl.SSLError):
        status = None
    return status, round(time.monotonic() - t, 3)


def still_open(s):
    """Nothing came from the server on an idle connection (no FIN, RST, close_notify or GOAWAY)."""
    poller = select.poll()
    try:
        poller.register(s, select.POLLIN)
        if not poller.poll(0):
            return True
        s.setblocking(False)
        s.recv(4096)
    except (ssl.SSLWantReadError, BlockingIOError):
        return True  # a TLS record with no application data (a late session ticket)
    except (OSError, ValueError):
        return False
    return False  # the end of the connection, or something the server sent on its own


def idle_attack(server, kind, n, settle_secs, threads=4):
    """n connections, each served one request, then held idle; kind = idle (HTTP/1.1),
    idle-tls (HTTPS, HTTP/1.1) or idle-h2 (HTTP/2 over TLS). Opened by `threads` threads."""
    opener, _ = OPENERS[kind]
    time.sleep(1)
    before = snapshot(server)
    socks, failed, served, errors, lock = [], [0], [0], [], threading.Lock()

    def open_some(count):
        for _ in range(count):
            try:
                s, status = opener(server.port)
            except (OSError, ssl.SSLError) as e:
                with lock:
                    failed[0] += 1
                    if len(errors) < 5:
                        errors.append(str(e))
                continue
            with lock:
                socks.append(s)
                served[0] += status == 200

    t0 = time.monotonic()
    workers = [threading.Thread(target=open_some, args=(n // threads + (i < n % threads),), daemon=True)
               for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(600)
    open_secs = round(time.monotonic() - t0, 1)
    time.sleep(3)  # the server finishes its side (tickets written, buffers released)
    samples = []
    for _ in range(3):
        samples.append(snapshot(server))
        time.sleep(0.3)
    held = max(samples, key=lambda x: x["rss_kib"])
    status, new_client_s = new_client(kind, server.port)
    alive = sum(1 for s in socks if still_open(s))
    for s in socks:
        s.close()
    time.sleep(2)
    closed = snapshot(server)
    time.sleep(settle_secs)
    minute = snapshot(server)
    r = {"kind": kind, "n": n, "opened": len(socks), "failed": failed[0], "errors": errors, "served": served[0],
         "open_secs": open_secs, "still_open_after_hold": alive, "before": before, "held": held, "closed": closed,
         "a_minute_later": minute, "settle_secs": settle_secs, "new_client_status": status,
         "new_client_s": new_client_s,
         "rss_per_conn_kib": round((held["rss_kib"] - before["rss_kib"]) / max(1, len(socks)), 2),
         "alive": server.proc.poll() is None}
    log(f"  {server.name} {kind}: {served[0]}/{n} served and held ({failed[0]} failed {errors[:1]}, {alive} still "
        f"open) in {open_secs} s, RSS {before['rss_kib']} → {held['rss_kib']} KiB = {r['rss_per_conn_kib']} "
        f"KiB/conn; a new client got {status} in {new_client_s} s; after close {closed['rss_kib']} KiB, "
        f"{settle_secs} s later {minute['rss_kib']} KiB; fds {before['fds']} → {held['fds']} → {minute['fds']}")
    return r


# ------------------------------------------------------------------ TLS handshake flood


def client_hello():
    """The bytes of a real TLS 1.3 ClientHello (Python's ssl, as the flood's threads send)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_ctx().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def tls_flood(server, secs, threads, stalled):
    """`threads` threads doing full TLS 1.3 handshakes (no resumption) and closing at once, for
    `secs` seconds; `stalled` connections opened first, half silent, half with the first half of
    a ClientHello. Reports handshakes/s, the control client, when the server cut the stalled ones."""
    time.sleep(1)
    before = snapshot(server)
    control, peak = Control(server.port, tls=True), Peak(server)
    control.start()
    peak.start()
    hello = client_hello()
    t0 = time.monotonic()
    stalls = []  # [socket, kind, seconds until the server closed it or None]
    for i in range(stalled):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            kind = "truncated" if i % 2 else "silent"
            if kind == "truncated":
                s.sendall(hello[:len(hello) // 2])
            s.setblocking(False)
            stalls.append([s, kind, None])
        except OSError:
            pass
    stop, counts, lock = threading.Event(), {"handshakes": 0, "failed": 0, "errors": []}, threading.Lock()

    def hammer():
        ctx = tls_ctx()
        done = bad = 0
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost"):
                        done += 1
            except (OSError, ssl.SSLError) as e:
                bad += 1
                with lock:
                    if len(counts["errors"]) < 5:
                        counts["errors"].append(str(e))
        with lock:
            counts["handshakes"] += done
            counts["failed"] += bad

    def watch(until):
        while time.monotonic() < until:
            open_ = {x[0].fileno(): x for x in stalls if x[2] is None}
            if not open_:  # all cut: the flood goes on to its end
                time.sleep(max(0.0, min(0.25, until - time.monotonic())))
                continue
            poller = select.poll()
            for fd in open_:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(250):
                x = open_[fd]
                try:
                    gone = x[0].recv(4096) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone:
                    x[2] = round(time.monotonic() - t0, 1)

    flood_start = time.monotonic()
    hammers = [threading.Thread(target=hammer, daemon=True) for _ in range(threads)]
    for h in hammers:
        h.start()
    watch(flood_start + secs)
    stop.set()
    for h in hammers:
        h.join(15)
    flood_secs = time.monotonic() - flood_start
    r = {**control.finish(), "peak": peak.finish(), "before": before}
    cut = [x[2] for x in stalls if x[2] is not None]
    for x in stalls:
        x[0].close()
    time.sleep(2)
    r["after"] = snapshot(server)
    r.update({"secs": secs, "threads": threads, "handshakes": counts["handshakes"], "failed": counts["failed"],
              "errors": counts["errors"], "hs_per_s": round(counts["handshakes"] / flood_secs),
              "stalled": len(stalls), "stalled_cut": len(cut), "stalled_cut_max_s": max(cut) if cut else None,
              "stalled_cut_min_s": min(cut) if cut else None, "alive": server.proc.poll() is None})
    log(f"  {server.name} tls-flood: {r['handshakes']} full handshakes in {flood_secs:.1f} s = {r['hs_per_s']}/s "
        f"({r['failed']} failed {r['errors'][:1]}); stalled {len(stalls)}: {len(cut)} cut by the server "
        f"(at {r['stalled_cut_min_s']}–{r['stalled_cut_max_s']} s); control {r['control_ok']} ok, "
        f"{r['control_lost']} lost, slowest {r['control_slowest_s']} s; RSS {before['rss_kib']} → "
        f"{r['peak']['rss_kib']} → {r['after']['rss_kib']} KiB, fds {before['fds']} → {r['peak']['fds']} → "
        f"{r['after']['fds']}")
    return r


# ------------------------------------------------------------------ reloads and upgrades


PR_SET_CHILD_SUBREAPER = 36
adopted = set()  # pids of servers this script became the parent of (subreaper), not yet reaped


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap(pid, timeout):
    """Waits for `pid` (our child or, as subreaper, our adopted orphan) to exit; True if it did."""
    proc = bench.started.get(pid)
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
            bench.started.pop(pid, None)
            return True
        except subprocess.TimeoutExpired:
            return False
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid if not os.path.exists(f"/proc/{pid}") else 0
        if done == pid:
            adopted.discard(pid)
            return True
        time.sleep(0.005)
    return False


def kill_adopted():
    for pid in list(adopted):
        for p in bench.descendants(pid):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap(pid, 5)


def read_pid(path):
    try:
        return int(open(path).read().strip())
    except (OSError, ValueError):
        return None


def loop_result(before, after, done, n, took, failures, control, series, peak):
    return {"n": n, "done": done, "secs": round(took, 1), "per_op_ms": round(1000 * took / max(done, 1), 1),
            "failures": len(failures), "failure_samples": failures[:5], "before": before, "after": after,
            "peak": peak, "series": series, **control}


def log_loop(server, what, r):
    log(f"  {server} {what}: {r['done']}/{r['n']} in {r['secs']} s ({r['per_op_ms']} ms each, {r['failures']} "
        f"failed {r['failure_samples'][:1]}); polling client {r['control_ok']} ok, {r['control_lost']} lost, "
        f"slowest {r['control_slowest_s']} s; RSS {r['before']['rss_kib']} → {r['after']['rss_kib']} KiB, fds "
        f"{r['before']['fds']} → {r['after']['fds']}, processes {r['before']['procs']} → {r['after']['procs']}")


class StopLoop(Exception):
    """Raised by a step of `bounded_loop` that makes going on pointless: recorded, then the loop ends."""


def bounded_loop(n, max_secs, step, snap):
    """Runs `step(i)` for i in 0..n while under `max_secs`; a step returns a failure's text or
    None. A `snap()` every 100 steps. Returns the steps done, the seconds taken, the failures
    and the snapshots."""
    failures, series, done = [], [], 0
    t0 = time.monotonic()
    for i in range(n):
        if time.monotonic() - t0 > max_secs:
            break
        done += 1
        try:
            failure = step(i)
        except StopLoop as stop:
            failures.append(str(stop))
            break
        if failure:
            failures.append(failure)
        if (i + 1) % 100 == 0:
            series.append({"after": i + 1, **snap()})
    return done, time.monotonic() - t0, failures, series


def graced_reloads(server, n, max_secs):
    """n reloads, each `graced -k graceful --wait` (returns with the reload's outcome from the
    control socket), with a client polling every 10 ms."""
    time.sleep(1)
    before = snapshot(server)
    control, peak = Control(server.port, interval=0.01), Peak(server)
    control.start()
    peak.start()

    def step(_i):
        out = subprocess.run([bench.GRACED, "-k", "graceful", "--wait", "-f", server.conf], capture_output=True,
                             text=True, timeout=60)
        return (out.stdout + out.stderr).strip() if out.returncode != 0 else None

    done, took, failures, series = bounded_loop(n, max_secs, step, lambda: snapshot(server))
    time.sleep(2)
    r = loop_result(before, snapshot(server), done, n, took, failures, control.finish(), series, peak.finish())
    r["generation"] = server.generation()
    r["alive"] = server.proc.poll() is None
    log_loop("graced", "reloads", r)
    return r


def nginx_workers(master):
    return set(bench.descendants(master)[1:])


def nginx_reloads(server, n, max_secs):
    """n `nginx -s reload`, each waiting until the old workers have exited and as many new
    ones run, with a client polling every 10 ms."""
    time.sleep(1)
    master = server.proc.pid
    before = snapshot(server)
    control, peak = Control(server.port, interval=0.01), Peak(server)
    control.start()
    peak.start()

    def step(i):
        old = nginx_workers(master)
        out = subprocess.run(server.command() + ["-s", "reload"], capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return (out.stdout + out.stderr).strip()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            now = nginx_workers(master)
            if now and not (now & old) and len(now) == len(old):
                return None
            time.sleep(0.002)
        return f"reload {i + 1}: old workers still running after 20 s"

    done, took, failures, series = bounded_loop(n, max_secs, step, lambda: snapshot(server))
    time.sleep(2)
    r = loop_result(before, snapshot(server), done, n, took, failures, control.finish(), series, peak.finish())
    r["reloads_logged"] = server.reloads()
    r["alive"] = server.proc.poll() is None
    log_loop("nginx", "reloads", r)
    return r


def graced_upgrades(server, n, max_secs):
    """n binary upgrades, each `graced -k upgrade --wait` (returns once the successor serves),
    then waiting for the old process to drain and exit (reaped: this script is a subreaper),
    with a client polling every 10 ms. Figures are the serving process's."""
    time.sleep(1)
    pid_file = f"{server.dir}/{server.tag}.pid"
    current = [server.proc.pid]
    before = snapshot_pid(current[0])
    control, peak = Control(server.port, interval=0.01), Peak(pid=lambda: current[0])
    control.start()
    peak.start()
    drains = []

    def step(i):
        old = current[0]
        out = subprocess.run([bench.GRACED, "-k", "upgrade", "--wait", "-f", server.conf], capture_output=True,
                             text=True, timeout=90)
        new = read_pid(pid_file)
        if out.returncode != 0 or new is None or new == old:
            return f"upgrade {i + 1}: exit {out.returncode}: {(out.stdout + out.stderr).strip()}"
        adopted.add(new)
        current[0] = new
        t = time.monotonic()
        reaped = reap(old, 30)
        drains.append(time.monotonic() - t)
        return None if reaped else f"upgrade {i + 1}: the old process {old} still runs 30 s after the hand-over"

    done, took, failures, series = bounded_loop(n, max_secs, step, lambda: snapshot_pid(current[0]))
    time.sleep(2)
    r = loop_result(before, snapshot_pid(current[0]), done, n, took, failures, control.finish(), series,
                    peak.finish())
    r["old_exit_max_ms"] = round(1000 * max(drains), 1) if drains else None
    r["first_pid"], r["last_pid"] = server.proc.pid, current[0]
    r["alive"] = os.path.exists(f"/proc/{current[0]}")
    log_loop("graced", "upgrades", r)
    # Stop the last successor (by its pid-file lock) and reap it.
    subprocess.run([bench.GRACED, "-k", "stop", "--wait", "-f", server.conf], capture_output=True, timeout=60)
    if current[0] != server.proc.pid:
        reap(current[0], 20)
    server.proc = None if current[0] != server.proc.pid else server.proc
    return r


def nginx_upgrades(n, max_secs, port):
    """n nginx binary upgrades by its documented procedure: USR2 to the master (a new master
    starts beside it), then WINCH (old workers stop gracefully) and QUIT to the old master,
    waiting for it to exit. nginx runs daemonized for this (with `daemon off` it ignores USR2);
    as a subreaper this script adopts and reaps every master. A client polls every 10 ms."""
    s = NginxDaemon("upgrade", port, path=shutil.which("nginx"))
    s.start()
    pid_file = f"{s.dir}/{s.tag}.pid"
    current = [read_pid(pid_file)]
    adopted.add(current[0])
    time.sleep(1)
    before = snapshot_pid(current[0])
    control, peak = Control(port, interval=0.01), Peak(pid=lambda: current[0])
    control.start()
    peak.start()

    def step(i):
        old = current[0]
        workers = len(nginx_workers(old))
        os.kill(old, signal.SIGUSR2)
        if not bench.wait_file_changes(pid_file, str(old), 20):
            raise StopLoop(f"upgrade {i + 1}: no new master within 20 s")
        new = read_pid(pid_file)
        adopted.add(new)
        end = time.monotonic() + 20
        while time.monotonic() < end and len(nginx_workers(new)) < workers:
            time.sleep(0.002)
        os.kill(old, signal.SIGWINCH)
        os.kill(old, signal.SIGQUIT)
        current[0] = new
        return None if reap(old, 30) else f"upgrade {i + 1}: the old master {old} still runs 30 s after QUIT"

    try:
        done, took, failures, series = bounded_loop(n, max_secs, step, lambda: snapshot_pid(current[0]))
        time.sleep(2)
        r = loop_result(before, snapshot_pid(current[0]), done, n, took, failures, control.finish(), series,
                        peak.finish())
        r["alive"] = os.path.exists(f"/proc/{current[0]}")
        log_loop("nginx", "upgrades", r)
    finally:
        try:  # NginxDaemon.quit would wait for /proc/PID to vanish: a zombie until reaped here
            os.kill(current[0], signal.SIGQUIT)
        except ProcessLookupError:
            pass
        reap(current[0], 20)
    return r


# ------------------------------------------------------------------ the table


def mib(kib):
    return f"{kib / 1024:.0f}" if kib >= 10240 else f"{kib / 1024:.1f}"


def slow_cells(r):
    if not r:
        return "not measured", "–"
    return (f"{r.get('max_connected')} held at most, {r.get('closed_by_server')} closed by the server, "
            f"{r.get('connected_at_end')} still open at the end; service available "
            f"{r.get('available_secs')}/{r.get('secs')} s; slowhttptest: {r.get('exit')}"), (
        f"{mib(r['before']['rss_kib'])} → {mib(r['peak']['rss_kib'])} → {mib(r['after']['rss_kib'])} MiB, "
        f"fds {r['before']['fds']} → {r['peak']['fds']} → {r['after']['fds']}")


def lost(r):
    return f"{r['control_lost']} of {r['control_ok'] + r['control_lost']}" if r else "–"


def idle_cells(r, other=None):
    if not r:
        return "not measured", "–"
    ratio = ""
    if other and r["kind"] != "idle":
        o = other["rss_per_conn_kib"]
        ratio = f" (**{r['rss_per_conn_kib'] / o:.2f}× nginx**)" if o > 0 else " (nginx: ≤ 0)"
    text = (f"{r['served']} of {r['n']} served and held ({r['still_open_after_hold']} still open after the hold), "
            f"**{r['rss_per_conn_kib']} KiB per connection**{ratio}; a new client got {r['new_client_status']} "
            f"in {r['new_client_s']} s")
    if r["failed"]:
        text += f"; {r['failed']} not opened ({'; '.join(r['errors'][:2])})"
    return text, (f"{mib(r['before']['rss_kib'])} → {mib(r['held']['rss_kib'])} → {mib(r['closed']['rss_kib'])} "
                  f"MiB, {r['settle_secs']} s later {mib(r['a_minute_later']['rss_kib'])} MiB; fds "
                  f"{r['before']['fds']} → {r['held']['fds']} → {r['a_minute_later']['fds']}")


def flood_cells(r):
    if not r:
        return "not measured", "–"
    cut = (f"{r['stalled_cut']} of {r['stalled']} stalled connections cut by the server during the flood"
           + (f" (at {r['stalled_cut_min_s']}–{r['stalled_cut_max_s']} s)" if r["stalled_cut"] else ""))
    return (f"{r['hs_per_s']} full handshakes/s absorbed ({r['handshakes']}, {r['failed']} failed); {cut}; "
            f"control slowest {r['control_slowest_s']} s"), (
        f"{mib(r['before']['rss_kib'])} → {mib(r['peak']['rss_kib'])} → {mib(r['after']['rss_kib'])} MiB, "
        f"fds {r['before']['fds']} → {r['peak']['fds']} → {r['after']['fds']}")


def loop_cells(r, what):
    if not r:
        return "not measured", "–"
    text = (f"{r['done']} {what} in {r['secs']} s ({r['per_op_ms']} ms each), {r['failures']} failed"
            + (f" ({r['failure_samples'][0][:120]})" if r["failures"] else "") + f"; polling client slowest "
            f"{r['control_slowest_s']} s")
    every = ""
    if r.get("series"):
        rss, fd = [x["rss_kib"] for x in r["series"]], [x["fds"] for x in r["series"]]
        every = f"; every 100: RSS {min(rss):,}–{max(rss):,} KiB, fds {min(fd)}–{max(fd)}"
    return text, (f"{mib(r['before']['rss_kib'])} → {mib(r['after']['rss_kib'])} MiB (peak "
                  f"{mib(r['peak']['rss_kib'])}), fds {r['before']['fds']} → {r['after']['fds']} (peak "
                  f"{r['peak']['fds']}), processes {r['before']['procs']} → {r['after']['procs']}{every}")


def row_label(name, entry):
    p = entry["params"]
    return {
        "slowloris": f"slowloris ({p.get('conns')} connections, {p.get('secs')} s)",
        "slow body": f"slow body ({p.get('conns')} connections, {p.get('secs')} s)",
        "slow read": f"slow read ({p.get('conns')} connections, {p.get('secs')} s)",
        "idle": f"{p.get('n')} idle HTTP/1.1 keep-alive connections",
        "idle-tls": f"{p.get('n')} idle TLS connections (HTTPS, one request each)",
        "idle-h2": f"{p.get('n')} idle HTTP/2 connections (over TLS, one request each)",
        "tls-flood": (f"TLS handshake flood ({p.get('threads')} threads, {p.get('secs')} s, {p.get('stalled')} "
                      "stalled connections)"),
        "reloads": f"{p.get('n')} reloads",
        "upgrades": f"{p.get('n')} binary upgrades",
    }[name]


def render(store):
    attacks = store.get("attacks", {})
    runs = {}
    lines = [
        "| attack | run | graced | nginx | requests lost (graced / nginx) | graced RSS, fds | nginx RSS, fds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ATTACKS:
        e = attacks.get(name)
        if not e:
            continue
        g, n = e["servers"].get("graced"), e["servers"].get("nginx")
        if name in SLOW_ATTACKS:
            (gc, gm), (nc, nm) = slow_cells(g), slow_cells(n)
            lost_cell = f"{lost(g)} / {lost(n)}"
        elif name in IDLE_ATTACKS:
            (gc, gm), (nc, nm) = idle_cells(g, n), idle_cells(n)
            lost_cell = (f"{g['failed'] if g else '–'} / {n['failed'] if n else '–'} (connections not opened)")
        elif name == "tls-flood":
            (gc, gm), (nc, nm) = flood_cells(g), flood_cells(n)
            lost_cell = f"{lost(g)} / {lost(n)}"
        else:
            what = "`graced -k graceful --wait`" if name == "reloads" else "`graced -k upgrade --wait`"
            nwhat = ("`nginx -s reload` (old workers gone)" if name == "reloads"
                     else "USR2, WINCH + QUIT of the old master")
            (gc, gm), (nc, nm) = loop_cells(g, what), loop_cells(n, nwhat)
            if name == "reloads":
                gc += f"; generation {g['generation']} at the end" if g and g.get("generation") else ""
                nc += f"; {n['reloads_logged']} \"reconfiguring\" in its log" if n and n.get("reloads_logged") else ""
            lost_cell = f"{lost(g)} / {lost(n)}"
        ids = sorted({r["run"] for r in e["servers"].values()})
        when = ", ".join(f"{store['runs'][i]['date']} [{runs.setdefault(i, len(runs) + 1)}]" for i in ids)
        lines.append(f"| {row_label(name, e)} | {when} | {gc} | {nc} | {lost_cell} | {gm} | {nm} |")
    lines.append("")
    for rid, k in runs.items():
        e = store["runs"][rid]
        lines.append(f"[{k}] `bench/attack {e['args']}` at {e['date']}, {e['cpus']} CPUs, load "
                     f"{' '.join(e['load_start'])} at the start; {e['versions']}.  ")
    lines[-1] = lines[-1].rstrip()
    return "\n".join(lines)


def update_reliability(table, path):
    text = open(path).read()
    start, end = text.index(RESULTS_BEGIN) + len(RESULTS_BEGIN), text.index(RESULTS_END)
    with open(path, "w") as f:
        f.write(text[:start] + "\n" + table + "\n" + text[end:])


def versions():
    out = subprocess.run([bench.GRACED, "--version"], capture_output=True, text=True).stdout.strip()
    ng = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "")
    sh = subprocess.run(["slowhttptest", "-h"], capture_output=True, text=True).stdout
    m = re.search(r"version ([\d.]+)", sh)
    return (f"{out}, {ng}, slowhttptest {m.group(1) if m else '?'}, {ssl.OPENSSL_VERSION} (client), "
            f"h2 {getattr(h2, '__version__', 'missing') if h2 else 'missing'}")


def load_store():
    try:
        with open(STORE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"runs": {}, "attacks": {}}


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated, of: {', '.join(ATTACKS)}")
    ap.add_argument("--servers", default="graced,nginx")
    ap.add_argument("--conns", type=int, default=1000, help="slowhttptest connections")
    ap.add_argument("--secs", type=int, default=40, help="seconds per slowhttptest attack")
    ap.add_argument("--idle", type=int, default=10_000, help="idle HTTP/1.1 keep-alive connections")
    ap.add_argument("--idle-tls", type=int, default=5_000, help="idle TLS and HTTP/2 connections (each)")
    ap.add_argument("--settle", type=int, default=60, help="seconds after an idle burst closes")
    ap.add_argument("--flood-secs", type=int, default=20)
    ap.add_argument("--flood-threads", type=int, default=4)
    ap.add_argument("--flood-stalled", type=int, default=600, help="silent + truncated-ClientHello connections")
    ap.add_argument("--reloads", type=int, default=1000)
    ap.add_argument("--upgrades", type=int, default=1000)
    ap.add_argument("--loop-secs", type=int, default=900, help="time bound of the reload and upgrade loops")
    ap.add_argument("--no-update", action="store_true", help="do not touch RELIABILITY.md or attack.json")
    ap.add_argument("--render", action="store_true", help="only render RELIABILITY.md's table from attack.json")
    args = ap.parse_args()
    if args.render:
        update_reliability(render(load_store()), f"{bench.REPO}/RELIABILITY.md")
        return
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        sys.exit(f"unknown attack(s) {', '.join(unknown)}; known: {', '.join(ATTACKS)}")
    if "idle-h2" in attacks and h2 is None:
        sys.exit("idle-h2 needs Python's h2 package (Debian python3-h2, or pip install h2)")
    servers = [s.strip() for s in args.servers.split(",")]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(args.idle, args.idle_tls) + 1000:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for {max(args.idle, args.idle_tls)} idle connections")
    bench.prepare_files()
    if any(a in TLS_ATTACKS for a in attacks):
        bench.make_certs()
    run = {"run": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "date": now_utc(),
           "args": " ".join(sys.argv[1:]) or "(defaults)", "cpus": os.cpu_count(), "load_start": load(),
           "versions": versions()}
    params = {
        **{a: {"conns": args.conns, "secs": args.secs} for a in SLOW_ATTACKS},
        "idle": {"n": args.idle, "settle": args.settle},
        "idle-tls": {"n": args.idle_tls, "settle": args.settle},
        "idle-h2": {"n": args.idle_tls, "settle": args.settle},
        "tls-flood": {"secs": args.flood_secs, "threads": args.flood_threads, "stalled": args.flood_stalled},
        "reloads": {"n": args.reloads},
        "upgrades": {"n": args.upgrades},
    }
    results = {a: {} for a in attacks}
    kinds = {"graced": AttackGraced, "nginx": AttackNginx}

    def with_server(name, tag, tls, body):
        port = bench.TLS_PORTS[name] if tls else bench.PORTS[name]
        server = kinds[name](tag, port, tls="ec" if tls else None, h2=tls)
        server.start()
        log(f"{name} ({tag}) on port {port}")
        try:
            body(server)
        finally:
            if server.proc is not None:
                server.stop()
        time.sleep(1)

    try:
        for name in servers:
            # Each attack against a server started for it: memory one attack made the server
            # keep (nginx keeps what it freed) would otherwise serve the next one's connections.
            for a in attacks:
                tag = a.replace(" ", "-")
                if a in SLOW_ATTACKS:
                    def body(server, a=a):
                        results[a][name] = slow_attack(server, a, args.conns, args.secs)
                elif a in IDLE_ATTACKS:
                    def body(server, a=a):
                        results[a][name] = idle_attack(server, a, args.idle if a == "idle" else args.idle_tls,
                                                       args.settle)
                elif a == "tls-flood":
                    def body(server):
                        results["tls-flood"][name] = tls_flood(server, args.flood_secs, args.flood_threads,
                                                               args.flood_stalled)
                elif a == "reloads":
                    def body(server):
                        loop = graced_reloads if name == "graced" else nginx_reloads
                        results["reloads"][name] = loop(server, args.reloads, args.loop_secs)
                else:  # upgrades
                    become_subreaper()
                    if name == "nginx":
                        results["upgrades"][name] = nginx_upgrades(args.upgrades, args.loop_secs, bench.PORTS[name])
                        continue

                    def body(server):
                        results["upgrades"][name] = graced_upgrades(server, args.upgrades, args.loop_secs)
                with_server(name, tag, a in TLS_ATTACKS, body)
    finally:
        kill_adopted()
        cleanup()
    run["load_end"] = load()
    if args.no_update:
        print(json.dumps(results, indent=1, default=str))
        return
    # The latest result of each attack and server; a partial run replaces only what it ran.
    store = load_store()
    store["runs"][run["run"]] = run
    for a in attacks:
        entry = store["attacks"].setdefault(a, {"servers": {}})
        entry["params"] = params[a]
        for name, r in results[a].items():
            entry["servers"][name] = {**r, "run": run["run"], "params": params[a]}
    used = {r["run"] for e in store["attacks"].values() for r in e["servers"].values()}
    store["runs"] = {k: v for k, v in store["runs"].items() if k in used}
    with open(STORE, "w") as f:
        json.dump(store, f, indent=1, default=str)
    table = render(store)
    print(table)
    update_reliability(table, f"{bench.REPO}/RELIABILITY.md")
    log(f"results: {STORE}")


if __name__ == "__main__":
    main()
