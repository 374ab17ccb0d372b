#!/usr/bin/env python3
"""graced vs nginx vs Apache (mpm_event), side by side in one run; compression (phase compress)
graced vs nginx with a gzip sidecar and on the fly; over HTTPS (phases https,
handshake, tlsidle, tlsstorm) and HTTP/2 over TLS (phases h2, h2storm, with h2load) graced vs
nginx vs Caddy. Started by bench/run.

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
import resource
import select
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STATE = os.environ.get("GRACED_BENCH_STATE", "/var/tmp/graced-bench")
WWW = f"{STATE}/www"


def cargo_target_dir(manifest_dir):
    """Where cargo builds `manifest_dir`'s project (honours CARGO_TARGET_DIR and .cargo/config)."""
    try:
        out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
                             cwd=manifest_dir, capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)["target_directory"]
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return f"{manifest_dir}/target"


# bench/run exports both (from cargo's own report of what it built); the fallbacks ask cargo.
GRACED = os.environ.get("GRACED_BIN") or f"{cargo_target_dir(REPO)}/release/graced"
CLIENT = os.environ.get("BENCH_CLIENT") or f"{cargo_target_dir(HERE + '/client')}/release/bench-client"
PORTS = {"graced": 18081, "nginx": 18082, "apache": 18083}
HOLD_PORT = 18084
# HTTPS phases: each server on its own port (caddy's admin API, for its reloads, on another).
TLS_PORTS = {"graced": 18441, "nginx": 18442, "caddy": 18443}
CADDY_ADMIN_PORT = 18449
CERTS = f"{STATE}/tls"
# ECDSA P-256 for every HTTPS phase; RSA 2048 as well for the handshake phase.
CERT_KINDS = {"ec": "ECDSA P-256", "rsa": "RSA 2048"}
TLS_IDLE_CONNS = 10_000
# 1 KiB and 100 KiB are the issue's sizes; 1 MiB is beyond graced's 128 KiB inline limit,
# where files go out a window at a time (see crates/http/src/body.rs).
SIZES = {"1k": 1024, "100k": 100 * 1024, "1m": 1024 * 1024}
SIZE_NAMES = {"1k": "1 KiB", "100k": "100 KiB", "1m": "1 MiB"}

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


def make_certs():
    """A local CA and two leaves for localhost/127.0.0.1 (ECDSA P-256, RSA 2048), made once with
    the openssl CLI in the state directory; every server gets the same files."""
    os.makedirs(CERTS, exist_ok=True)
    if all(os.path.exists(f"{CERTS}/{k}.{x}") for k in CERT_KINDS for x in ("pem", "key")):
        return

    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "365",
         "-subj", "/CN=graced bench CA", "-keyout", f"{CERTS}/ca.key", "-out", f"{CERTS}/ca.pem")
    write(f"{CERTS}/leaf.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
          "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    for kind, newkey in (("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("rsa", ["-newkey", "rsa:2048"])):
        ossl("req", *newkey, "-nodes", "-subj", "/CN=localhost", "-keyout", f"{CERTS}/{kind}.key",
             "-out", f"{CERTS}/{kind}.csr")
        ossl("x509", "-req", "-in", f"{CERTS}/{kind}.csr", "-CA", f"{CERTS}/ca.pem", "-CAkey", f"{CERTS}/ca.key",
             "-CAcreateserial", "-days", "365", "-extfile", f"{CERTS}/leaf.ext", "-out", f"{CERTS}/{kind}.pem")
    for f in os.listdir(CERTS):
        os.chmod(f"{CERTS}/{f}", 0o644)  # the servers' workers (nginx's run as nobody) read them


def cert_files(kind):
    return f"{CERTS}/{kind}.pem", f"{CERTS}/{kind}.key"


def raise_nofile():
    """preexec_fn for TLS servers and clients: RLIMIT_NOFILE up to the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    name = "?"
    reload_sig = signal.SIGUSR1
    stop_sig = signal.SIGWINCH

    def __init__(self, tag, port, root=WWW, workers=None, tls=None, h2=False, extra="", cpus=None):
        # workers: None = the server's own "one per CPU" default (nginx `auto`, graced "auto").
        # cpus: None, or a `taskset -c` list the server's processes and threads are pinned to.
        # tls: None (plain HTTP) or a CERT_KINDS key: HTTPS only, TLS 1.3, with that certificate.
        # h2: HTTP/2 offered by ALPN besides HTTP/1.1 (the HTTP/2 phases), stated in the config.
        self.tag, self.port, self.root, self.workers, self.tls, self.h2 = tag, port, root, workers, tls, h2
        # extra: more configuration (graced: after the [[site]] keys; nginx: in the server block).
        self.extra, self.cpus = extra, cpus
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
        # taskset execs the server (same PID) with the affinity its threads and workers inherit.
        command = (["taskset", "-c", self.cpus] if self.cpus else []) + self.command()
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     env=self.env(), preexec_fn=raise_nofile if self.tls else None)
        started[self.proc.pid] = self.proc
        if wait and not wait_200(self.port, self.ready_path(), 10, tls=bool(self.tls), proc=self.proc):
            code = self.proc.poll()
            self.stop()
            raise RuntimeError(f"{self.name} did not answer 200 on {'https' if self.tls else 'http'} port "
                               f"{self.port}" + (f" (exited with {code})" if code is not None else "")
                               + f"; see {self.out}")
        return self.proc.pid

    def env(self):
        return None

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
        if self.tls:
            return self.tls_conf_text(root)
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
{self.extra}"""

    def tls_conf_text(self, root):
        # The TLS keys as on branch tls-base (crates/config/src/raw.rs): [[listen]] tls,
        # [[site]] certificate/key. A graced without them refuses the file: "not measured".
        cert, key = cert_files(self.tls)
        # HTTP/2 is on by default ([http2] enabled = true); the HTTP/2 phases say so explicitly,
        # with the default stream limit (nginx's http2_max_concurrent_streams is 128 as well).
        http2 = "\n[http2]\nenabled = true\nmax_concurrent_streams = 128\n" if self.h2 else ""
        return f"""# graced, benchmark configuration, HTTPS (bench/bench.py)
[server]
pid_file = "{self.dir}/{self.tag}.pid"
access_log = "off"
graceful_shutdown_timeout = "10s"
workers = {self.workers or '"auto"'}

[limits]
max_connections = 16384
header_timeout = "60s"
keepalive_timeout = "15s"
{http2}
[[listen]]
name = "https"
address = "127.0.0.1:{self.port}"
tls = true

[[site]]
root = "{root}"
index = ["index.html"]
certificate = "{cert}"
key = "{key}"
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
        listen, tls, limits = f"127.0.0.1:{self.port}", "", ""
        events = "worker_connections 4096;"
        if self.tls:
            cert, key = cert_files(self.tls)
            listen += " ssl"
            if self.h2:
                listen += " http2"  # nginx 1.22: a `listen` parameter (`http2 on;` is 1.25.1+)
            # 10,000 idle TLS connections may all land on one worker.
            events = "worker_connections 12000;"
            limits = "worker_rlimit_nofile 19000;\n"
            tls = f"""
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        client_header_timeout 60s;"""
        return f"""# nginx, benchmark configuration (bench/bench.py)
worker_processes {self.workers or 'auto'};
{limits}daemon off;
master_process on;
pid {d}/{self.tag}.pid;
error_log {d}/{self.tag}.error.log notice;
events {{ {events} }}
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
        listen {listen};
        server_name _;
        root {root};
        index index.html;{tls}
        {self.extra}
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


class Caddy(Server):
    """Caddy 2.6 (Debian's `caddy`), HTTPS only: `tls CERT KEY`, file_server, no automatic HTTPS
    or redirects, no logs, the admin API on a loopback port for reloads (POST /load). HTTP/2 is
    on by default over TLS (the default `protocols h1 h2 h3`), so `h2` changes nothing here."""

    name = "caddy"
    reload_sig = None  # reloads go through the admin API: see AdminReloads
    stop_sig = signal.SIGTERM  # graceful stop

    def conf_text(self, root):
        cert, key = cert_files(self.tls or "ec")
        return f"""# Caddy, benchmark configuration (bench/bench.py)
{{
	admin 127.0.0.1:{CADDY_ADMIN_PORT}
	auto_https off
	storage file_system {self.dir}/data
	servers {{
		timeouts {{
			read_header 60s
			idle 15s
		}}
	}}
}}
https://:{self.port} {{
	bind 127.0.0.1
	tls {cert} {key} {{
		protocols tls1.3
	}}
	root * {root}
	file_server
}}
"""

    def env(self):
        return {**os.environ, "HOME": self.dir, "XDG_DATA_HOME": f"{self.dir}/data",
                "XDG_CONFIG_HOME": f"{self.dir}/config"}

    def command(self):
        return ["caddy", "run", "--config", self.conf, "--adapter", "caddyfile"]

    def reload(self, timeout=10):
        """One forced reload of the same Caddyfile through the admin API; True on 200."""
        body = open(self.conf, "rb").read()
        req = (f"POST /load HTTP/1.1\r\nHost: 127.0.0.1:{CADDY_ADMIN_PORT}\r\n"
               "Content-Type: text/caddyfile\r\nCache-Control: must-revalidate\r\n"
               f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        try:
            with socket.create_connection(("127.0.0.1", CADDY_ADMIN_PORT), timeout=timeout) as s:
                s.sendall(req)
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            return data.startswith(b"HTTP/1.1 200")
        except OSError:
            return False


class AdminReloads:
    """Caddy's reload storm: forced reloads through the admin API, `rate` a second for `secs`
    (each waits for the previous; late ones are not made up). Looks like a finished process."""

    pid = None

    def __init__(self, server, rate, secs):
        self.ok = self.failed = 0
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self.run, args=(server, rate, secs))
        self.thread.start()

    def run(self, server, rate, secs):
        for k in range(int(rate * secs)):
            at = self.t0 + k / rate
            if at > self.t0 + secs + 5:
                break
            time.sleep(max(0.0, at - time.monotonic()))
            if server.reload():
                self.ok += 1
            else:
                self.failed += 1
        self.secs = time.monotonic() - self.t0

    def communicate(self, timeout=None):
        self.thread.join(timeout)
        return f"sent={self.ok} failed={self.failed} secs={self.secs:.2f} (POST /load)", ""

    def kill(self):
        pass


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


class GracedMetrics(Graced):
    """graced with a status listener (`status = true`): requests are timed into the histogram,
    and the phase scrapes /metrics every second (issue 18: metrics on vs off)."""

    name = "graced-metrics"

    def conf_text(self, root):
        return super().conf_text(root) + f"""
[[listen]]
name = "status"
address = "127.0.0.1:{STATUS_PORT}"
status = true
"""


# The metrics phase's own ports, apart from the other phases' (several benches may share a machine).
METRICS_PORTS = {"off": 18191, "on": 18192}
STATUS_PORT = 18193
KINDS = {"graced": Graced, "nginx": Nginx, "apache": Apache}
TLS_KINDS = {"graced": Graced, "nginx": Nginx, "caddy": Caddy}
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


def tls_context():
    # No chain check (as wrk and bench-client); SNI localhost; TLS 1.3 only.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def get_status(port, path, timeout=5, tls=False):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            s = tls_context().wrap_socket(raw, server_hostname="localhost") if tls else raw
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


def wait_200(port, path, timeout, tls=False, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_status(port, path, tls=tls) == 200:
            return True
        if proc is not None and proc.poll() is not None:
            return False
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


def wrk_cmd(port, path, conns, secs, close=False, latency=False, tls=False, headers=(), cpus=None):
    cmd = (["taskset", "-c", cpus] if cpus else []) + ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--timeout", "10s"]
    for h in headers:
        cmd += ["-H", h]
    if latency:
        cmd.append("--latency")
    if close:
        cmd += ["-H", "Connection: close"]
    return cmd + [f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}"]


# ------------------------------------------------------------------ phases


def wrk_runs(servers, runs, secs, raw, loaded, tls=False):
    """wrk -t1 -c64 --latency against every server for each size, interleaved, the order
    rotating run by run; server CPU per request from /proc, wrk's CPU from its rusage."""
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
                    wrk_cmd(s.port, f"/{size}.txt", 64, secs, latency=True, tls=tls),
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
        wrk_runs(servers, runs, secs, raw, loaded)
    finally:
        for s in servers.values():
            s.stop()
    if not one_worker:
        results["rss_idle_longrun"] = {k: {"rss_kib": v[0], "pss_kib": v[1], "procs": v[2]} for k, v in idle.items()}


# ------------------------------------------------------------------ compression phase

# A 100 KiB HTML page of words in random order (gzip makes it about 3× smaller, real pages 4-6×),
# its gzip -9 sidecar with the page's mtime, and what each server is configured with in the two
# modes.
COMPRESS_PAGE = "c/page.html"
COMPRESS_MODES = {
    "sidecar": {
        "graced": "[site.compression]\nprecompressed = true\nencodings = [\"gzip\"]\n",
        "nginx": "gzip_static on; gzip_vary on;",
    },
    "fly": {
        "graced": "[site.compression]\non_the_fly = true\nencodings = [\"gzip\"]\n",
        "nginx": "gzip on; gzip_comp_level 6; gzip_min_length 512; gzip_vary on; gzip_types text/plain;",
    },
}
COMPRESS_NAMES = {"sidecar": "gzip sidecar (nginx gzip_static)", "fly": "on the fly (nginx gzip on, level 6)"}


def prepare_compress_files():
    import gzip
    import random
    rnd = random.Random(20)
    words = ["static", "site", "server", "graced", "<p>", "</p>", "<li>", "</li>", "compression", "cache",
             "request", "response", "header", "systemd", "reload", "generation", "the", "a", "of", "to"]
    words += [f"w{n}" for n in range(300)]
    text = "<!doctype html><html><body>\n"
    while len(text) < 100 * 1024:
        text += " ".join(rnd.choice(words) for _ in range(12)) + "\n"
    page = text[:100 * 1024].encode()
    path = f"{WWW}/{COMPRESS_PAGE}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.chmod(os.path.dirname(path), 0o755)
    with open(path, "wb") as f:
        f.write(page)
    with open(path + ".gz", "wb") as f:
        f.write(gzip.compress(page, 9, mtime=0))
    st = os.stat(path)
    os.utime(path + ".gz", ns=(st.st_atime_ns, st.st_mtime_ns))
    for p in (path, path + ".gz"):
        os.chmod(p, 0o644)
    return len(page), os.path.getsize(path + ".gz")


def gzip_check(port):
    """(Content-Encoding, body length) of one GET of the page with Accept-Encoding: gzip."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /{COMPRESS_PAGE} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(l.split(":", 1) for l in head.decode("latin-1").lower().split("\r\n")[1:] if ":" in l)
    return fields.get("content-encoding", "").strip() or "identity", len(body), fields.get("vary", "").strip()


# The pinned layout of the compress phase: the server (all its processes and threads, one
# worker) on CPU 0, wrk on CPU 1, so that req/s measures what one core of server does rather
# than how the scheduler shares two cores between the server's workers and the load client.
PIN_SERVER_CPU, PIN_CLIENT_CPU = "0", "1"


def can_pin():
    """Whether CPUs 0 and 1 are both ours (the pinned layout needs two)."""
    return {0, 1} <= os.sched_getaffinity(0)


def phase_compress(results, runs, secs, pinned=False):
    """The 100 KiB page with Accept-Encoding: gzip, wrk -t1 -c64: graced and nginx each with
    the gzip sidecar, then each compressing on the fly (graced once per file version and
    cached; nginx per response, level 6); servers interleaved, the order rotating.
    pinned: each server with one worker (graced `workers = 1`, nginx `worker_processes 1`),
    pinned with its every thread to CPU 0, and wrk pinned to CPU 1 (results["compress_pinned"])."""
    size, gz_size = prepare_compress_files()
    layout = f"pinned: server on CPU {PIN_SERVER_CPU} with one worker, wrk on CPU {PIN_CLIENT_CPU}" if pinned \
        else "shared: servers' default workers, wrk on the same cores"
    log(f"compress ({layout}): {COMPRESS_PAGE} {size} bytes (sidecar {gz_size}), wrk -t1 -c64 -d{secs}s "
        f"-H 'Accept-Encoding: gzip', {runs} runs")
    raw = results.setdefault("compress_pinned" if pinned else "compress", [])
    how = {"workers": 1, "cpus": PIN_SERVER_CPU} if pinned else {}
    for mode, extra in COMPRESS_MODES.items():
        servers = {name: KINDS[name](f"gz-{mode}", PORTS[name], extra=extra[name], **how)
                   for name in ("graced", "nginx") if name in KINDS}
        if GracedBefore.binary:
            servers["graced-before"] = GracedBefore(f"gz-{mode}", BASELINE_PORT, extra=extra["graced"], **how)
        for s in servers.values():
            s.start()
        try:
            lengths = {}
            for name, s in servers.items():
                enc, lengths[name], vary = gzip_check(s.port)
                log(f"  {mode} {name}: Content-Encoding {enc}, {lengths[name]} body bytes, Vary {vary or '-'}")
                if enc != "gzip":
                    raise RuntimeError(f"{name} ({mode}) did not send gzip: {enc}")
            for run in range(runs):
                order = list(servers.items())
                order = order[run % len(order):] + order[:run % len(order)]
                for name, s in order:
                    cpu0, client0 = cpu_seconds(s.proc.pid), os.times()
                    out = subprocess.run(
                        wrk_cmd(s.port, f"/{COMPRESS_PAGE}", 64, secs, latency=True,
                                headers=["Accept-Encoding: gzip"], cpus=PIN_CLIENT_CPU if pinned else None),
                        capture_output=True, text=True, timeout=secs + 60,
                    )
                    cpu1, client1 = cpu_seconds(s.proc.pid), os.times()
                    r = parse_wrk(out.stdout)
                    done = max(r["requests"], 1)
                    wrk_cpu = (client1.children_user - client0.children_user) + (
                        client1.children_system - client0.children_system)
                    r.update(server=name, mode=mode, run=run, gzip_bytes=lengths[name],
                             server_cpu_us=round(1e6 * (cpu1 - cpu0) / done, 2),
                             wrk_cpu_us=round(1e6 * wrk_cpu / done, 2))
                    raw.append(r)
                    log(f"  run {run} {mode:>7} {name:<6} {r['rps']:>9.0f} req/s  p99 {r['p99_ms']} ms  "
                        f"errors {r['failed']}  server CPU {r['server_cpu_us']} µs/req")
                    time.sleep(1)
        finally:
            for s in servers.values():
                s.stop()


COMPRESS_LAYOUTS = {
    "compress": "Shared: each server with its default workers (one per CPU), wrk on the same two cores",
    "compress_pinned": f"Pinned: each server with one worker, pinned to CPU {PIN_SERVER_CPU}; wrk pinned to "
                       f"CPU {PIN_CLIENT_CPU}",
}


def compress_layout_table(raw, pinned=False):
    """pinned: also how busy each server kept its one core (CPU per request × req/s): near
    100 % the req/s is the server's capacity; well below, the client (or the machine) held it back."""
    busy_head, busy_rule = (" graced core busy | nginx core busy |", "---:|---:|") if pinned else ("", "")
    lines = ["| 100 KiB HTML, Accept-Encoding: gzip | graced req/s | nginx req/s | ÷ nginx | "
             f"graced CPU µs/req | nginx CPU µs/req | ÷ nginx |{busy_head} errors |",
             f"|---|---:|---:|---:|---:|---:|---:|{busy_rule}---:|"]
    for mode in COMPRESS_MODES:
        def m(name, key):
            return med([r[key] for r in raw if r["mode"] == mode and r["server"] == name])

        def busy(name):
            return med([r["server_cpu_us"] * r["rps"] / 1e4 for r in raw if r["mode"] == mode and r["server"] == name])
        g_rps, n_rps, g_cpu, n_cpu = m("graced", "rps"), m("nginx", "rps"), m("graced", "server_cpu_us"), m("nginx", "server_cpu_us")
        errors = sum(r["failed"] for r in raw if r["mode"] == mode)
        cores = f" {busy('graced'):.0f} % | {busy('nginx'):.0f} % |" if pinned else ""
        lines.append(f"| {COMPRESS_NAMES[mode]} | {g_rps:.0f} | {n_rps:.0f} | {ratio(g_rps, n_rps)} | "
                     f"{g_cpu} | {n_cpu} | {ratio(g_cpu, n_cpu)} |{cores} {errors} |")
    if any(r["server"] == "graced-before" for r in raw):
        lines += ["", "| 100 KiB HTML, Accept-Encoding: gzip | graced req/s | graced-before req/s | after ÷ before | "
                  "graced CPU µs/req | graced-before CPU µs/req | after ÷ before |", "|---|---:|---:|---:|---:|---:|---:|"]
        for mode in COMPRESS_MODES:
            def b(name, key):
                return med([r[key] for r in raw if r["mode"] == mode and r["server"] == name])
            g_rps, b_rps = b("graced", "rps"), b("graced-before", "rps")
            g_cpu, b_cpu = b("graced", "server_cpu_us"), b("graced-before", "server_cpu_us")
            lines.append(f"| {COMPRESS_NAMES[mode]} | {g_rps:.0f} | {b_rps:.0f} | {ratio(g_rps, b_rps)} | "
                         f"{g_cpu} | {b_cpu} | {ratio(g_cpu, b_cpu)} |")
    return lines


def compress_summary_table(results):
    """One table per layout measured (shared, pinned), each under its one-line description
    when both are there (the pinned one always: its figures are not the shared table's)."""
    present = [key for key in COMPRESS_LAYOUTS if results.get(key)]
    lines = []
    for key in present:
        if len(present) > 1 or key == "compress_pinned":
            lines += ([""] if lines else []) + [f"{COMPRESS_LAYOUTS[key]}:", ""]
        lines += compress_layout_table(results[key], pinned=key == "compress_pinned")
    return "\n".join(lines)


def render_compress(results, add):
    table = compress_summary_table(results)
    if not table:
        return
    add("## Compression (medians; ratio = graced ÷ nginx)")
    add("")
    add(table)
    add("")
    add("| layout | mode | run | server | req/s | p99 ms | server CPU µs/req | wrk CPU µs/req | body bytes | errors |")
    add("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for key in COMPRESS_LAYOUTS:
        for r in results.get(key) or []:
            add(f"| {'pinned' if key == 'compress_pinned' else 'shared'} | {r['mode']} | {r['run']} | {r['server']} | "
                f"{r['rps']:.0f} | {r['p99_ms']} | {r['server_cpu_us']} | {r['wrk_cpu_us']} | {r['gzip_bytes']} | "
                f"{r['failed']} |")
    add("")
    add("* Load: `wrk -t1 -c64 --latency -H 'Accept-Encoding: gzip'` on a 100 KiB HTML page (`c/page.html`), "
        "graced and nginx interleaved, the order rotating run by run; server CPU per request from /proc "
        "schedstat of the server's processes and threads.")
    add("* sidecar: `c/page.html.gz` made with gzip -9 and the page's mtime; graced `[site.compression] "
        "precompressed = true`, nginx `gzip_static on`. Both send the file (graced with sendfile).")
    add("* on the fly: no sidecar used; graced `on_the_fly = true` (gzip level 6, compressed once per file "
        "version and cached), nginx `gzip on; gzip_comp_level 6` (compressed for every response).")
    if results.get("compress"):
        add("* shared: each server with its default workers (graced `workers = \"auto\"`, nginx "
            "`worker_processes auto`: two), the server and wrk on the same two cores as the scheduler places them. "
            "req/s then also depends on how much CPU the client gets.")
    if results.get("compress_pinned"):
        add(f"* pinned: graced `workers = 1`, nginx `worker_processes 1`, each started under `taskset -c "
            f"{PIN_SERVER_CPU}` (all its processes and threads on CPU {PIN_SERVER_CPU}), wrk under `taskset -c "
            f"{PIN_CLIENT_CPU}`: req/s is what one core of server does, with the client never competing for it.")
    add("")


def phase_metrics(results, runs, secs):
    """Metrics on vs off, same run: graced without a status listener and graced with one
    (requests timed into the histogram) scraped every second, wrk -t1 -c64 at 1 KiB,
    interleaved, the order rotating; throughput and server CPU per request."""
    log(f"metrics cost: wrk -t1 -c64 -d{secs}s 1 KiB, {runs} runs, graced metrics off vs on (scraped 1/s)")
    servers = {"off": Graced("metrics-off", METRICS_PORTS["off"]), "on": GracedMetrics("metrics-on", METRICS_PORTS["on"])}
    for srv in servers.values():
        srv.start()
    time.sleep(0.5)
    for name, srv in servers.items():
        # A server that could not bind exits; a 200 from its port would then be someone else's.
        if srv.proc.poll() is not None:
            raise RuntimeError(f"graced (metrics {name}) exited at start; see {srv.out}")
    stop = threading.Event()
    scrapes = {"ok": 0, "failed": 0}

    def scrape():
        while not stop.wait(1.0):
            ok = get_status(STATUS_PORT, "/metrics") == 200
            scrapes["ok" if ok else "failed"] += 1

    scraper = threading.Thread(target=scrape)
    scraper.start()
    raw = results.setdefault("metrics_cost", [])
    time.sleep(1)
    try:
        for run in range(runs):
            order = list(servers.items())
            order = order[run % 2:] + order[:run % 2]
            for name, srv in order:
                cpu0 = cpu_seconds(srv.proc.pid)
                out = subprocess.run(wrk_cmd(srv.port, "/1k.txt", 64, secs), capture_output=True, text=True,
                                     timeout=secs + 60)
                cpu1 = cpu_seconds(srv.proc.pid)
                r = parse_wrk(out.stdout)
                r.update(metrics=name, run=run, server_cpu_us=round(1e6 * (cpu1 - cpu0) / max(r["requests"], 1), 2))
                raw.append(r)
                log(f"  run {run} metrics {name:<3} {r['rps']:>9.0f} req/s  server CPU {r['server_cpu_us']} µs/req  "
                    f"errors {r['failed']}")
                time.sleep(1)
    finally:
        stop.set()
        scraper.join()
        for srv in servers.values():
            srv.stop()
    results["metrics_scrapes"] = scrapes


def metrics_cost_lines(results):
    """The metrics phase as markdown lines (empty without it)."""
    raw = results.get("metrics_cost")
    if not raw:
        return []
    med_of = {(m, k): med([r[k] for r in raw if r["metrics"] == m]) for m in ("off", "on")
              for k in ("rps", "server_cpu_us")}
    lines = ["## Metrics on vs off (issue 18)", "",
             "graced without a status listener (off) and with one, `/metrics` scraped every second (on): "
             "wrk -t1 -c64, 1 KiB, keep-alive, interleaved runs. Medians.", "",
             "| measurement | off | on | on ÷ off |", "|---|---:|---:|---:|"]
    for title, key, d in (("Throughput 1 KiB, req/s", "rps", 0), ("Server CPU per request, µs", "server_cpu_us", 2)):
        off, on = med_of[("off", key)], med_of[("on", key)]
        lines.append(f"| {title} | {off:.{d}f} | {on:.{d}f} | {ratio(on, off, 3)} |")
    lines += ["", "Runs: " + "; ".join(f"{r['metrics']} {r['rps']:.0f} req/s {r['server_cpu_us']} µs" for r in raw)
              + f". Scrapes: {results.get('metrics_scrapes')}.", ""]
    return lines


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


# ------------------------------------------------------------------ binary upgrade under load

UPGRADE_FILE = "upgrade.bin"
UPGRADE_SIZE = 8 << 20
# Ports of their own: the phase replaces servers, so nothing else may answer on them.
UPGRADE_PORTS = {"graced": 18091, "nginx": 18092}


def upgrade_probe(port, stop, out):
    """A new connection every 10 ms until `stop` (bounded: 120 s): (start, ms to the first
    byte of the response, or None and why)."""
    next_at, end = time.monotonic(), time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < end:
        t = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"GET /1k.txt HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                first = c.recv(1)
                if not first:
                    raise OSError("closed before the response")
                ttfb = (time.monotonic() - t) * 1000
                while c.recv(65536):
                    pass
            out.append((t, ttfb, None))
        except OSError as e:
            out.append((t, None, str(e)))
        next_at += 0.01
        time.sleep(max(0.0, next_at - time.monotonic()))


def upgrade_download(port, out):
    """GET the big file through a 16 KiB receive buffer, 16 KiB every 10 ms (the server really
    has it in flight); out: bytes of body received, Content-Length, end time."""
    out.update(body=0, length=None, error=None)
    try:
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        c.settimeout(20)
        c.connect(("127.0.0.1", port))
        c.sendall(f"GET /{UPGRADE_FILE} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(1)
            if not chunk:
                raise OSError("closed in the head")
            head += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError(f"answered {head.splitlines()[0]!r}")
        out["length"] = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        out["head_at"] = time.monotonic()
        while out["body"] < out["length"]:
            chunk = c.recv(16384)
            if not chunk:
                break
            out["body"] += len(chunk)
            time.sleep(0.01)
        c.close()
    except OSError as e:
        out["error"] = str(e)
    out["done_at"] = time.monotonic()


def wait_file_changes(path, old, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if open(path).read().strip() not in ("", old):
                return True
        except OSError:
            pass
        time.sleep(0.005)
    return False


def phase_upgrade(results):
    """A download in flight and a new connection every 10 ms while the server is replaced:
    graced `-k upgrade --wait`, nginx USR2 then QUIT of the old master (by hand, no systemd),
    and graced WINCH + a new start (a restart without systemd's socket). Standalone: the
    container scenario l compares with `systemctl restart`."""
    log("upgrade under load: graced -k upgrade, nginx USR2+QUIT, graced WINCH + start")
    with open(f"{WWW}/{UPGRADE_FILE}", "wb") as f:
        f.write((b"graced upgrade " * (UPGRADE_SIZE // 15 + 1))[:UPGRADE_SIZE])
    os.chmod(f"{WWW}/{UPGRADE_FILE}", 0o644)
    nginx = shutil.which("nginx")

    def graced_upgrade(s):
        t = time.monotonic()
        out = subprocess.run([GRACED, "-k", "upgrade", "--wait", "-f", s.conf], capture_output=True, text=True,
                             timeout=60)
        return time.monotonic() - t, (out.stdout + out.stderr).strip()

    def graced_restart(s):
        t = time.monotonic()
        old = s.proc
        os.kill(old.pid, signal.SIGWINCH)
        # The old process closes its listener at once; the new one binds when it can.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            s.proc = None
            try:
                s.start(wait=True)
                break
            except RuntimeError:
                time.sleep(0.01)
        s.retired = old
        return time.monotonic() - t, f"new pid {s.proc.pid if s.proc else '?'}"

    def nginx_upgrade(s):
        pid_file = f"{s.dir}/{s.tag}.pid"
        old = open(pid_file).read().strip()
        t = time.monotonic()
        os.kill(int(old), signal.SIGUSR2)
        if not wait_file_changes(pid_file, old, 20):
            return time.monotonic() - t, "no new master"
        # nginx's own procedure: the new master runs beside the old one; then QUIT the old.
        os.kill(int(old), signal.SIGQUIT)
        return time.monotonic() - t, f"new master {open(pid_file).read().strip()}"

    for port in UPGRADE_PORTS.values():
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise RuntimeError(f"port {port} is in use: the upgrade phase needs it to itself")
    variants = [("graced -k upgrade --wait", Graced("upgrade", UPGRADE_PORTS["graced"]), graced_upgrade),
                ("graced WINCH + start", Graced("winch", UPGRADE_PORTS["graced"]), graced_restart)]
    if nginx and "nginx" in KINDS:
        variants.append(("nginx USR2 + QUIT", NginxDaemon("upgrade", UPGRADE_PORTS["nginx"], path=nginx),
                         nginx_upgrade))
    for label, s, trigger in variants:
        s.start()
        probes, stop, download = [], threading.Event(), {}
        probe = threading.Thread(target=upgrade_probe, args=(s.port, stop, probes), daemon=True)
        probe.start()
        time.sleep(0.5)
        dl = threading.Thread(target=upgrade_download, args=(s.port, download), daemon=True)
        dl.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        took, said = trigger(s)
        dl.join(60)
        time.sleep(0.3)
        stop.set()
        probe.join(15)
        if download.get("error"):
            log(f"  {label}: the download failed: {download['error']}")
        window = [p for p in probes if t0 <= p[0] <= download.get("done_at", t0)]
        waits = sorted(p[1] for p in window if p[1] is not None)
        failed = [p[2] for p in probes if p[1] is None]
        r = {"trigger_ms": round(took * 1000, 1), "said": said, "new_connections": len(window),
             "failed": len(failed), "failures": failed[:5],
             "p99_ms": round(waits[int((len(waits) - 1) * 0.99)], 1) if waits else None,
             "max_ms": round(waits[-1], 1) if waits else None,
             "download": "complete" if download.get("length") and download["body"] == download["length"]
             else f"cut at {download.get('body')} of {download.get('length')} ({download.get('error')})"}
        results.setdefault("upgrade", {})[label] = r
        log(f"  {label}: {r}")
        # Stop whatever serves now: graced by its pid file's lock (the new process is not our
        # child), nginx's new master by the pid in its pid file (a child of the old one).
        if s.name == "graced":
            subprocess.run([GRACED, "-k", "stop", "--wait", "-f", s.conf], capture_output=True, timeout=30)
            for proc in (s.proc, getattr(s, "retired", None)):
                if proc is not None:
                    stop_proc(proc, signal.SIGTERM, 15)
        else:
            s.quit()
        time.sleep(1)


class NginxDaemon(Nginx):
    """nginx as its binary upgrade needs it: daemonized (with `daemon off` the master
    ignores USR2 — "the changing binary signal is ignored" — as its parent never changes),
    started by its full path (the new master execs argv[0])."""

    def __init__(self, tag, port, path):
        super().__init__(tag, port)
        self.path = path

    def conf_text(self, root):
        return super().conf_text(root).replace("daemon off;", "daemon on;")

    def command(self):
        return [self.path, "-p", f"{self.dir}/", "-e", self.error_log(), "-c", self.conf]

    def start(self, wait=True):
        self.write_conf()
        self.before_start()
        with open(self.out, "ab") as out:
            subprocess.run(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=30,
                           check=True)
        if not wait_200(self.port, self.ready_path(), 10):
            self.quit()
            raise RuntimeError(f"nginx (daemon) did not answer 200 on port {self.port}; see {self.out}")

    def quit(self):
        """QUIT to the master in the pid file (one this script started, through its old master),
        and waits until it is gone."""
        try:
            pid = int(open(f"{self.dir}/{self.tag}.pid").read().strip())
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError):
            return
        end = time.monotonic() + 15
        while time.monotonic() < end and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)


def render_upgrade(results, add):
    if not results.get("upgrade"):
        return
    add("## Binary upgrade under load (standalone, no systemd)")
    add("")
    add(f"A {UPGRADE_SIZE >> 20} MiB download read 16 KiB every 10 ms through a 16 KiB receive buffer is in "
        "flight, and a new connection asks for 1 KiB every 10 ms, while the server is replaced. Wait = time "
        "to the first response byte of the connections started between the trigger and the download's end. "
        "Under systemd see the container scenario l (`systemctl restart` as the baseline).")
    add("")
    add("| variant | trigger took ms | new connections | failed | wait p99 ms | wait max ms | download |")
    add("|---|---:|---:|---:|---:|---:|---|")
    for label, r in results["upgrade"].items():
        add(f"| {label} | {r['trigger_ms']} | {r['new_connections']} | {r['failed']} | {r['p99_ms']} | "
            f"{r['max_ms']} | {r['download']} |")
    add("")


# ------------------------------------------------------------------ HTTPS phases


def start_tls_servers(results, tag, cert, only=None, h2=False):
    """Starts each TLS peer (HTTPS on TLS_PORTS) with the `cert` certificate (and HTTP/2 by ALPN
    if `h2`). A server that does not serve HTTPS (graced before TLS) is recorded under
    tls_unmeasured (h2_unmeasured for the HTTP/2 phases), not fatal."""
    servers = {}
    for name, kind in TLS_KINDS.items():
        if only and name != only:
            continue
        s = kind(tag, TLS_PORTS[name], tls=cert, h2=h2)
        try:
            s.start()
            servers[name] = s
        except RuntimeError as e:
            why = str(e)
            try:  # the server's own last words (graced: which key it does not know)
                tail = [l.strip() for l in open(s.out, errors="replace").read().splitlines() if l.strip()][-3:]
                why += ": " + " / ".join(tail)
            except OSError:
                pass
            results.setdefault("h2_unmeasured" if h2 else "tls_unmeasured", {}).setdefault(name, why)
            log(f"  {name}: not measured ({why})")
    return servers


def tls_servers_each(results, tag, cert, h2=False):
    """One server at a time (started, yielded, stopped), for the phases that load one alone."""
    for name in TLS_KINDS:
        servers = start_tls_servers(results, tag, cert, only=name, h2=h2)
        if h2:
            servers = h2_check(results, servers)
        if not servers:
            continue
        s = servers[name]
        try:
            yield name, s
        finally:
            s.stop()
        time.sleep(1)


def tls_load_cmd(port, mode, conns, secs, resume=False, interval_ms=0, path="/1k.txt"):
    return [CLIENT, "tls-load", "--port", str(port), "--path", path, "--conns", str(conns), "--secs", str(secs),
            "--mode", mode, "--resume", "1" if resume else "0", "--interval-ms", str(interval_ms)]


def parse_client(stdout):
    d = kv(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    ok, failed = int(d.get("ok", 0)), int(d.get("failed", 0))
    r = {"requests": ok, "failed": failed, "attempts": ok + failed, "rps": float(d.get("rps", 0)),
         "detail": stdout.strip()}
    for k in ("full", "resumed", "offered", "handshake", "connect", "read", "write", "timeout", "status"):
        r[k] = int(d.get(k, 0))
    return r


def phase_https(results, runs, secs):
    log(f"HTTPS throughput: wrk -t1 -c64 -d{secs}s --latency https://, {runs} runs, ECDSA P-256, TLS 1.3")
    make_certs()
    servers = start_tls_servers(results, "https", "ec")
    if not servers:
        return
    time.sleep(1)
    raw = results.setdefault("https", [])
    loaded = results.setdefault("rss_loaded_https", [])
    try:
        wrk_runs(servers, runs, secs, raw, loaded, tls=True)
    finally:
        for s in servers.values():
            s.stop()


def phase_handshake(results, runs, secs, conns):
    """Full handshakes/s (new connection per request, resumption off in the client) and
    resumed handshakes/s (each connection offers its last TLS 1.3 ticket), ECDSA and RSA."""
    log(f"TLS handshakes: bench-client tls-load --mode close, {conns} connections, {secs}s, {runs} runs; "
        "full (no resumption) and resumed (tickets), ECDSA P-256 and RSA 2048")
    make_certs()
    raw = results.setdefault("handshake", [])
    for cert in CERT_KINDS:
        servers = start_tls_servers(results, f"hs-{cert}", cert)
        time.sleep(1)
        try:
            for run in range(runs):
                order = list(servers.items())
                order = order[run % max(len(order), 1):] + order[:run % max(len(order), 1)]
                for resume in (False, True):
                    for name, s in order:
                        cpu0, client0 = cpu_seconds(s.proc.pid), os.times()
                        out = subprocess.run(tls_load_cmd(s.port, "close", conns, secs, resume, path="/index.html"),
                                             capture_output=True, text=True, timeout=secs + 60)
                        cpu1, client1 = cpu_seconds(s.proc.pid), os.times()
                        r = parse_client(out.stdout)
                        hs = max(r["full"] + r["resumed"], 1)
                        client_cpu = (client1.children_user - client0.children_user) + (
                            client1.children_system - client0.children_system)
                        r.update(server=name, cert=cert, resume=resume, run=run,
                                 hs_per_s=round((r["full"] + r["resumed"]) / secs),
                                 server_cpu_us=round(1e6 * (cpu1 - cpu0) / hs, 1),
                                 client_cpu_us=round(1e6 * client_cpu / hs, 1),
                                 client_cores=round(client_cpu / secs, 2),
                                 server_cores=round((cpu1 - cpu0) / secs, 2))
                        raw.append(r)
                        log(f"  run {run} {cert:>3} {'resumed' if resume else 'full':>7} {name:<6} "
                            f"{r['hs_per_s']:>6} handshakes/s (full {r['full']}, resumed {r['resumed']}, "
                            f"failed {r['failed']})  server {r['server_cpu_us']} µs/hs {r['server_cores']} cores  "
                            f"client {r['client_cores']} cores")
                        time.sleep(1)
        finally:
            for s in servers.values():
                s.stop()


def read_line(proc, timeout):
    """One line of a child's stdout, waiting at most `timeout` seconds ('' on timeout or EOF)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""


def phase_tlsidle(results, n):
    log(f"idle TLS connections: {n} completed handshakes held idle (bench-client tls-idle), RSS of all processes")
    make_certs()
    for name, s in tls_servers_each(results, "idle", "ec"):
        time.sleep(1)
        before = tree_mem(s.proc.pid)
        client = subprocess.Popen([CLIENT, "tls-idle", "--port", str(s.port), "--n", str(n), "--threads", "4",
                                   "--hold-secs", "60"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  preexec_fn=raise_nofile)
        started[client.pid] = client
        try:
            ready = kv(read_line(client, 90))
            time.sleep(2)  # the servers finish their side (tickets, buffers released)
            samples = []
            for _ in range(3):
                samples.append(tree_mem(s.proc.pid))
                time.sleep(0.3)
            client.stdin.write("done\n")
            client.stdin.flush()
            alive = kv(read_line(client, 30))
        finally:
            finish(client, 30)
        opened = int(ready.get("opened", 0))
        rss, pss, procs = max(x[0] for x in samples), max(x[1] for x in samples), max(x[2] for x in samples)
        r = {"opened": opened, "failed": int(ready.get("failed", 0)), "open_secs": ready.get("secs"),
             "alive": int(alive.get("alive", 0)), "rss_before_kib": before[0], "pss_before_kib": before[1],
             "rss_kib": rss, "pss_kib": pss, "procs": procs,
             "rss_per_conn_kib": round((rss - before[0]) / opened, 2) if opened else None,
             "pss_per_conn_kib": round((pss - before[1]) / opened, 2) if opened else None}
        results.setdefault("tlsidle", {})[name] = r
        log(f"  {name}: {opened} open ({r['failed']} failed, {r['alive']} still open after measuring), RSS "
            f"{before[0]} → {rss} KiB = {r['rss_per_conn_kib']} KiB/conn, PSS {r['pss_per_conn_kib']} KiB/conn, "
            f"{procs} processes")


TLS_STORM_CLIENTS = ("wrk keep-alive", "client keep-alive", "client new connection", "client resumption")


def phase_tlsstorm(results, secs, rate):
    log(f"TLS reload storm: {rate}/s for {secs}s, four TLS clients (no retries)")
    make_certs()
    for name, s in tls_servers_each(results, "tlsstorm", "ec"):
        port, length = s.port, secs + 1
        procs = {
            "wrk keep-alive": spawn(wrk_cmd(port, "/1k.txt", 16, length, tls=True),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            "client keep-alive": spawn(tls_load_cmd(port, "keepalive", 8, length),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            "client new connection": spawn(tls_load_cmd(port, "close", 4, length),
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            "client resumption": spawn(tls_load_cmd(port, "close", 4, length, resume=True, interval_ms=50),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        }
        time.sleep(0.5)
        if name == "caddy":
            storm = AdminReloads(s, rate, secs)
        else:
            storm = spawn([CLIENT, "signal", "--pid", str(s.proc.pid), "--sig", str(int(s.reload_sig)), "--rate",
                           str(rate), "--secs", str(secs)], stdout=subprocess.PIPE, text=True)
        clients = {}
        for k, p in procs.items():
            stdout, _ = finish(p, length + 60)
            c = parse_wrk(stdout) if k.startswith("wrk") else parse_client(stdout)
            c["per_100k"] = 1e5 * c["failed"] / c["attempts"] if c["attempts"] else None
            clients[k] = c
        storm_out, _ = finish(storm, 120) if storm.pid else storm.communicate(120)
        time.sleep(0.5)
        if name == "caddy":
            reloads = int(kv(storm_out).get("sent", 0))
        else:
            reloads = s.reloads()
        res = clients["client resumption"]
        share = res["resumed"] / res["offered"] if res["offered"] else None
        results.setdefault("tlsstorm", {})[name] = {"clients": clients, "signaller": storm_out.strip(),
                                                    "reloads": reloads, "resumption_share": share}
        log(f"  {name}: reloads {reloads} ({storm_out.strip()}); "
            + "; ".join(f"{k} {v['failed']}/{v['attempts']}" for k, v in clients.items())
            + f"; resumed {res['resumed']}/{res['offered']} offered")


# ------------------------------------------------------------------ HTTP/2 phases (h2load)


# h2load's connections and streams per connection (-c, -m) for each size. 1 KiB: 64 connections
# of 10 streams (640 in flight). 100 KiB: 64 streams in flight, as many as wrk -c64 has requests
# in flight in the HTTPS phase, as 16 connections of 4 streams (see H2_RULES). 1 MiB: one
# download at a time per connection, 16 connections.
H2_LOADS = {"1k": (64, 10), "100k": (16, 4), "1m": (16, 1)}
# The storm's clients: (name, path, connections at once, streams per connection, requests per
# connection). Each connection is its own `h2load -c1`, so that a connection which failed
# before its first stream can be told from one the server ended after some (see h2_slot).
H2_STORM_LANES = (("h2load 1 KiB", "/1k.txt", 4, 10, 5000), ("h2load 1 MiB", "/1m.txt", 2, 2, 100))
H2_STORM_KEYS = ("connections", "conn_failed", "ended_early", "not_h2", "started", "succeeded", "stream_failed",
                 "not_issued", "failed", "errored", "timeout")


def h2load_cmd(port, path, conns, streams, secs=None, n=None, log_file=None):
    """h2load over TLS to 127.0.0.1 (`--connect-to`; SNI and :authority `localhost`, as
    bench-client), one thread (as wrk -t1), ALPN h2 first (its default list), a connection that
    makes no progress for 10 s ends (as wrk's --timeout 10s). Bounded by `secs` (-D) or by `n`
    requests (-n); `log_file`: one line per request (start, status, µs to the end of the response)."""
    cmd = ["h2load", "-t1", f"-c{conns}", f"-m{streams}", "-N", "10s", f"--connect-to=127.0.0.1:{port}"]
    cmd += ["-D", f"{secs}s"] if secs else ["-n", str(n)]
    if log_file:
        cmd += ["--log-file", log_file]
    return cmd + [f"https://localhost:{port}{path}"]


def h2_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text or "")
    return round(float(m.group(1)) * UNITS[m.group(2)], 3) if m else None


def parse_h2load(text):
    """h2load's summary. Its counts (nghttp2 1.52): `total` the requests it was to make; `started`
    the streams it opened; `succeeded` 2xx/3xx responses; `failed` everything else, including
    requests it never sent (after a GOAWAY or a lost connection it opens no new one); `errored`
    the part of `failed` that is not an HTTP status (reset, lost, never sent); `timeout` the
    part lost to -N. Times for request: min/max/mean/sd only."""
    r = {"rps": 0.0, "total": 0, "started": 0, "done": 0, "succeeded": 0, "failed": 0, "errored": 0, "timeout": 0,
         "s2xx": 0, "s3xx": 0, "s4xx": 0, "s5xx": 0, "min_ms": None, "max_ms": None, "mean_ms": None, "sd_ms": None,
         "proto": None, "tls": None, "cipher": None}
    m = re.search(r"^finished in \S+, ([\d.]+) req/s", text, re.M)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text, re.M)
    if m:
        (r["total"], r["started"], r["done"], r["succeeded"], r["failed"], r["errored"],
         r["timeout"]) = map(int, m.groups())
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    if m:
        r["s2xx"], r["s3xx"], r["s4xx"], r["s5xx"] = map(int, m.groups())
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        r["min_ms"], r["max_ms"], r["mean_ms"], r["sd_ms"] = map(h2_ms, m.groups())
    for key, rx in (("proto", r"^Application protocol: (\S+)"), ("tls", r"^TLS Protocol: (\S+)"),
                    ("cipher", r"^Cipher: (\S+)")):
        m = re.search(rx, text, re.M)
        if m:
            r[key] = m.group(1)
    r["requests"] = r["succeeded"]
    return r


def log_p99(path):
    """p99 of the time to the end of the response of the completed requests in h2load's
    --log-file (nearest rank), ms; the file is removed."""
    times = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3 and parts[1] != "-1":
                    times.append(int(parts[2]))
        os.remove(path)
    except (OSError, ValueError):
        return None
    if not times:
        return None
    times.sort()
    return round(times[-(-99 * len(times) // 100) - 1] / 1000, 3)


def h2_check(results, servers):
    """Before measuring: two requests on one h2load connection to each server; a server whose
    ALPN did not give h2 (or that did not answer both) is stopped and recorded as not measured."""
    for name, s in list(servers.items()):
        out = subprocess.run(h2load_cmd(s.port, "/1k.txt", 1, 1, n=2), capture_output=True, text=True, timeout=60)
        r = parse_h2load(out.stdout)
        results.setdefault("h2_check", {})[name] = {k: r[k] for k in ("proto", "tls", "cipher", "succeeded")}
        if r["proto"] != "h2" or r["succeeded"] != 2:
            why = (f"h2load: application protocol {r['proto']}, TLS {r['tls']}, {r['succeeded']} of 2 requests "
                   f"succeeded ({(out.stdout + out.stderr).strip().splitlines()[-1:]})")
            results.setdefault("h2_unmeasured", {}).setdefault(name, why)
            log(f"  {name}: not measured ({why})")
            s.stop()
            del servers[name]
        else:
            log(f"  {name}: ALPN {r['proto']}, {r['tls']}, {r['cipher']}")
    return servers


def h2load_runs(servers, runs, secs, raw, loaded, latency_log):
    """h2load -t1 -D{secs}s against every server for each size (H2_LOADS), interleaved, the
    order rotating run by run, as wrk_runs; server CPU per request from /proc, h2load's CPU
    from its rusage; p99 from h2load's per-request log when `latency_log`."""
    for run in range(runs):
        order = list(servers.items())
        order = order[run % len(order):] + order[:run % len(order)]
        for size, (conns, streams) in H2_LOADS.items():
            for name, s in order:
                samples = []
                stop = threading.Event()

                def sample(pid=s.proc.pid):
                    for _ in range(int(secs * 2)):
                        if stop.wait(0.5):
                            break
                        samples.append(tree_mem(pid))

                t = threading.Thread(target=sample)
                t.start()
                log_file = f"{STATE}/h2load-requests.log" if latency_log else None
                cpu0, client0 = cpu_seconds(s.proc.pid), os.times()
                out = subprocess.run(h2load_cmd(s.port, f"/{size}.txt", conns, streams, secs=secs, log_file=log_file),
                                     capture_output=True, text=True, timeout=secs + 60)
                cpu1, client1 = cpu_seconds(s.proc.pid), os.times()
                stop.set()
                t.join()
                r = parse_h2load(out.stdout)
                r.update(server=name, size=size, run=run, conns=conns, streams=streams,
                         p99_ms=log_p99(log_file) if log_file else None)
                done = max(r["succeeded"], 1)
                r["server_cpu_us"] = round(1e6 * (cpu1 - cpu0) / done, 2)
                client_cpu = (client1.children_user - client0.children_user) + (
                    client1.children_system - client0.children_system)
                r["client_cpu_us"] = round(1e6 * client_cpu / done, 2)
                r["client_cores"] = round(client_cpu / secs, 2)
                raw.append(r)
                if size == "1k" and samples:
                    loaded.append({"server": name, "run": run, "rss_kib": max(x[0] for x in samples),
                                   "pss_kib": max(x[1] for x in samples), "procs": max(x[2] for x in samples)})
                log(f"  run {run} {size:>4} {name:<6} {r['rps']:>9.0f} req/s  {r['proto']}  p99 {r['p99_ms']} ms  "
                    f"mean {r['mean_ms']} max {r['max_ms']} ms  failed {r['failed']} (errored {r['errored']})  "
                    f"server CPU {r['server_cpu_us']} µs/req  h2load {r['client_cores']} cores")
                time.sleep(1)


def phase_h2(results, runs, secs, latency_log):
    log(f"HTTP/2 throughput: h2load -t1 -D{secs}s over TLS 1.3 (ALPN h2), {runs} runs, ECDSA P-256; "
        + ", ".join(f"{size} -c{c} -m{m}" for size, (c, m) in H2_LOADS.items()))
    make_certs()
    servers = h2_check(results, start_tls_servers(results, "h2", "ec", h2=True))
    if not servers:
        return
    time.sleep(1)
    raw = results.setdefault("h2", [])
    loaded = results.setdefault("rss_loaded_h2", [])
    try:
        h2load_runs(servers, runs, secs, raw, loaded, latency_log)
    finally:
        for s in servers.values():
            s.stop()


def h2_slot(port, path, streams, per_conn, until, acc, lock):
    """One client of the storm: one HTTP/2 connection at a time (`h2load -c1 -m{streams}
    -n{per_conn}`, which never retries a stream nor reopens its connection), the next as soon as
    it has ended, until `until`. Per connection: no stream opened = the connection failed (connect,
    TLS or ALPN); opened but fewer than its share = the server ended it (GOAWAY or close) and the
    rest were not sent, which is not a failure; streams opened that got no 2xx/3xx = failed."""
    while time.monotonic() < until:
        p = spawn(h2load_cmd(port, path, 1, streams, n=per_conn), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  text=True)
        out, _ = finish(p, 60)
        r = parse_h2load(out)
        with lock:
            acc["connections"] += 1
            acc["conn_failed"] += r["started"] == 0
            acc["ended_early"] += 0 < r["started"] < r["total"]
            acc["not_h2"] += r["started"] > 0 and r["proto"] != "h2"
            acc["started"] += r["started"]
            acc["succeeded"] += r["succeeded"]
            acc["stream_failed"] += r["started"] - r["succeeded"]
            acc["not_issued"] += r["total"] - r["started"] if r["started"] else 0
            for k in ("failed", "errored", "timeout"):
                acc[k] += r[k]


def phase_h2storm(results, secs, rate):
    log(f"HTTP/2 reload storm: {rate}/s for {secs}s, h2load clients that never retry: "
        + ", ".join(f"{lane} ({n} × -c1 -m{m} -n{k})" for lane, _, n, m, k in H2_STORM_LANES))
    make_certs()
    for name, s in tls_servers_each(results, "h2storm", "ec", h2=True):
        lock, threads, lanes = threading.Lock(), [], {}
        t0 = time.monotonic()
        until = t0 + secs + 1
        for lane, path, n, streams, per_conn in H2_STORM_LANES:
            acc = lanes[lane] = dict.fromkeys(H2_STORM_KEYS, 0)
            for _ in range(n):
                threads.append(threading.Thread(target=h2_slot, args=(s.port, path, streams, per_conn, until, acc,
                                                                      lock)))
                threads[-1].start()
        time.sleep(0.5)
        if name == "caddy":
            storm = AdminReloads(s, rate, secs)
        else:
            storm = spawn([CLIENT, "signal", "--pid", str(s.proc.pid), "--sig", str(int(s.reload_sig)), "--rate",
                           str(rate), "--secs", str(secs)], stdout=subprocess.PIPE, text=True)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        storm_out, _ = finish(storm, 120) if storm.pid else storm.communicate(120)
        time.sleep(0.5)
        if name == "caddy":
            reloads = int(kv(storm_out).get("sent", 0))
        else:
            reloads = s.reloads()
        for acc in lanes.values():
            acc["attempts"] = acc["started"] + acc["conn_failed"]
            bad = acc["stream_failed"] + acc["conn_failed"]
            acc["per_100k"] = 1e5 * bad / acc["attempts"] if acc["attempts"] else None
            acc["rps"] = acc["succeeded"] / elapsed
        results.setdefault("h2storm", {})[name] = {"clients": lanes, "signaller": storm_out.strip(),
                                                   "reloads": reloads, "secs": round(elapsed, 2)}
        log(f"  {name}: reloads {reloads} ({storm_out.strip()}); " + "; ".join(
            f"{k}: {v['stream_failed']} of {v['started']} streams failed, {v['conn_failed']} of {v['connections']} "
            f"connections failed, {v['ended_early']} ended by the server" for k, v in lanes.items()))


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
        "caddy": first_line(["caddy", "version"]),
        "openssl": first_line(["openssl", "version"]),
        "wrk": first_line(["wrk", "--version"]),
        "h2load": first_line(["h2load", "--version"]),
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
    plain = summary_table(s, results)
    if plain.count("\n") > 1:
        add("## Summary (medians; ratio = graced ÷ other)")
        add("")
        add(plain)
        add("")
    render_tls(results, add)
    render_h2(results, add)
    render_compress(results, add)
    render_upgrade(results, add)
    for line in metrics_cost_lines(results):
        add(line)
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
    if any(results.get(k) for k in PLAIN_PHASE_KEYS):
        add("## Rules")
        add("")
        add(RULES)
    return "\n".join(lines) + "\n"


TLS_PEERS = ("graced", "nginx", "caddy")


def tls_summary(results):
    """Medians per TLS peer: {(key, server): value}."""
    s = {}
    for name in TLS_PEERS:
        for size in SIZES:
            rows = [r for r in results.get("https", []) if r["server"] == name and r["size"] == size]
            if rows:
                s[f"rps_{size}", name] = med([r["rps"] for r in rows])
                s[f"p99_{size}", name] = med([r["p99_ms"] for r in rows])
                s[f"cpu_{size}", name] = med([r.get("server_cpu_us") for r in rows])
        for cert in CERT_KINDS:
            for resume, what in ((False, "full"), (True, "resumed")):
                rows = [r for r in results.get("handshake", [])
                        if r["server"] == name and r["cert"] == cert and r["resume"] == resume]
                if rows:
                    s[f"hs_{what}_{cert}", name] = med([r["hs_per_s"] for r in rows])
                    s[f"hscpu_{what}_{cert}", name] = med([r["server_cpu_us"] for r in rows])
                    s[f"hsclient_{what}_{cert}", name] = med([r["client_cores"] for r in rows])
                    if resume:
                        s[f"hsshare_{cert}", name] = med([100 * r["resumed"] / r["offered"] if r["offered"] else 0
                                                          for r in rows])
        idle = results.get("tlsidle", {}).get(name)
        if idle:
            s["idle_rss", name] = idle["rss_per_conn_kib"]
            s["idle_total", name] = (idle["rss_kib"] - idle["rss_before_kib"]) / 1024
            s["idle_pss", name] = idle["pss_per_conn_kib"]
        storm = results.get("tlsstorm", {}).get(name)
        if storm:
            s["storm_reloads", name] = storm["reloads"]
            for k in TLS_STORM_CLIENTS:
                s[f"storm_{k}", name] = storm["clients"][k]["per_100k"]
            if storm["resumption_share"] is not None:
                s["storm_share", name] = 100 * storm["resumption_share"]
    return s


# (title, key, digits, target) — target: ("≥"/"≤", bound) on graced ÷ nginx, ("=", x) or ("≥ abs", x) on
# graced's own value, or None; rows whose key is in NO_RATIO get no ratio columns.
TLS_ROWS = [
    ("HTTPS 1 KiB, req/s (higher is better)", "rps_1k", 0, None),
    ("HTTPS 100 KiB, req/s", "rps_100k", 0, None),
    ("HTTPS 1 MiB, req/s", "rps_1m", 0, None),
    ("HTTPS 1 KiB, p99 ms", "p99_1k", 2, None),
    ("HTTPS 100 KiB, p99 ms", "p99_100k", 2, None),
    ("HTTPS 1 MiB, p99 ms", "p99_1m", 2, None),
    ("Server CPU per HTTPS request, 1 KiB, µs", "cpu_1k", 2, ("≤", 0.8)),
    ("Server CPU per HTTPS request, 100 KiB, µs", "cpu_100k", 2, None),
    ("Server CPU per HTTPS request, 1 MiB, µs", "cpu_1m", 2, None),
    ("Full handshakes/s, ECDSA P-256", "hs_full_ec", 0, ("≥", 1.5)),
    ("Full handshakes/s, RSA 2048", "hs_full_rsa", 0, ("≥", 1.5)),
    ("Resumed handshakes/s, ECDSA P-256", "hs_resumed_ec", 0, None),
    ("Resumed handshakes/s, RSA 2048", "hs_resumed_rsa", 0, None),
    ("Server CPU per full handshake, ECDSA, µs", "hscpu_full_ec", 1, None),
    ("Server CPU per full handshake, RSA, µs", "hscpu_full_rsa", 1, None),
    ("Server CPU per resumed handshake, ECDSA, µs", "hscpu_resumed_ec", 1, None),
    ("Load client's cores during full handshakes, ECDSA", "hsclient_full_ec", 2, None),
    ("Load client's cores during resumed handshakes, ECDSA", "hsclient_resumed_ec", 2, None),
    ("Tickets offered that resumed (handshake phase), ECDSA, %", "hsshare_ec", 1, None),
    (f"Memory of {TLS_IDLE_CONNS:,} idle TLS connections, RSS MiB (all processes, minus before)", "idle_total", 1,
     None),
    ("Memory per idle TLS connection, RSS KiB", "idle_rss", 2, ("≤", 0.5)),
    ("Memory per idle TLS connection, PSS KiB", "idle_pss", 2, None),
    ("TLS reload storm: reloads performed", "storm_reloads", 0, None),
    ("TLS reload storm: wrk keep-alive, failed per 100k", "storm_wrk keep-alive", 1, ("=", 0)),
    ("TLS reload storm: bench-client keep-alive, failed per 100k", "storm_client keep-alive", 1, ("=", 0)),
    ("TLS reload storm: bench-client new connection, failed per 100k", "storm_client new connection", 1, ("=", 0)),
    ("TLS reload storm: resumption client, failed per 100k", "storm_client resumption", 1, ("=", 0)),
    ("TLS reload storm: tickets offered that resumed, %", "storm_share", 1, ("≥ abs", 99)),
]
NO_RATIO = {"storm_reloads", "hsclient_full_ec", "hsclient_resumed_ec", "hsshare_ec", "storm_share"}


def tls_summary_table(results):
    return peer_table(tls_summary(results), TLS_ROWS, NO_RATIO, results.get("tls_unmeasured", {}))


def peer_table(s, rows, no_ratio, missing):
    """The summary table of the TLS peers (graced, nginx, caddy): `s` {(key, server): value},
    `rows` as TLS_ROWS, rows whose key is in `no_ratio` without ratios, servers in `missing`
    "not measured"."""
    out = ["| measurement | graced | nginx | caddy | graced ÷ nginx | graced ÷ caddy | caddy ÷ nginx | target |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]

    def fmt(x, d):
        return "–" if x is None else f"{x:,.{d}f}".replace(",", " ") if d == 0 else f"{x:.{d}f}"

    for title, key, d, target in rows:
        g, n, c = (s.get((key, k)) for k in TLS_PEERS)
        if g is None and n is None and c is None:
            continue
        cells = []
        for name, x in zip(TLS_PEERS, (g, n, c)):
            cells.append("not measured" if x is None and name in missing else fmt(x, d))
        t = ""
        if target and target[0] in ("≥", "≤"):
            op, bound = target
            t = f"{op} {bound} × nginx"
            if g is not None and n:
                t += " ✓" if (g / n >= bound if op == "≥" else g / n <= bound) else " ✗"
        elif target:
            op, bound = target
            t = f"{op.split()[0]} {bound}"
            if g is not None:
                t += " ✓" if (g == bound if op == "=" else g >= bound) else " ✗"
        if key in no_ratio:
            out.append(f"| {title} | {' | '.join(cells)} | | | | {t} |")
        else:
            out.append(f"| {title} | {' | '.join(cells)} | {ratio(g, n)} | {ratio(g, c)} | {ratio(c, n)} | {t} |")
    if len(out) == 2:
        return ""
    return "\n".join(out)


def render_tls(results, add):
    if not any(results.get(k) for k in ("https", "handshake", "tlsidle", "tlsstorm", "tls_unmeasured")):
        return
    add("## HTTPS summary (medians; TLS 1.3, same certificates and files for every server)")
    add("")
    add("Targets (issue 15), for graced: full handshakes/s ≥ 1.5 × nginx; CPU per HTTPS request at 1 KiB "
        "≤ 0.8 × nginx; memory per idle TLS connection ≤ 0.5 × nginx; 0 failed in the TLS reload storm and "
        "≥ 99 % of resumptions succeeding across reloads.")
    add("")
    table = tls_summary_table(results)
    if table:
        add(table)
        add("")
    for name, why in results.get("tls_unmeasured", {}).items():
        add(f"* {name}: not measured — {why}")
    if results.get("tls_unmeasured"):
        add("")
    if results.get("https"):
        add("## HTTPS throughput (wrk -t1 -c64 --latency https://, keep-alive, ECDSA P-256)")
        add("")
        for line in throughput_runs_table(results["https"]):
            add(line)
        add("")
        add("Memory under the 1 KiB HTTPS load (max of samples during each run, all processes):")
        add("")
        add("| run | server | RSS KiB | PSS KiB | processes |")
        add("|---|---|---:|---:|---:|")
        for r in results.get("rss_loaded_https", []):
            add(f"| {r['run']} | {r['server']} | {r['rss_kib']} | {r['pss_kib']} | {r['procs']} |")
        add("")
    if results.get("handshake"):
        add("## TLS handshakes (bench-client tls-load: a new connection and one GET /index.html per handshake)")
        add("")
        add("| run | certificate | handshake | server | handshakes/s | full | resumed | tickets offered | failed "
            "| server CPU µs/handshake | server cores | client CPU µs/handshake | client cores |")
        add("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results["handshake"]:
            add(f"| {r['run']} | {CERT_KINDS[r['cert']]} | {'resumed' if r['resume'] else 'full'} | {r['server']} | "
                f"{r['hs_per_s']} | {r['full']} | {r['resumed']} | {r['offered']} | {r['failed']} | "
                f"{r['server_cpu_us']} | {r['server_cores']} | {r['client_cpu_us']} | {r['client_cores']} |")
        add("")
    if results.get("tlsidle"):
        add(f"## Idle TLS connections ({TLS_IDLE_CONNS:,} completed handshakes, then idle; all processes)")
        add("")
        add("| server | opened | failed | still open after measuring | RSS before KiB | RSS with them KiB | "
            "RSS KiB/conn | PSS before KiB | PSS with them KiB | PSS KiB/conn | processes |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in results["tlsidle"].items():
            add(f"| {name} | {r['opened']} | {r['failed']} | {r['alive']} | {r['rss_before_kib']} | {r['rss_kib']} | "
                f"{r['rss_per_conn_kib']} | {r['pss_before_kib']} | {r['pss_kib']} | {r['pss_per_conn_kib']} | "
                f"{r['procs']} |")
        add("")
    if results.get("tlsstorm"):
        add("## TLS reload storm (20 reloads/s; the four TLS clients at once, none retries)")
        add("")
        add("| server | reloads performed | client | attempts | failed | per 100k | req/s | resumed / offered |")
        add("|---|---:|---|---:|---:|---:|---:|---|")
        for name, r in results["tlsstorm"].items():
            for client, c in r["clients"].items():
                per = "–" if c["per_100k"] is None else f"{c['per_100k']:.1f}"
                res = f"{c['resumed']} / {c['offered']}" if client == "client resumption" else ""
                add(f"| {name} | {r['reloads']} | {client} | {c['attempts']} | {c['failed']} | {per} | "
                    f"{c['rps']:.0f} | {res} |")
        add("")
        add("Raw reports:")
        add("")
        add("```")
        for name, r in results["tlsstorm"].items():
            add(f"{name}: storm: {r['signaller']}")
            for client, c in r["clients"].items():
                detail = c.get("detail") or " ".join(f"{k}={c[k]}" for k in
                                                     ("requests", "connect", "read", "write", "timeout", "non2xx"))
                add(f"  {client}: {detail}")
        add("```")
        add("")
    add("### HTTPS rules")
    add("")
    add(TLS_RULES)


TLS_RULES = """\
* Certificates: made once by the `openssl` CLI in `$GRACED_BENCH_STATE/tls`: a local CA (ECDSA P-256) and
  two leaves for `localhost` / 127.0.0.1 signed by it, ECDSA P-256 and RSA 2048 (PKCS#8 keys); every server
  gets the same leaf file and key. TLS 1.3 only everywhere; HTTPS only on each server's port (graced 18441,
  nginx 18442, Caddy 18443).
* nginx: `listen … ssl; ssl_protocols TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on`
  (no `ssl_session_ticket_key`: its ticket key is random per configuration load), `worker_processes auto`,
  `sendfile on` (no kTLS on this kernel, so sendfile does not apply to TLS), access log off,
  `worker_connections 12000`, `worker_rlimit_nofile 19000`, `client_header_timeout 60s`, keep-alive 15 s.
  Caddy 2.6: `https://:PORT { bind 127.0.0.1; tls CERT KEY { protocols tls1.3 }; root; file_server }`,
  `auto_https off`, no logs, `read_header 60s`, `idle 15s`, admin API on 127.0.0.1:18449 (reloads),
  GOMAXPROCS = CPUs. graced: `[[listen]] tls = true`, `[[site]] certificate/key`, `max_connections = 16384`,
  `header_timeout = "60s"`, `keepalive_timeout = "15s"`, `workers = "auto"`.
* Clients: wrk (OpenSSL, SNI 127.0.0.1, no ALPN: HTTP/1.1) for keep-alive throughput and the storm's wrk
  client; `bench-client tls-*` (rustls 0.23 with ring, X25519, SNI `localhost`, no ALPN) for the rest. Neither
  validates the chain (the handshake signature is verified), so the client's CPU is spent on the handshake
  itself. Servers' CPU: on-CPU time of all their threads and processes (/proc schedstat); the client's:
  its rusage; both per handshake (or request) and in cores, the two share the machine's cores.
* Throughput: as the plain phase (`wrk -t1 -c64 --latency`, 1 KiB, 100 KiB and 1 MiB, servers interleaved,
  order rotating), over HTTPS with the ECDSA certificate.
* Handshakes: `bench-client tls-load --mode close` with 8 connections for the run's seconds: every request a new
  TCP connection, a full TLS 1.3 handshake and one `GET /index.html` with `Connection: close`. Full: the client
  keeps no sessions. Resumed: each connection keeps its own session store and offers its last ticket (PSK with
  (EC)DHE, as browsers do); handshakes/s counts both kinds, the table shows how many resumed. ECDSA P-256 and
  RSA 2048 leaves, a server started for each.
* Idle memory: `bench-client tls-idle` opens 10,000 connections (4 threads), completes each TLS handshake, sends
  nothing more; 2 s later the server's RSS and PSS (all processes, max of 3 samples) minus the same just before;
  then it checks how many the server still holds open. RLIMIT_NOFILE is raised to the hard limit for the
  servers and the client.
* TLS reload storm: 20 reloads/s for 20 s (graced USR1, nginx HUP to the master, Caddy `POST /load` of the same
  Caddyfile with `Cache-Control: must-revalidate` — what `caddy reload --force` sends; one at a time, counted
  when answered 200) while four clients run for 21 s: wrk keep-alive https (-c16), bench-client keep-alive (8
  connections), bench-client new connection per request without resumption (4), and a resumption client (4
  connections, each reconnecting every 50 ms with its last ticket). None retries; failures per 100k as in the
  plain storms (a TLS handshake failure is a failure). Resumption across reloads = handshakes that resumed ÷
  handshakes that offered a ticket, in the resumption client.
"""


def h2_summary(results):
    """Medians per TLS peer over the HTTP/2 runs, and the storm: {(key, server): value}."""
    s = {}
    for name in TLS_PEERS:
        for size in SIZES:
            rows = [r for r in results.get("h2", []) if r["server"] == name and r["size"] == size]
            if rows:
                for key, field in (("rps", "rps"), ("p99", "p99_ms"), ("mean", "mean_ms"), ("max", "max_ms"),
                                   ("cpu", "server_cpu_us")):
                    s[f"{key}_{size}", name] = med([r.get(field) for r in rows])
        rows = [r for r in results.get("h2", []) if r["server"] == name]
        if rows:
            s["runs_failed", name] = sum(r["failed"] for r in rows)
            s["runs_errored", name] = sum(r["errored"] for r in rows)
        storm = results.get("h2storm", {}).get(name)
        if storm:
            s["storm_reloads", name] = storm["reloads"]
            conns = ended = 0
            for lane, c in storm["clients"].items():
                s[f"storm_{lane}", name] = c["per_100k"]
                conns, ended = conns + c["connections"], ended + c["ended_early"]
            s["storm_ended", name] = 100 * ended / conns if conns else None
    return s


# As TLS_ROWS. The p99 rows are there when h2load logged every request (the default).
H2_ROWS = [
    *[(f"HTTP/2 {SIZE_NAMES[size]}, req/s (h2load -c{c} -m{m})" + (", higher is better" if size == "1k" else ""),
       f"rps_{size}", 0, ("≥", 1.0) if size == "1k" else None) for size, (c, m) in H2_LOADS.items()],
    *[(f"HTTP/2 {SIZE_NAMES[size]}, p99 ms", f"p99_{size}", 2, None) for size in H2_LOADS],
    *[(f"HTTP/2 {SIZE_NAMES[size]}, mean ms (h2load)", f"mean_{size}", 2, None) for size in H2_LOADS],
    *[(f"HTTP/2 {SIZE_NAMES[size]}, max ms (h2load)", f"max_{size}", 2, None) for size in H2_LOADS],
    *[(f"Server CPU per HTTP/2 request, {SIZE_NAMES[size]}, µs", f"cpu_{size}", 2,
       ("≤", 0.8) if size == "1k" else None) for size in H2_LOADS],
    ("HTTP/2 throughput runs: h2load failed, all runs", "runs_failed", 0, None),
    ("HTTP/2 throughput runs: h2load errored, all runs", "runs_errored", 0, None),
    ("HTTP/2 reload storm: reloads performed", "storm_reloads", 0, None),
    *[(f"HTTP/2 reload storm: {lane} ({n} × -m{m}), failed streams per 100k", f"storm_{lane}", 1, ("=", 0))
      for lane, _, n, m, _ in H2_STORM_LANES],
    ("HTTP/2 reload storm: connections the server ended before their share, %", "storm_ended", 1, None),
]
H2_NO_RATIO = {"runs_failed", "runs_errored", "storm_reloads", "storm_ended"}


def h2_summary_table(results):
    return peer_table(h2_summary(results), H2_ROWS, H2_NO_RATIO, results.get("h2_unmeasured", {}))


def render_h2(results, add):
    if not any(results.get(k) for k in ("h2", "h2storm", "h2_unmeasured")):
        return
    add("## HTTP/2 summary (medians; h2load over TLS 1.3, ALPN h2, same certificate and files for every server)")
    add("")
    add("Targets (issue 16), for graced: HTTP/2 req/s at 1 KiB ≥ 1.0 × nginx; server CPU per HTTP/2 request at "
        "1 KiB ≤ 0.8 × nginx; 0 failed streams in the HTTP/2 reload storm.")
    add("")
    table = h2_summary_table(results)
    if table:
        add(table)
        add("")
    for name, why in results.get("h2_unmeasured", {}).items():
        add(f"* {name}: not measured — {why}")
    if results.get("h2_unmeasured"):
        add("")
    if results.get("h2_check"):
        add("What each server negotiated with h2load (two requests on one connection, before measuring): "
            + "; ".join(f"{name} {c['proto']}, {c['tls']}, {c['cipher']}" for name, c in results["h2_check"].items())
            + ".")
        add("")
    if results.get("h2"):
        add("## HTTP/2 throughput (h2load -t1 -D, over TLS, ECDSA P-256)")
        add("")
        add("| run | size | server | -c × -m | protocol | req/s | p99 ms | mean ms | max ms | succeeded | failed | "
            "errored | timeout | server CPU µs/req | h2load CPU µs/req | h2load cores |")
        add("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results["h2"]:
            add(f"| {r['run']} | {r['size']} | {r['server']} | {r['conns']} × {r['streams']} | {r['proto']} | "
                f"{r['rps']:.0f} | {'–' if r['p99_ms'] is None else r['p99_ms']} | {r['mean_ms']} | {r['max_ms']} | "
                f"{r['succeeded']} | {r['failed']} | {r['errored']} | {r['timeout']} | {r['server_cpu_us']} | "
                f"{r['client_cpu_us']} | {r['client_cores']} |")
        add("")
        add("Memory under the 1 KiB HTTP/2 load (max of samples during each run, all processes):")
        add("")
        add("| run | server | RSS KiB | PSS KiB | processes |")
        add("|---|---|---:|---:|---:|")
        for r in results.get("rss_loaded_h2", []):
            add(f"| {r['run']} | {r['server']} | {r['rss_kib']} | {r['pss_kib']} | {r['procs']} |")
        add("")
    if results.get("h2storm"):
        add("## HTTP/2 reload storm (20 reloads/s; h2load clients that never retry, a connection each)")
        add("")
        add("| server | reloads performed | client | connections | connections failed | ended by the server | "
            "streams | failed streams | per 100k | not sent | h2load failed | h2load errored | h2load timeout "
            "| req/s |")
        add("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in results["h2storm"].items():
            for lane, c in r["clients"].items():
                per = "–" if c["per_100k"] is None else f"{c['per_100k']:.1f}"
                add(f"| {name} | {r['reloads']} | {lane} | {c['connections']} | {c['conn_failed']} | "
                    f"{c['ended_early']} | {c['started']} | {c['stream_failed']} | {per} | {c['not_issued']} | "
                    f"{c['failed']} | {c['errored']} | {c['timeout']} | {c['rps']:.0f} |")
        add("")
        add("Storms: " + "; ".join(f"{name}: {r['signaller']}" for name, r in results["h2storm"].items()) + ".")
        add("")
    add("### HTTP/2 rules")
    add("")
    add(H2_RULES)


H2_RULES = """\
* Servers: as in the HTTPS phases (the same ECDSA P-256 leaf and key, TLS 1.3 only, the same files, graced
  18441, nginx 18442, Caddy 18443), with HTTP/2 offered by ALPN beside HTTP/1.1. graced: `[http2] enabled =
  true`, `max_concurrent_streams = 128` (its defaults, written out). nginx 1.22: `listen 127.0.0.1:18442 ssl
  http2;` (1.22's syntax; the `http2 on;` directive is 1.25.1+), its HTTP/2 defaults
  (`http2_max_concurrent_streams 128`, `http2_chunk_size 8k`); `keepalive_timeout 15s` and
  `keepalive_requests 1000000` govern its HTTP/2 connections too (since 1.19.7). Caddy 2.6: the HTTPS
  phases' Caddyfile unchanged; HTTP/2 is on by default over TLS (default `protocols h1 h2 h3`; Go's HTTP/2
  server allows 250 concurrent streams; its responses carry an `Alt-Svc` for h3, which h2load ignores).
* Check: before measuring, h2load sends two requests on one connection to each server; the protocol ALPN
  gave (h2load's "Application protocol"), the TLS version and the cipher are listed under the summary, and
  every run records the protocol again. A server that does not negotiate h2 is not measured.
* Client: h2load (Debian's nghttp2-client, OpenSSL) with one thread (`-t1`, as wrk -t1), to 127.0.0.1
  (`--connect-to`) with SNI and `:authority` `localhost`, ALPN list `h2,…,http/1.1` (h2 first); its default
  flow-control windows (2^30−1 for each stream and the connection, so a response never waits for a
  WINDOW_UPDATE) and 16 KiB frames; `-N 10s`: a connection without progress for 10 s is ended and its
  streams fail (as wrk's `--timeout 10s`). It does not validate the certificate.
* Throughput: `h2load -t1 -D SECS` for each size, the three servers interleaved within each of the 3 runs,
  their order rotating; medians. 1 KiB: `-c64 -m10` (640 streams in flight). 100 KiB: `-c16 -m4`: 64
  streams in flight, as many as wrk -c64 has requests in flight in the HTTPS phase (at 100 KiB the cost is
  in the bytes — encryption, copies, DATA frames — and more streams in flight add only buffering and
  latency), 4 to a connection so that each server interleaves the DATA frames of concurrent streams and
  shares a connection's window among them, the part that is HTTP/2's own. 1 MiB: `-c16 -m1`, one download
  at a time per connection. req/s is h2load's: responses completed within the `-D` window ÷ the window
  (streams still open when it ends are not counted).
* Server CPU per request: on-CPU time of all the server's threads and processes (/proc schedstat) during
  the h2load run ÷ the responses that succeeded, as in the HTTPS phase; h2load's CPU from its rusage, per
  request and in cores (it shares the cores with the server).
* Latency: h2load prints the time per request only as min, max, mean and sd (over at most 1,000,000
  sampled requests), no percentiles; mean and max in the tables are those. The p99 is computed from
  h2load's `--log-file` (a line per request: µs from submitting the request to the end of its response),
  nearest rank over the completed requests; writing it costs h2load a write(2) per response, the same for
  every server (`--h2-no-latency-log` leaves it out: no p99 then).
* Failed, errored, timeout in the throughput runs: h2load's own counts. `failed` = responses other than
  2xx/3xx + streams reset or lost + requests not sent because the connection ended; `errored` is the part
  of `failed` that is not an HTTP status (so the two are not added up); `timeout` the part lost to `-N`.
* HTTP/2 reload storm: 20 reloads/s for 20 s, as in the TLS reload storm (graced USR1, nginx HUP to the
  master, Caddy `POST /load` with `Cache-Control: must-revalidate`), starting 0.5 s after the clients, which
  run for 21 s: 4 connections at once requesting 1 KiB with 10 streams each (each connection one `h2load
  -c1 -m10 -n5000`) and 2 requesting 1 MiB with 2 streams each (`h2load -c1 -m2 -n100`); when a connection
  ends (its share done, or ended by the server) the next starts at once. h2load retries no stream and
  opens no new connection after a GOAWAY. Failed streams = streams opened that did not end with a 2xx/3xx
  response (reset, refused above a GOAWAY's last stream id, lost with the connection, timed out) — h2load's
  `started − succeeded`; a connection that failed before its first stream (connect, TLS handshake, ALPN)
  counts as one failure. Per 100k = failures ÷ (streams opened + connections failed) × 100,000. Requests a
  connection did not send because the server had ended it (GOAWAY or close) are not failures: they are
  listed as "not sent", with the connections the server ended ("ended by the server"). h2load's own
  `failed` counts those unsent requests too, so it is listed raw, not used.
"""


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


PLAIN_PHASE_KEYS = ("throughput", "throughput_1w", "latency", "reload_storm", "restart_storm", "startup")
# (the "upgrade" phase renders into the results file only)


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


def update_benchmarks_md(text_table, results, path, block="results"):
    """Replaces the text between `<!-- bench:BLOCK:begin -->` and its end marker."""
    try:
        doc = open(path).read()
    except FileNotFoundError:
        return
    begin, end = f"<!-- bench:{block}:begin -->", f"<!-- bench:{block}:end -->"
    if begin not in doc or end not in doc:
        return
    block = f"{begin}\nLatest run: [bench/results/{results['date']}.md](bench/results/{results['date']}.md) " \
            f"(load average {' '.join(results['load_start'])} at the start). Medians; ratio = graced ÷ other.\n\n" \
            f"{text_table}\n{end}"
    doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    open(path, "w").write(doc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", default="startup,throughput,throughput1,latency,reload,restart",
                    help="also: compress (graced vs nginx, gzip sidecar and on the fly), metrics (graced with metrics off vs on, 1 KiB; issue 18), https,handshake,tlsidle,tlsstorm (HTTPS, with nginx and caddy as peers; "
                         "not in the default list until graced serves HTTPS) and h2,h2storm (HTTP/2 over TLS "
                         "with h2load, the same peers; likewise not in the default list) and upgrade (a binary "
                         "upgrade under load: graced -k upgrade vs nginx USR2+QUIT vs graced WINCH + start)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10, help="seconds per throughput run")
    ap.add_argument("--storm-secs", type=int, default=20)
    ap.add_argument("--n", type=int, default=20, help="reload latency iterations")
    ap.add_argument("--startups", type=int, default=10)
    ap.add_argument("--servers", default="graced,nginx,apache,caddy",
                    help="a subset (caddy takes part in the HTTPS phases only)")
    ap.add_argument("--hs-conns", type=int, default=8, help="connections of the handshake client")
    ap.add_argument("--tls-secs", type=int, default=None, help="seconds per handshake run (default: --secs)")
    ap.add_argument("--h2-no-latency-log", action="store_true",
                    help="h2 phase: no per-request log from h2load (no p99; mean and max only)")
    ap.add_argument("--baseline", default=os.environ.get("GRACED_BASELINE"),
                    help="another graced binary (e.g. built from the last commit): added to the throughput "
                         "runs and the HUP storm as graced-before")
    ap.add_argument("--compress-layouts", default="shared,pinned",
                    help="compress phase: shared (servers' default workers, wrk on the same cores), "
                         "pinned (one worker, the server on CPU 0 and wrk on CPU 1), or both (the default)")
    ap.add_argument("--out", default=None, help="results file (default bench/results/DATE.md)")
    ap.add_argument("--no-update", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--render", metavar="JSON", help="only re-render a saved run (STATE/last-results.json)")
    args = ap.parse_args()
    GracedBefore.binary = args.baseline
    for kinds in (KINDS, TLS_KINDS):
        for name in list(kinds):
            if name not in args.servers.split(","):
                del kinds[name]
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
        if "metrics" in phases:
            phase_metrics(results, args.runs, args.secs)
        if "https" in phases:
            phase_https(results, args.runs, args.secs)
        if "handshake" in phases:
            phase_handshake(results, args.runs, args.tls_secs or args.secs, args.hs_conns)
        if "tlsidle" in phases:
            phase_tlsidle(results, TLS_IDLE_CONNS)
        if "tlsstorm" in phases:
            phase_tlsstorm(results, args.storm_secs, 20)
        if "h2" in phases:
            phase_h2(results, args.runs, args.secs, not args.h2_no_latency_log)
        if "h2storm" in phases:
            phase_h2storm(results, args.storm_secs, 20)
        if "compress" in phases:
            layouts = args.compress_layouts.split(",")
            if "shared" in layouts:
                phase_compress(results, args.runs, args.secs)
            if "pinned" in layouts and can_pin():
                phase_compress(results, args.runs, args.secs, pinned=True)
            elif "pinned" in layouts:
                log("compress (pinned): skipped, CPUs 0 and 1 are not both available to this process")
        if "upgrade" in phases:
            phase_upgrade(results)
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
    plain = any(results.get(k) for k in PLAIN_PHASE_KEYS)
    if plain and not args.no_update and args.out is None:
        update_benchmarks_md(summary_table(summary(results), results), results, f"{REPO}/BENCHMARKS.md")
    log(f"results: {out}")
    if plain:
        print(summary_table(summary(results), results))
    tls = tls_summary_table(results)
    if tls and not args.no_update and args.out is None:
        update_benchmarks_md(tls, results, f"{REPO}/BENCHMARKS.md", block="https")
    if tls:
        print(tls)
    h2 = h2_summary_table(results)
    if h2 and not args.no_update and args.out is None:
        update_benchmarks_md(h2, results, f"{REPO}/BENCHMARKS.md", block="http2")
    if h2:
        print(h2)
    compress = compress_summary_table(results)
    if compress and not args.no_update and args.out is None:
        update_benchmarks_md(compress, results, f"{REPO}/BENCHMARKS.md", block="compression")
    if compress:
        print(compress)


if __name__ == "__main__":
    main()
