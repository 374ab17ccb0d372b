#!/usr/bin/env python3
"""Slow and idle attacks on graced and nginx in one run (bench/attack): slowloris headers, slow
body and slow read with Debian's slowhttptest, then 10,000 idle HTTP/1.1 keep-alive connections.
Writes bench/results/DATE-attack.json and the table in RELIABILITY.md.

For each attack and each server: slowhttptest's own verdict (is the service available, how many
of its connections the server closed), a control client requesting /1k.txt every 200 ms
throughout (requests lost = control requests that failed or took over 5 s), and the server's
memory (RSS of all its processes) and descriptors before, at the peak and after.

Servers are started as children of this script on 127.0.0.1 (bench.py's Graced and Nginx
classes and state directory); only processes this script started are signalled, by PID. Every
load is bounded in time (slowhttptest -l) and count (-c, --idle).
"""

import argparse
import csv
import datetime
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time

import bench
from bench import STATE, WWW, Graced, Nginx, cleanup, log, spawn, tree_mem, finish, get_status

RESULTS_BEGIN = "<!-- attack-results-begin -->"
RESULTS_END = "<!-- attack-results-end -->"


class AttackGraced(Graced):
    """graced with room for 10,000 connections and a keep-alive long enough to hold them idle;
    every other limit (header_timeout 20 s, send_timeout 60 s) at its default."""

    def conf_text(self, root):
        return super().conf_text(root) + '\n[limits]\nmax_connections = 16384\nkeepalive_timeout = "120s"\n'


class AttackNginx(Nginx):
    """nginx likewise: 12,000 connections per worker, keepalive_timeout 120 s, other timeouts
    at their defaults (client_header_timeout and client_body_timeout 60 s, send_timeout 60 s)."""

    def conf_text(self, root):
        text = super().conf_text(root)
        text = text.replace("worker_connections 4096;", "worker_connections 12000;")
        text = text.replace("daemon off;", "worker_rlimit_nofile 19000;\ndaemon off;")
        return text.replace("keepalive_timeout 15s;", "keepalive_timeout 120s;")


def fds(pid):
    total = 0
    for p in bench.descendants(pid):
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return total


def snapshot(server):
    rss, _, procs = tree_mem(server.proc.pid)
    return {"rss_kib": rss, "fds": fds(server.proc.pid), "procs": procs}


class Control(threading.Thread):
    """A well-behaved client: GET /1k.txt on a new connection every 200 ms; counts the
    requests that failed or took longer than 5 s (lost), and the slowest."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.ok, self.lost, self.slowest = port, threading.Event(), 0, 0, 0.0

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            status = get_status(self.port, "/1k.txt", timeout=5)
            took = time.monotonic() - t
            self.slowest = max(self.slowest, took)
            if status == 200 and took < 5:
                self.ok += 1
            else:
                self.lost += 1
            self.stop.wait(0.2)

    def finish(self):
        self.stop.set()
        self.join(10)
        return {"control_ok": self.ok, "control_lost": self.lost, "control_slowest_s": round(self.slowest, 3)}


class Peak(threading.Thread):
    """Samples the server's RSS and descriptors every 250 ms; keeps the highest."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.stop, self.rss, self.fds = server, threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            s = snapshot(self.server)
            self.rss, self.fds = max(self.rss, s["rss_kib"]), max(self.fds, s["fds"])
            self.stop.wait(0.25)

    def finish(self):
        self.stop.set()
        self.join(5)
        return {"rss_kib": self.rss, "fds": self.fds}


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


def idle_attack(server, n, settle_secs):
    """n keep-alive connections, each served one request, then held idle."""
    time.sleep(1)
    before = snapshot(server)
    socks, failed = [], 0
    t0 = time.monotonic()
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(b"GET /1k.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            socks.append(s)
        except OSError:
            failed += 1
    served = 0
    for s in socks:
        try:
            data = b""
            while len(data) < 1024 or b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            served += data.startswith(b"HTTP/1.1 200")
        except OSError:
            pass
    open_secs = round(time.monotonic() - t0, 1)
    time.sleep(3)
    held = snapshot(server)
    t = time.monotonic()
    new_client = get_status(server.port, "/1k.txt", timeout=5)
    new_client_s = round(time.monotonic() - t, 3)
    alive = 0
    for s in socks:
        try:
            s.setblocking(False)
            alive += s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for s in socks:
        s.close()
    time.sleep(2)
    closed = snapshot(server)
    time.sleep(settle_secs)
    minute = snapshot(server)
    r = {"opened": len(socks), "failed": failed, "served": served, "open_secs": open_secs,
         "still_open_after_hold": alive, "before": before, "held": held, "closed": closed, "a_minute_later": minute,
         "new_client_status": new_client, "new_client_s": new_client_s,
         "rss_per_conn_kib": round((held["rss_kib"] - before["rss_kib"]) / max(1, len(socks)), 2),
         "alive": server.proc.poll() is None}
    log(f"  {server.name} idle: {served}/{n} served and held ({failed} failed, {alive} still open), RSS "
        f"{before['rss_kib']} → {held['rss_kib']} KiB = {r['rss_per_conn_kib']} KiB/conn; a new client got "
        f"{new_client} in {new_client_s} s; after close {closed['rss_kib']} KiB, a minute later "
        f"{minute['rss_kib']} KiB; fds {before['fds']} → {held['fds']} → {minute['fds']}")
    return r


def render(results):
    g, n = results["servers"].get("graced", {}), results["servers"].get("nginx", {})

    def slow_cell(r):
        if not r:
            return "not measured"
        return (f"{r.get('max_connected')} held at most, {r.get('closed_by_server')} closed by the server, "
                f"{r.get('connected_at_end')} still open at the end; service available "
                f"{r.get('available_secs')}/{r.get('secs')} s; slowhttptest: {r.get('exit')}")

    def lost(r):
        return f"{r['control_lost']} of {r['control_ok'] + r['control_lost']}" if r else "–"

    def mem(r):
        if not r:
            return "–"
        return (f"{r['before']['rss_kib'] // 1024} → {r['peak']['rss_kib'] // 1024} → {r['after']['rss_kib'] // 1024} MiB, "
                f"fds {r['before']['fds']} → {r['peak']['fds']} → {r['after']['fds']}")

    lines = [
        f"Run of {results['date']} (`bench/attack {results['args']}`), {results['cpus']} CPUs, load "
        f"{' '.join(results['load_start'])} at the start; {results['versions']}.",
        "",
        "| attack | graced | nginx | requests lost (graced / nginx) | graced RSS before → peak → after, fds | nginx RSS, fds |",
        "|---|---|---|---|---|---|",
    ]
    for name in SLOW:
        gr, nr = g.get(name), n.get(name)
        lines.append(f"| {name} ({results['conns']} connections, {results['secs']} s) | {slow_cell(gr)} | "
                     f"{slow_cell(nr)} | {lost(gr)} / {lost(nr)} | {mem(gr)} | {mem(nr)} |")

    def idle_cell(r):
        if not r:
            return "not measured"
        return (f"{r['served']} served and held ({r['still_open_after_hold']} still open after the hold), "
                f"{r['rss_per_conn_kib']} KiB per connection; a new client got {r['new_client_status']} in "
                f"{r['new_client_s']} s")

    def idle_mem(r):
        if not r:
            return "–"
        return (f"{r['before']['rss_kib'] // 1024} → {r['held']['rss_kib'] // 1024} → {r['closed']['rss_kib'] // 1024} "
                f"MiB, a minute later {r['a_minute_later']['rss_kib'] // 1024} MiB; fds {r['before']['fds']} → "
                f"{r['held']['fds']} → {r['a_minute_later']['fds']}")

    gi, ni = g.get("idle"), n.get("idle")
    lines.append(f"| {results['idle']} idle HTTP/1.1 keep-alive connections | {idle_cell(gi)} | {idle_cell(ni)} | "
                 f"{gi['failed'] if gi else '–'} / {ni['failed'] if ni else '–'} (connections not opened) | "
                 f"{idle_mem(gi)} | {idle_mem(ni)} |")
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
    return f"{out}, {ng}, slowhttptest {m.group(1) if m else '?'}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attacks", default="slowloris,slow body,slow read,idle")
    ap.add_argument("--servers", default="graced,nginx")
    ap.add_argument("--conns", type=int, default=1000, help="slowhttptest connections")
    ap.add_argument("--secs", type=int, default=40, help="seconds per slowhttptest attack")
    ap.add_argument("--idle", type=int, default=10_000, help="idle keep-alive connections")
    ap.add_argument("--settle", type=int, default=60, help="seconds after the idle burst closes")
    ap.add_argument("--no-update", action="store_true", help="do not touch RELIABILITY.md")
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + 1000:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for {args.idle} idle connections")
    bench.prepare_files()
    results = {"date": datetime.date.today().isoformat(), "args": " ".join(sys.argv[1:]) or "(defaults)",
               "cpus": os.cpu_count(), "load_start": open("/proc/loadavg").read().split()[:3],
               "versions": versions(), "conns": args.conns, "secs": args.secs, "idle": args.idle, "servers": {}}
    kinds = {"graced": (AttackGraced, bench.PORTS["graced"]), "nginx": (AttackNginx, bench.PORTS["nginx"])}
    attacks = args.attacks.split(",")
    try:
        for name in args.servers.split(","):
            cls, port = kinds[name]
            server = cls("attack", port)
            server.start()
            log(f"{name} on port {port}")
            r = results["servers"].setdefault(name, {"start": snapshot(server)})
            for attack in attacks:
                if attack in SLOW:
                    r[attack] = slow_attack(server, attack, args.conns, args.secs)
                elif attack == "idle":
                    r["idle"] = idle_attack(server, args.idle, args.settle)
            server.stop()
    finally:
        cleanup()
    results["load_end"] = open("/proc/loadavg").read().split()[:3]
    out = f"{bench.HERE}/results/{results['date']}-attack.json"
    with open(out, "w") as f:
        json.dump(results, f, indent=1, default=str)
    table = render(results)
    print(table)
    if not args.no_update:
        update_reliability(table, f"{bench.REPO}/RELIABILITY.md")
    log(f"results: {out}")


if __name__ == "__main__":
    main()
