#!/usr/bin/env python3
"""graced vs nginx vs Apache (mpm_event), side by side in one run. Started by bench/run.

Every server is started by hand on 127.0.0.1, each on its own port, as a child of this
script (nginx with `daemon off`, Apache with -DFOREGROUND), serving the same files from a
state directory outside the git tree. Only processes this script started are signalled,
always by PID. Every load loop is bounded in time (and the Rust client also in count).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STATE = os.environ.get("GRACED_BENCH_STATE", "/var/tmp/graced-bench")
WWW = f"{STATE}/www"
GRACED = os.environ.get("GRACED_BIN", f"{REPO}/target/release/graced")
CLIENT = os.environ.get("BENCH_CLIENT", f"{HERE}/client/target/release/bench-client")
PORTS = {"graced": 18081, "nginx": 18082, "apache": 18083}
HOLD_PORT = 18084
# 1 KiB and 100 KiB are the sizes; 1 MiB is beyond graced's 128 KiB inline limit,
# where files go out a window at a time (see crates/http/src/body.rs).
SIZES = {"1k": 1024, "100k": 100 * 1024, "1m": 1024 * 1024}

started = {}  # pid -> Popen, everything this script started and has not reaped


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ files and configs


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def prepare_files():
    if os.path.realpath(STATE).startswith(os.path.realpath(REPO)):
        sys.exit("the state directory must be outside the git tree")
    os.makedirs(WWW, exist_ok=True)
    os.chmod(STATE, 0o755)
    for name, size in SIZES.items():
        pattern = (b"graced benchmark " * ((size // 17) + 1))[:size]
        with open(f"{WWW}/{name}.txt", "wb") as f:
            f.write(pattern)
    write(f"{WWW}/index.html", "<!doctype html><title>bench</title>\n")
    for variant, body in (("A", "A\n"), ("B", "B\n")):
        write(f"{STATE}/root{variant}/v.txt", body)
    for d in (WWW, f"{STATE}/rootA", f"{STATE}/rootB"):
        os.chmod(d, 0o755)
        for f in os.listdir(d):
            os.chmod(f"{d}/{f}", 0o644)


class Server:
    name = "?"
    reload_sig = signal.SIGUSR1
    stop_sig = signal.SIGWINCH

    def __init__(self, tag, port, root=WWW, workers=None):
        # workers: None = the server's own "one per CPU" default (nginx `auto`, graced "auto").
        self.tag, self.port, self.root, self.workers = tag, port, root, workers
        self.dir = f"{STATE}/{self.name}"
        os.makedirs(self.dir, exist_ok=True)
        self.conf = f"{self.dir}/{tag}.conf"
        self.out = f"{self.dir}/{tag}.out"
        self.proc = None

    def error_log(self):
        """nginx's and Apache's own error log (graced writes to its output file)."""
        return f"{self.dir}/{self.tag}.error.log"

    def write_conf(self, path=None, root=None):
        write(path or self.conf, self.conf_text(root or self.root))

    # -- process control (by PID, only our own children)
    def start(self, wait=True):
        self.write_conf()
        self.before_start()
        out = open(self.out, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        started[self.proc.pid] = self.proc
        if wait and not wait_200(self.port, self.ready_path(), 10):
            raise RuntimeError(f"{self.name} did not answer 200 on port {self.port}; see {self.out}")
        return self.proc.pid

    def stop(self, sig=None, timeout=15):
        if self.proc is None:
            return
        stop_proc(self.proc, sig or self.stop_sig, timeout)
        self.proc = None

    def ready_path(self):
        return "/v.txt" if self.root != WWW else "/1k.txt"

    def before_start(self):
        pass

    def mem(self):
        return tree_mem(self.proc.pid)


class Graced(Server):
    name = "graced"
    reload_sig = signal.SIGUSR1
    stop_sig = signal.SIGWINCH

    def conf_text(self, root):
        return f"""# graced, benchmark configuration (bench/bench.py)
[server]
pid_file = "{self.dir}/{self.tag}.pid"
access_log = "off"
graceful_shutdown_timeout = "10s"
workers = {self.workers or '"auto"'}

[[listen]]
name = "http"
address = "127.0.0.1:{self.port}"

[[site]]
root = "{root}"
index = ["index.html"]
"""

    def command(self):
        return [GRACED, "-f", self.conf]

    def generation(self):
        out = subprocess.run([GRACED, "-k", "status", "-f", self.conf], capture_output=True, text=True, timeout=10)
        m = re.search(r"generation[= ](\d+)", out.stdout + out.stderr)
        return int(m.group(1)) if m else None

    def reloads(self):
        g = self.generation()
        return None if g is None else g - 1


class Nginx(Server):
    name = "nginx"
    reload_sig = signal.SIGHUP
    stop_sig = signal.SIGQUIT

    def conf_text(self, root):
        d = self.dir
        return f"""# nginx, benchmark configuration (bench/bench.py)
worker_processes {self.workers or 'auto'};
daemon off;
master_process on;
pid {d}/{self.tag}.pid;
error_log {d}/{self.tag}.error.log notice;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 15s;
    keepalive_requests 1000000;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        server_name _;
        root {root};
        index index.html;
    }}
}}
"""

    def before_start(self):
        os.makedirs(f"{self.dir}/tmp", exist_ok=True)
        truncate(self.error_log())

    def command(self):
        return ["nginx", "-p", f"{self.dir}/", "-e", self.error_log(), "-c", self.conf]

    def reloads(self):
        return count_lines(self.error_log(), r"\] \d+#\d+: reconfiguring$")


class Apache(Server):
    name = "apache"
    reload_sig = signal.SIGUSR1
    stop_sig = signal.SIGWINCH

    def conf_text(self, root):
        d = self.dir
        mods = "/usr/lib/apache2/modules"
        return f"""# Apache httpd (mpm_event, default MPM settings), benchmark configuration (bench/bench.py)
ServerRoot "{d}"
DefaultRuntimeDir "{d}/run-{self.tag}"
PidFile "{d}/run-{self.tag}/apache2.pid"
Mutex file:{d}/run-{self.tag} default
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
LoadModule dir_module {mods}/mod_dir.so
User www-data
Group www-data
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
ErrorLog "{self.error_log()}"
LogLevel notice
KeepAlive On
KeepAliveTimeout 15
MaxKeepAliveRequests 0
EnableSendfile On
TypesConfig /etc/mime.types
DocumentRoot "{root}"
DirectoryIndex index.html
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}">
    Options None
    AllowOverride None
    Require all granted
</Directory>
"""

    def before_start(self):
        os.makedirs(f"{self.dir}/run-{self.tag}", exist_ok=True)
        truncate(self.error_log())

    def command(self):
        return ["apache2", "-f", self.conf, "-DFOREGROUND"]

    def reloads(self):
        return count_lines(self.error_log(), r"Graceful restart requested|SIGUSR1 received")


class GracedBefore(Graced):
    """graced built from another tree (--baseline), for before/after ratios in the same run."""

    name = "graced-before"
    binary = None

    def command(self):
        return [self.binary, "-f", self.conf]

    def generation(self):
        out = subprocess.run([self.binary, "-k", "status", "-f", self.conf], capture_output=True, text=True, timeout=10)
        m = re.search(r"generation[= ](\d+)", out.stdout + out.stderr)
        return int(m.group(1)) if m else None


KINDS = {"graced": Graced, "nginx": Nginx, "apache": Apache}
BASELINE_PORT = 18085


def truncate(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()


def count_lines(path, pattern):
    rx = re.compile(pattern)
    try:
        with open(path, errors="replace") as f:
            return sum(1 for line in f if rx.search(line.rstrip("\n")))
    except FileNotFoundError:
        return None


# ------------------------------------------------------------------ processes


def descendants(pid):
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    for c in f.read().split():
                        if int(c) not in out:
                            out.extend(descendants(int(c)))
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree_mem(pid):
    rss = pss = 0
    pids = descendants(pid)
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                rss += next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
            with open(f"/proc/{p}/smaps_rollup") as f:
                pss += next((int(l.split()[1]) for l in f if l.startswith("Pss:")), 0)
        except OSError:
            pass
    return rss, pss, len(pids)


def cpu_seconds(pid):
    """On-CPU time of every thread of `pid` and its descendants (schedstat, ns precision)."""
    total = 0
    for p in descendants(pid):
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return total / 1e9


def stop_proc(proc, sig, timeout):
    """Signals our child `proc` by PID, waits; SIGKILLs it and the descendants it had if it hangs."""
    kids = descendants(proc.pid)
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        log(f"pid {proc.pid} did not exit within {timeout}s; killing it and {kids[1:]}")
        for p in kids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)
    started.pop(proc.pid, None)


def cleanup(*_):
    for pid, proc in list(started.items()):
        if proc.poll() is None:
            for p in descendants(pid):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=5)
            except Exception:
                pass
        started.pop(pid, None)


def get_status(port, path, timeout=5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return int(data.split(b" ")[1]) if data.startswith(b"HTTP/") else None
    except (OSError, ValueError, IndexError):
        return None


def wait_200(port, path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_status(port, path) == 200:
            return True
        time.sleep(0.005)
    return False


def spawn(cmd, **kw):
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)
    started[proc.pid] = proc
    return proc


def finish(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    started.pop(proc.pid, None)
    return out or "", err or ""


def kv(line):
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


# ------------------------------------------------------------------ wrk


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(text):
    r = {"requests": 0, "rps": 0.0, "p99_ms": None, "connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}
    m = re.search(r"(\d+) requests in", text)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if m:
        r["p99_ms"] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["connect"], r["read"], r["write"], r["timeout"] = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    r["failed"] = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["non2xx"]
    # wrk's request count includes the non-2xx responses; socket errors are attempts on top.
    r["attempts"] = r["requests"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def wrk_cmd(port, path, conns, secs, close=False, latency=False):
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--timeout", "10s"]
    if latency:
        cmd.append("--latency")
    if close:
        cmd += ["-H", "Connection: close"]
    return cmd + [f"http://127.0.0.1:{port}{path}"]


# ------------------------------------------------------------------ phases


def phase_throughput(results, runs, secs, one_worker=False):
    """wrk against every server, interleaved, the order rotating run by run. one_worker:
    graced `workers = 1` and nginx `worker_processes 1` (Apache has no comparable
    single-threaded setting), i.e. each server gets the one core the load client leaves it."""
    what = "one worker each" if one_worker else "servers' default workers"
    log(f"throughput ({what}): wrk -t1 -c64 -d{secs}s --latency, {runs} runs, servers interleaved, order rotating")
    if one_worker:
        servers = {name: KINDS[name]("w1", PORTS[name], workers=1) for name in ("graced", "nginx")}
    else:
        servers = {name: KINDS[name]("main", PORTS[name]) for name in KINDS}
        if GracedBefore.binary:
            servers = {"graced-before": GracedBefore("main", BASELINE_PORT), **servers}
    for s in servers.values():
        s.start()
    time.sleep(1)
    idle = {name: tree_mem(s.proc.pid) for name, s in servers.items()}
    raw = results.setdefault("throughput_1w" if one_worker else "throughput", [])
    loaded = results.setdefault("rss_loaded_1w" if one_worker else "rss_loaded", [])
    try:
        for run in range(runs):
            # The order rotates with each run, so that no server always runs first or
            # always follows the same one (with 3 runs each server takes each place once).
            order = list(servers.items())
            order = order[run % len(order):] + order[:run % len(order)]
            for size in SIZES:
                for name, s in order:
                    samples = []
                    stop = threading.Event()

                    def sample(pid=s.proc.pid):
                        # Sample memory a few times in the middle of the run.
                        for _ in range(int(secs * 2)):
                            if stop.wait(0.5):
                                break
                            samples.append(tree_mem(pid))

                    t = threading.Thread(target=sample)
                    t.start()
                    cpu0, client0 = cpu_seconds(s.proc.pid), os.times()
                    out = subprocess.run(
                        wrk_cmd(s.port, f"/{size}.txt", 64, secs, latency=True),
                        capture_output=True, text=True, timeout=secs + 60,
                    )
                    cpu1, client1 = cpu_seconds(s.proc.pid), os.times()
                    stop.set()
                    t.join()
                    r = parse_wrk(out.stdout)
                    r.update(server=name, size=size, run=run)
                    done = max(r["requests"], 1)
                    r["server_cpu_us"] = round(1e6 * (cpu1 - cpu0) / done, 2)
                    wrk_cpu = (client1.children_user - client0.children_user) + (
                        client1.children_system - client0.children_system)
                    r["wrk_cpu_us"] = round(1e6 * wrk_cpu / done, 2)
                    r["wrk_cores"] = round(wrk_cpu / secs, 2)
                    raw.append(r)
                    if size == "1k" and samples:
                        rss = max(x[0] for x in samples)
                        pss = max(x[1] for x in samples)
                        procs = max(x[2] for x in samples)
                        loaded.append({"server": name, "run": run, "rss_kib": rss, "pss_kib": pss, "procs": procs})
                    log(f"  run {run} {size:>4} {name:<6} {r['rps']:>9.0f} req/s  p99 {r['p99_ms']} ms  "
                        f"errors {r['failed']}  server CPU {r['server_cpu_us']} µs/req  wrk {r['wrk_cores']} cores")
                    time.sleep(1)
    finally:
        for s in servers.values():
            s.stop()
    if not one_worker:
        results["rss_idle_longrun"] = {k: {"rss_kib": v[0], "pss_kib": v[1], "procs": v[2]} for k, v in idle.items()}


def run_clients(port, secs, disturb):
    """The four clients at once against `port` for `secs`; `disturb()` starts the storm
    (after 0.5 s) and returns a process whose output is the storm's own report."""
    path = "/1k.txt"
    procs = {
        "wrk keep-alive": spawn(wrk_cmd(port, path, 16, secs), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "wrk close": spawn(wrk_cmd(port, path, 8, secs, close=True), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "client keep-alive": spawn([CLIENT, "load", "--port", str(port), "--path", path, "--conns", "8",
                                    "--secs", str(secs), "--mode", "keepalive"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "client close": spawn([CLIENT, "load", "--port", str(port), "--path", path, "--conns", "4",
                               "--secs", str(secs), "--mode", "close"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    time.sleep(0.5)
    storm = disturb()
    out = {}
    for name, p in procs.items():
        stdout, stderr = finish(p, secs + 60)
        if name.startswith("wrk"):
            r = parse_wrk(stdout)
        else:
            d = kv(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
            ok, failed = int(d.get("ok", 0)), int(d.get("failed", 0))
            r = {"requests": ok, "failed": failed, "attempts": ok + failed, "rps": float(d.get("rps", 0)),
                 "detail": stdout.strip()}
        r["per_100k"] = 1e5 * r["failed"] / r["attempts"] if r["attempts"] else None
        out[name] = r
    storm_out = ""
    if storm is not None:
        storm_out, _ = finish(storm, 120)
    return out, storm_out.strip()


def phase_reload_storm(results, secs, rate):
    log(f"reload storm: {rate}/s for {secs}s, four clients")
    for name, kind in KINDS.items():
        s = kind("storm", PORTS[name])
        pid = s.start()
        sig = int(s.reload_sig)

        def disturb():
            return spawn([CLIENT, "signal", "--pid", str(pid), "--sig", str(sig), "--rate", str(rate),
                          "--secs", str(secs)], stdout=subprocess.PIPE, text=True)

        clients, storm = run_clients(s.port, secs + 1, disturb)
        time.sleep(0.5)
        reloads = s.reloads()
        s.stop()
        results.setdefault("reload_storm", {})[name] = {"clients": clients, "signaller": storm, "reloads": reloads}
        log(f"  {name}: reloads {reloads} ({storm}); " + "; ".join(
            f"{k} {v['failed']}/{v['attempts']}" for k, v in clients.items()))
        time.sleep(1)


def phase_restart_storm(results, secs, rate):
    log(f"restart storm: {rate}/s for {secs}s, four clients")
    variants = [
        ("graced (holder + WINCH)", Graced("hold", HOLD_PORT), True),
        ("graced (HUP)", Graced("hup", PORTS["graced"]), None),
        ("nginx (QUIT + start)", Nginx("restart", PORTS["nginx"]), False),
        ("apache (graceful-stop + start)", Apache("restart", PORTS["apache"]), False),
    ]
    variants = [v for v in variants if v[1].name in KINDS]
    if GracedBefore.binary:
        variants.insert(2, ("graced-before (HUP)", GracedBefore("hup", BASELINE_PORT), None))
    for label, s, hold in variants:
        if hold is None:
            pid = s.start()
            result_box = {}

            def disturb():
                return spawn([CLIENT, "signal", "--pid", str(pid), "--sig", str(int(signal.SIGHUP)),
                              "--rate", str(rate), "--secs", str(secs)], stdout=subprocess.PIPE, text=True)

            clients, storm = run_clients(s.port, secs + 1, disturb)
            time.sleep(0.5)
            performed = s.reloads()
            s.stop()
        else:
            s.write_conf()
            s.before_start()
            cmd = [CLIENT, "restarts", "--port", str(s.port), "--rate", str(rate), "--secs", str(secs),
                   "--stop-sig", str(int(s.stop_sig)), "--ready-path", "/1k.txt", "--delay-ms", "500",
                   "--tail-ms", "1500", "--log", s.out]
            if hold:
                cmd += ["--hold", "1"]
            driver = spawn(cmd + ["--"] + s.command(), stdout=subprocess.PIPE, text=True)
            line = driver.stdout.readline().strip()
            if line != "ready":
                finish(driver, 30)
                raise RuntimeError(f"{label}: the restart driver did not get ready ({line!r})")
            holder = {"proc": driver}

            def disturb():
                return None

            clients, _ = run_clients(s.port, secs + 1, disturb)
            storm, _ = finish(driver, 120)
            storm = storm.strip()
            performed = int(kv(storm).get("restarts", 0)) if storm else None
        results.setdefault("restart_storm", {})[label] = {"clients": clients, "driver": storm, "restarts": performed}
        log(f"  {label}: restarts {performed} ({storm}); " + "; ".join(
            f"{k} {v['failed']}/{v['attempts']}" for k, v in clients.items()))
        time.sleep(1)


def phase_latency(results, n):
    log(f"reload latency: median of {n}")
    for name, kind in KINDS.items():
        s = kind("latency", PORTS[name], root=f"{STATE}/rootA")
        a, b = f"{s.dir}/latency-a.conf", f"{s.dir}/latency-b.conf"
        s.write_conf(a, f"{STATE}/rootA")
        s.write_conf(b, f"{STATE}/rootB")
        pid = s.start()
        out = subprocess.run(
            [CLIENT, "latency", "--port", str(s.port), "--pid", str(pid), "--sig", str(int(s.reload_sig)),
             "--n", str(n), "--path", "/v.txt", "--conf", s.conf, "--conf-a", a, "--conf-b", b,
             "--body-a", "A\n", "--body-b", "B\n"],
            capture_output=True, text=True, timeout=300,
        )
        s.stop()
        its = [kv(l) for l in out.stdout.splitlines() if l.startswith("iteration=")]
        results.setdefault("latency", {})[name] = its
        first = [float(i["first_us"]) for i in its if i.get("first_us") not in (None, "nan")]
        every = [float(i["all_us"]) for i in its if i.get("all_us") not in (None, "nan")]
        log(f"  {name}: first {med(first)} us, all {med(every)} us ({len(its)} iterations)")
        time.sleep(0.5)


def phase_startup(results, n):
    log(f"start-up to first 200, idle memory, graceful stop of an idle server: {n} each")
    for name, kind in KINDS.items():
        s = kind("startup", PORTS[name])
        s.write_conf()
        s.before_start()
        out = subprocess.run(
            [CLIENT, "startstop", "--port", str(s.port), "--path", "/1k.txt", "--n", str(n),
             "--stop-sig", str(int(s.stop_sig)), "--idle-ms", "500", "--log", s.out, "--"] + s.command(),
            capture_output=True, text=True, timeout=300,
        )
        its = [kv(l) for l in out.stdout.splitlines() if l.startswith("iteration=")]
        results.setdefault("startup", {})[name] = its
        log(f"  {name}: start {med([float(i['startup_ms']) for i in its])} ms, "
            f"stop {med([float(i['stop_ms']) for i in its])} ms, "
            f"idle RSS {med([int(i['idle_rss_kib']) for i in its])} KiB")


def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


# ------------------------------------------------------------------ report


def versions():
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except Exception as e:
            return f"? ({e})"

    return {
        "graced": first_line([GRACED, "--version"]) + " (" + first_line(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
        + ("+dirty" if subprocess.run(["git", "-C", REPO, "diff", "--quiet", "HEAD", "--", "src"]).returncode else "")
        + ")",
        "nginx": first_line(["nginx", "-v"]),
        "apache": first_line(["apache2", "-v"]),
        "wrk": first_line(["wrk", "--version"]),
        "rustc": first_line(["rustc", "--version"]),
        "kernel": os.uname().release,
        "cpus": str(os.cpu_count()),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
    }


def ratio(a, b, digits=2):
    if a is None or b in (None, 0):
        return "–"
    return f"{a / b:.{digits}f}"


def summary(results):
    """Medians per server and the ratios graced/nginx and graced/apache."""
    s = {}
    for size in SIZES:
        for name in ("graced-before", *KINDS):
            rows = [r for r in results.get("throughput", []) if r["server"] == name and r["size"] == size]
            if rows:
                s[f"rps_{size}", name] = med([r["rps"] for r in rows])
                s[f"p99_{size}", name] = med([r["p99_ms"] for r in rows])
                s[f"cpu_{size}", name] = med([r.get("server_cpu_us") for r in rows])
            rows = [r for r in results.get("throughput_1w", []) if r["server"] == name and r["size"] == size]
            if rows:
                s[f"rps1_{size}", name] = med([r["rps"] for r in rows])
                s[f"p99_1_{size}", name] = med([r["p99_ms"] for r in rows])
                s[f"cpu1_{size}", name] = med([r.get("server_cpu_us") for r in rows])
    for name in KINDS:
        rows = [r for r in results.get("rss_loaded", []) if r["server"] == name]
        if rows:
            s["rss_loaded", name] = med([r["rss_kib"] for r in rows])
            s["pss_loaded", name] = med([r["pss_kib"] for r in rows])
        its = results.get("startup", {}).get(name, [])
        if its:
            s["startup", name] = med([float(i["startup_ms"]) for i in its if i["startup_ms"] != "nan"])
            s["stop", name] = med([float(i["stop_ms"]) for i in its if "stop_ms" in i])
            s["rss_idle", name] = med([int(i["idle_rss_kib"]) for i in its if "idle_rss_kib" in i])
            s["pss_idle", name] = med([int(i["idle_pss_kib"]) for i in its if "idle_pss_kib" in i])
        its = results.get("latency", {}).get(name, [])
        if its:
            s["lat_first", name] = med([float(i["first_us"]) / 1000 for i in its if i["first_us"] != "nan"])
            s["lat_all", name] = med([float(i["all_us"]) / 1000 for i in its if i["all_us"] != "nan"])
    return s


def throughput_runs_table(rows):
    """One line per wrk run of a throughput phase."""
    out = ["| run | size | server | req/s | p99 ms | requests | errors (connect/read/write/timeout/non-2xx) "
           "| server CPU µs/req | wrk CPU µs/req | wrk cores |",
           "|---|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['run']} | {r['size']} | {r['server']} | {r['rps']:.0f} | {r['p99_ms']} | {r['requests']} | "
                   f"{r['connect']}/{r['read']}/{r['write']}/{r['timeout']}/{r['non2xx']} | "
                   f"{r.get('server_cpu_us', '–')} | {r.get('wrk_cpu_us', '–')} | {r.get('wrk_cores', '–')} |")
    return out


def render(results, args):
    s = summary(results)
    v = results["versions"]
    lines = []
    add = lines.append
    add(f"# Benchmark run {results['date']}")
    add("")
    add(f"Generated by `bench/run` ({results.get('args', 'full run')}). Machine: {v['cpus']} vCPUs "
        f"({v['cpu']}), kernel {v['kernel']}, shared with other workloads; the load clients run on the "
        "same cores as the servers. Compare servers within this run only.")
    add("")
    add(f"Load average (1/5/15 min) at start: {' '.join(results['load_start'])}; at end: "
        f"{' '.join(results.get('load_end', ['?']))}. "
        f"Duration: {results.get('duration_s', '?')} s.")
    add("")
    for k, val in v.items():
        add(f"* {k}: {val}")
    add("")
    add("## Summary (medians; ratio = graced ÷ other)")
    add("")
    add(summary_table(s, results))
    add("")
    if results.get("throughput"):
        add("## Static throughput (wrk -t1 -c64 --latency, keep-alive)")
        add("")
        add("Server CPU: on-CPU time of all the server's threads and processes during the run, per "
            "request. wrk: its CPU per request and in cores (it shares the 2 cores with the server).")
        add("")
        lines += throughput_runs_table(results["throughput"])
        add("")
        add("Memory under the 1 KiB load (max of samples during each run, all processes):")
        add("")
        add("| run | server | RSS KiB | PSS KiB | processes |")
        add("|---|---|---:|---:|---:|")
        for r in results.get("rss_loaded", []):
            add(f"| {r['run']} | {r['server']} | {r['rss_kib']} | {r['pss_kib']} | {r['procs']} |")
        add("")
        add("Idle memory of the long-running instances before the load: "
            + ", ".join(f"{k} {x['rss_kib']} KiB RSS / {x['pss_kib']} KiB PSS ({x['procs']} processes)"
                        for k, x in results.get("rss_idle_longrun", {}).items()))
        add("")
    if results.get("throughput_1w"):
        add("## Static throughput, one worker each (graced `workers = 1`, nginx `worker_processes 1`)")
        add("")
        add("The same measurement with each server held to one worker: the core the load client "
            "does not use. Apache is left out: mpm_event has no single-threaded setting to compare.")
        add("")
        lines += throughput_runs_table(results["throughput_1w"])
        add("")
    for key, title, what in (("reload_storm", "Reload storm", "reloads"), ("restart_storm", "Restart storm", "restarts")):
        if not results.get(key):
            continue
        add(f"## {title}")
        add("")
        add(f"| server | {what} performed | client | attempts | failed | per 100k | req/s |")
        add("|---|---:|---|---:|---:|---:|---:|")
        for name, r in results[key].items():
            for client, c in r["clients"].items():
                per = "–" if c["per_100k"] is None else f"{c['per_100k']:.1f}"
                add(f"| {name} | {r.get(what)} | {client} | {c['attempts']} | {c['failed']} | {per} | {c['rps']:.0f} |")
        add("")
        add("Raw reports:")
        add("")
        add("```")
        for name, r in results[key].items():
            add(f"{name}: storm: {r.get('signaller') or r.get('driver')}")
            for client, c in r["clients"].items():
                detail = c.get("detail") or " ".join(f"{k}={c[k]}" for k in
                                                     ("requests", "connect", "read", "write", "timeout", "non2xx"))
                add(f"  {client}: {detail}")
        add("```")
        add("")
    if results.get("latency"):
        add("## Reload latency (µs from the signal; first = first response with the new root; "
            "all = after which every request got it)")
        add("")
        add("| server | first (each iteration) | all (each iteration) |")
        add("|---|---|---|")
        for name, its in results["latency"].items():
            add(f"| {name} | {' '.join(i['first_us'] for i in its)} | {' '.join(i['all_us'] for i in its)} |")
        add("")
    if results.get("startup"):
        add("## Start-up to the first 200, idle memory, graceful stop of an idle server")
        add("")
        add("| server | start-up ms | stop ms | idle RSS KiB | idle PSS KiB | processes |")
        add("|---|---|---|---|---|---|")
        for name, its in results["startup"].items():
            add(f"| {name} | {' '.join(i.get('startup_ms', '?') for i in its)} | "
                f"{' '.join(i.get('stop_ms', '?') for i in its)} | {' '.join(i.get('idle_rss_kib', '?') for i in its)} | "
                f"{' '.join(i.get('idle_pss_kib', '?') for i in its)} | {' '.join(i.get('procs', '?') for i in its)} |")
        add("")
    add("## Rules")
    add("")
    add(RULES)
    return "\n".join(lines) + "\n"


RULES = """\
* Throughput: `wrk -t1 -c64 -d10s --latency --timeout 10s`, 1 KiB, 100 KiB and 1 MiB files, the three servers
  interleaved within each of the 3 runs, their order rotating from run to run (each server goes
  first once); medians of req/s and of p99.
* Failed requests per 100k = failures ÷ attempts × 100,000. wrk: failures = socket errors (connect,
  read, write, timeout at 10 s) + non-2xx responses; attempts = completed responses + socket errors.
  bench-client (`bench/client`): it never retries; every request that did not get a complete 2xx
  response is a failure (connect refused/reset, write error, EOF or reset before the last body byte,
  10 s timeout, non-2xx). A keep-alive connection the server closed after a `Connection: close`
  response is reconnected before the next request and that is not a failure. After a failed connect it
  pauses 10 ms (so the count does not measure how fast a client can spin).
* Storms run the four clients at once for 21 s: wrk keep-alive (-c16), wrk `Connection: close` (-c8),
  bench-client keep-alive (8 connections), bench-client new connection per request (4); the storm
  starts 0.5 s in and lasts 20 s.
* Reloads performed: graced's generation counter (`graced -k status`) − 1; nginx: `reconfiguring`
  lines in its error log; Apache: `SIGUSR1 received` / `Graceful restart requested` lines.
* Restarts: graced under a socket holder (`bench-client restarts --hold`): the holder binds the port
  once, starts graced with it as fd 3 (`LISTEN_FDS=1`, `LISTEN_PID`, `LISTEN_FDNAMES=http`), and per
  restart sends SIGWINCH, waits for the exit and starts the next one at once (what systemd does on
  `systemctl restart` of a socket-activated service), then waits for its first 200 before the next
  restart. The HUP variant sends SIGHUP to one graced. nginx (SIGQUIT) and Apache (SIGWINCH,
  graceful-stop) are stopped and started the same way, binding their own ports.
* Reload latency: the config is swapped by rename (new document root whose /v.txt differs), then the
  signal (graced USR1, nginx HUP to the master, Apache USR1); 2 probers with a new connection per
  request and 1 keep-alive prober run from 20 ms before the signal until 200 ms without an old answer.
  first = signal → first response with the new content; all = signal → the send time after which
  every request got the new content (never less than first).
* Start-up: spawn → first 200 on a new connection (polled every 100 µs). Stop: graceful stop signal
  (graced WINCH, nginx QUIT, Apache WINCH) → exit of the main process, after 500 ms idle. Memory: RSS
  (and PSS) summed over the server's process and all its descendants.
* Configs: access logs off everywhere; keep-alive timeout 15 s and unlimited keep-alive requests for
  all three; nginx `worker_processes auto; sendfile on; tcp_nopush on`; Apache mpm_event with its
  default MPM settings, `EnableSendfile On`, only the modules needed (mpm_event, authz_core, mime, dir).
"""


def summary_table(s, results):
    rows = [
        ("Throughput 1 KiB, req/s (higher is better)", "rps_1k", 0),
        ("Throughput 1 KiB, p99 ms", "p99_1k", 2),
        ("Throughput 100 KiB, req/s (higher is better)", "rps_100k", 0),
        ("Throughput 100 KiB, p99 ms", "p99_100k", 2),
        ("Throughput 1 MiB, req/s (higher is better)", "rps_1m", 0),
        ("Throughput 1 MiB, p99 ms", "p99_1m", 2),
        ("Server CPU per request, 1 KiB, µs", "cpu_1k", 2),
        ("Server CPU per request, 100 KiB, µs", "cpu_100k", 2),
        ("Server CPU per request, 1 MiB, µs", "cpu_1m", 2),
        ("One worker each: throughput 1 KiB, req/s", "rps1_1k", 0),
        ("One worker each: throughput 100 KiB, req/s", "rps1_100k", 0),
        ("One worker each: throughput 1 MiB, req/s", "rps1_1m", 0),
        ("One worker each: throughput 1 KiB, p99 ms", "p99_1_1k", 2),
        ("One worker each: throughput 100 KiB, p99 ms", "p99_1_100k", 2),
        ("One worker each: throughput 1 MiB, p99 ms", "p99_1_1m", 2),
        ("One worker each: server CPU per request 1 KiB, µs", "cpu1_1k", 2),
        ("One worker each: server CPU per request 100 KiB, µs", "cpu1_100k", 2),
        ("One worker each: server CPU per request 1 MiB, µs", "cpu1_1m", 2),
        ("Reload latency to first new response, ms", "lat_first", 3),
        ("Reload latency to all new requests, ms", "lat_all", 3),
        ("Start-up to first 200, ms", "startup", 2),
        ("Graceful stop of an idle server, ms", "stop", 2),
        ("RSS idle, KiB (all processes)", "rss_idle", 0),
        ("RSS under 1 KiB load, KiB (all processes)", "rss_loaded", 0),
        ("PSS idle, KiB", "pss_idle", 0),
        ("PSS under 1 KiB load, KiB", "pss_loaded", 0),
    ]
    out = ["| measurement | graced | nginx | apache | ÷ nginx | ÷ apache |", "|---|---:|---:|---:|---:|---:|"]

    def fmt(x, d):
        return "–" if x is None else f"{x:.{d}f}"

    for title, key, d in rows:
        g, n, a = (s.get((key, k)) for k in ("graced", "nginx", "apache"))
        if g is None and n is None and a is None:
            continue
        out.append(f"| {title} | {fmt(g, d)} | {fmt(n, d)} | {fmt(a, d)} | {ratio(g, n)} | {ratio(g, a)} |")
    before = []
    for size in SIZES:
        g, b = s.get((f"rps_{size}", "graced")), s.get((f"rps_{size}", "graced-before"))
        if g and b:
            before.append(f"| Throughput {size}, req/s | {b:.0f} | {g:.0f} | {ratio(g, b)} |")
        g, b, n = (s.get((f"cpu_{size}", k)) for k in ("graced", "graced-before", "nginx"))
        if g and b:
            before.append(f"| Server CPU per request {size}, µs (÷ nginx) | {b:.2f} ({ratio(b, n)}) | "
                          f"{g:.2f} ({ratio(g, n)}) | {ratio(g, b)} |")
    if before:
        out += ["", "graced before (`--baseline`) and after this change, same run:", "",
                "| measurement | before | after | after ÷ before |", "|---|---:|---:|---:|", *before]
    storms = []
    for key, title, what in (("reload_storm", "reload 20/s", "reloads"), ("restart_storm", "restart 5/s", "restarts")):
        for name, r in results.get(key, {}).items():
            c = r["clients"]
            storms.append(f"| {title} | {name} | {r.get(what)} | "
                          + " | ".join(per100k(c[k]) for k in ("wrk keep-alive", "wrk close", "client keep-alive",
                                                                  "client close")) + " |")
    if storms:
        out += ["", "Failed requests per 100k under the storms (the four clients run at once, 20 s):", "",
                "| storm | server | performed | wrk keep-alive | wrk `Connection: close` | bench-client keep-alive "
                "| bench-client new connection |", "|---|---|---:|---:|---:|---:|---:|", *storms]
    return "\n".join(out)


def per100k(c):
    return "–" if c["per_100k"] is None else f"{c['per_100k']:.1f}"


def update_benchmarks_md(text_table, results, path):
    try:
        doc = open(path).read()
    except FileNotFoundError:
        return
    begin, end = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
    if begin not in doc or end not in doc:
        return
    block = f"{begin}\nLatest run: [bench/results/{results['date']}.md](bench/results/{results['date']}.md) " \
            f"(load average {' '.join(results['load_start'])} at the start). Medians; ratio = graced ÷ other.\n\n" \
            f"{text_table}\n{end}"
    doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    open(path, "w").write(doc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", default="startup,throughput,throughput1,latency,reload,restart")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10, help="seconds per throughput run")
    ap.add_argument("--storm-secs", type=int, default=20)
    ap.add_argument("--n", type=int, default=20, help="reload latency iterations")
    ap.add_argument("--startups", type=int, default=10)
    ap.add_argument("--servers", default="graced,nginx,apache", help="a subset, for development")
    ap.add_argument("--baseline", default=os.environ.get("GRACED_BASELINE"),
                    help="another graced binary (e.g. built from the last commit): added to the throughput "
                         "runs and the HUP storm as graced-before")
    ap.add_argument("--out", default=None, help="results file (default bench/results/DATE.md)")
    ap.add_argument("--no-update", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--render", metavar="JSON", help="only re-render a saved run (STATE/last-results.json)")
    args = ap.parse_args()
    GracedBefore.binary = args.baseline
    for name in list(KINDS):
        if name not in args.servers.split(","):
            del KINDS[name]
    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(1)))
    if args.render:
        results = json.load(open(args.render))
        write_results(results, args)
        return
    prepare_files()
    date = datetime.date.today().isoformat()
    results = {"date": date, "load_start": open("/proc/loadavg").read().split()[:3], "versions": versions(),
               "args": " ".join(sys.argv[1:]) or "full run"}
    t0 = time.monotonic()
    phases = args.phases.split(",")
    try:
        if "startup" in phases:
            phase_startup(results, args.startups)
        if "throughput" in phases:
            phase_throughput(results, args.runs, args.secs)
        if "throughput1" in phases:
            phase_throughput(results, args.runs, args.secs, one_worker=True)
        if "latency" in phases:
            phase_latency(results, args.n)
        if "reload" in phases:
            phase_reload_storm(results, args.storm_secs, 20)
        if "restart" in phases:
            phase_restart_storm(results, args.storm_secs, 5)
    finally:
        cleanup()
    results["load_end"] = open("/proc/loadavg").read().split()[:3]
    results["duration_s"] = round(time.monotonic() - t0)
    with open(f"{STATE}/last-results.json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    if args.out is None:
        with open(f"{HERE}/results/{results['date']}.json", "w") as f:
            json.dump(results, f, indent=1, default=str)
    write_results(results, args)


def write_results(results, args):
    out = args.out or f"{HERE}/results/{results['date']}.md"
    text = render(results, args)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    if not args.no_update and args.out is None:
        update_benchmarks_md(summary_table(summary(results), results), results, f"{REPO}/BENCHMARKS.md")
    log(f"results: {out}")
    print(summary_table(summary(results), results))


if __name__ == "__main__":
    main()
