"""A fleet on one machine: network namespaces joined by a bridge, as separate machines would be.

    client (10.0.0.100) --+
    lb     (10.0.0.10)  --+-- bridge (in a namespace of its own) --+-- web1 (10.0.0.11)
                                                                   +-- web2 (10.0.0.12)
                                                                   +-- web3 (10.0.0.13)

The hosts' names, addresses and ports are read from conf/haproxy.cfg, the file users copy;
the load balancer runs that file (HAProxy) or includes conf/nginx-upstream.conf (nginx), so
the tested configuration and the documented one cannot drift. Nothing touches the root
namespace: every link is created inside the namespaces, and deleting them removes it all.
The test process reaches a namespace through a thread that enters it (setns) to create a
socket; the socket stays in that namespace whichever thread uses it.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from support.client import read_response
from support.command import PREFORK, checkout_env, control
from support.paths import REPO
from support.polling import wait_until
from support.processes import stat_fields, stop_group
from support.proxies import nginx_conf

CONF = REPO / "conf"
HERE = Path(__file__).resolve().parent
LB_ADDRESS = "10.0.0.10"
CLIENT_ADDRESS = "10.0.0.100"
PREFIX_LENGTH = 24
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if result.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


# -- the configuration users copy ---------------------------------------------------------------

def haproxy_servers(text: str) -> dict[str, tuple[str, int]]:
    """name -> (address, port) of the backend's server lines."""
    return {name: (address, int(port)) for name, address, port in
            re.findall(r"^\s*server\s+(\S+)\s+([\d.]+):(\d+)", text, re.M)}


def haproxy_check(text: str) -> dict[str, float | int]:
    """The health check's timing and port, from the default-server line."""
    line = re.search(r"^\s*default-server\s+(.*)$", text, re.M).group(1)
    words = dict(zip(line.split()[::2], line.split()[1::2]))
    return {"inter": float(words["inter"].rstrip("s")), "fall": int(words["fall"]), "rise": int(words["rise"]),
            "port": int(words["port"])}


def nginx_servers(text: str) -> list[str]:
    return re.findall(r"^\s*server\s+([\d.]+:\d+)", text, re.M)


# -- namespaces ---------------------------------------------------------------------------------

class Network:
    """The namespaces of one fleet and the bridge between them; `destroy` kills every process
    still inside them and deletes them (also after a failed test: call it in a finally)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.switch = f"{prefix}-sw"
        self.namespaces: list[str] = []

    def name(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def create(self, nodes: dict[str, str]) -> None:
        """nodes: node -> address; each gets a namespace with eth0 on the bridge."""
        self._add(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for node, address in nodes.items():
            namespace = self.name(node)
            self._add(namespace)
            ip("link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", node,
               "netns", self.switch)
            ip("-n", self.switch, "link", "set", node, "master", "br0", "up")
            ip("-n", namespace, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")

    def _add(self, namespace: str) -> None:
        ip("netns", "add", namespace)
        self.namespaces.append(namespace)

    def destroy(self) -> None:
        """Every namespace is deleted, even if a process in one of them would not die."""
        for namespace in reversed(self.namespaces):
            try:
                kill_all(namespace)
            finally:
                ip("netns", "delete", namespace)
        self.namespaces.clear()


def pids_in(namespace: str) -> list[int]:
    return [int(pid) for pid in ip("netns", "pids", namespace).split()]


def kill_all(namespace: str, timeout: float = 10.0) -> None:
    """SIGKILL every process of the namespace and wait until none is left."""
    def gone():
        pids = pids_in(namespace)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not pids
    wait_until(gone, timeout, interval=0.05, message=f"the processes of {namespace} to die")


def remove_stale() -> None:
    """Namespaces left by a fleet test whose process is gone (killed before its teardown):
    they are named pfPID-NODE."""
    for line in ip("netns", "list").splitlines():
        namespace = line.split()[0] if line.split() else ""
        owner = re.match(r"^pf(\d+)-", namespace)
        if owner and not os.path.exists(f"/proc/{owner.group(1)}"):
            kill_all(namespace)
            ip("netns", "delete", namespace)


def socket_in(namespace: str) -> socket.socket:
    """A TCP socket of the namespace: created by a thread that entered it (setns is per thread)."""
    made: dict = {}

    def enter():
        try:
            with open(f"/run/netns/{namespace}") as handle:
                if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {namespace}")
            made["socket"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except BaseException as exc:
            made["error"] = exc

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["socket"]


def get(namespace: str, address: str, port: int, path: str, timeout: float = 5.0,
        preface: bytes = b"") -> tuple[int, bytes]:
    """One GET from inside `namespace`, on a new connection: (status, body)."""
    with socket_in(namespace) as sock:
        sock.settimeout(timeout)
        sock.connect((address, port))
        sock.sendall(preface + f"GET {path} HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n\r\n".encode())
        status, _, body = read_response(sock)
        return status, body


def run_in(namespace: str, command: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(["ip", "netns", "exec", namespace, *command], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


# -- a host: prefork serving the fleet app -------------------------------------------------------

class Host:
    """One machine of the fleet: its own copy of the app, prefork on the app port with the
    status listener (/health) on the check port, and a pidfile for `prefork -s`."""

    def __init__(self, network: Network, name: str, address: str, port: int, status_port: int,
                 directory: Path, extra: tuple = ()):
        self.name = name
        self.namespace = network.name(name)
        self.address = address
        self.port = port
        self.status_port = status_port
        self.directory = directory
        self.app_dir = directory / "app"
        self.app_dir.mkdir(parents=True, exist_ok=True)
        self.pidfile = directory / "prefork.pid"
        self.log = directory / "prefork.log"
        self.extra = tuple(extra)  # --proxy-protocol, or --forwarded-allow-ips LB
        self.deploy_file("v1")

    def deploy_file(self, version: str) -> None:
        source = (HERE / "fleetapp.py").read_text()
        assert 'VERSION = "v1"' in source
        (self.app_dir / "fleetapp.py").write_text(source.replace('VERSION = "v1"', f'VERSION = "{version}"'))

    def start(self) -> None:
        # PYTHONDONTWRITEBYTECODE: a same-size edit within the second would otherwise load the stale .pyc
        environment = checkout_env(FLEET_HOST=self.name, PYTHONDONTWRITEBYTECODE="1")
        run_in(self.namespace, PREFORK + [
            "fleetapp:application", "--chdir", str(self.app_dir), "-w", "2",
            "-b", f"0.0.0.0:{self.port}", "--status-bind", f"0.0.0.0:{self.status_port}",
            "--pid", str(self.pidfile), "--graceful-timeout", "10", *self.extra], self.log, environment)
        wait_until(self.healthy, 15, interval=0.05, message=f"{self.name} to serve")

    def healthy(self) -> bool:
        try:
            return get(self.namespace, self.address, self.status_port, "/health", 1)[0] == 200
        except OSError:
            return False

    def master(self) -> int:
        return int(self.pidfile.read_text())

    def worker_pids(self, master: int) -> list[int]:
        return [pid for pid in pids_in(self.namespace) if parent(pid) == master]

    def serves(self, version: str, tries: int = 8) -> bool:
        """`tries` requests in a row, each on a new connection (any worker), answer `version`."""
        # as the load balancer would ask: with a PROXY header when the host expects one
        preface = (f"PROXY TCP4 {LB_ADDRESS} {self.address} 40000 {self.port}\r\n".encode()
                   if "--proxy-protocol" in self.extra else b"")
        for _ in range(tries):
            status, body = get(self.namespace, self.address, self.port, "/", preface=preface)
            if status != 200 or body.split()[1].decode() != version:
                return False
        return True

    def control(self, name: str) -> None:
        control(self.pidfile, name)

    def stopped(self) -> bool:
        return not pids_in(self.namespace)

    def kill(self) -> None:
        kill_all(self.namespace)


def parent(pid: int) -> int:
    try:
        return int(stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return 0


# -- the load balancers ---------------------------------------------------------------------------

class HAProxy:
    """conf/haproxy.cfg as it is, but for the admin socket's path (a directory of the test's)."""

    STATS_LINE = "stats socket /run/haproxy/admin.sock"

    def __init__(self, namespace: str, directory: Path):
        text = (CONF / "haproxy.cfg").read_text()
        assert text.count(self.STATS_LINE) == 1, "conf/haproxy.cfg: the admin socket line moved"
        self.admin = directory / "haproxy-admin.sock"
        config = directory / "haproxy.cfg"
        config.write_text(text.replace(self.STATS_LINE, f"stats socket {self.admin}"))
        self.log = directory / "haproxy.log"
        self.proc = run_in(namespace, ["haproxy", "-db", "-f", str(config)], self.log)
        wait_until(lambda: self._alive() and self.admin.exists() and self.states(), 10,
                   message="HAProxy's admin socket")

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"haproxy exited with {self.proc.returncode}:\n{self.log.read_text()}")
        return True

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """server -> status ("UP", "DOWN", "UP 1/2", ...) in the backend `app`."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row["status"] for row in rows
                if row["pxname"] == "app" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_state(self, server: str, state: str, timeout: float) -> float:
        """Wait until `server` is `state`; returns the monotonic time it was seen so."""
        wait_until(lambda: self._alive() and self.states().get(server) == state, timeout, interval=0.05,
                   message=f"HAProxy to see {server} {state} (now {self.states()})")
        return time.monotonic()

    def stop(self) -> None:
        stop_group(self.proc)


class Nginx:
    """nginx whose http block includes conf/nginx-upstream.conf, unchanged."""

    def __init__(self, namespace: str, directory: Path):
        directory.mkdir(exist_ok=True)
        directory.chmod(0o755)
        self.log = directory / "nginx.out"
        config = directory / "nginx.conf"
        config.write_text(nginx_conf(directory, 1024, "", f"    include {CONF / 'nginx-upstream.conf'};"))
        self.proc = run_in(namespace, ["nginx", "-p", str(directory), "-c", str(config)], self.log)

    def stop(self) -> None:
        stop_group(self.proc)


# -- the client ---------------------------------------------------------------------------------

class Load:
    """tests/fleet/load.py in the client's namespace; `latest` is its last line of totals."""

    def __init__(self, namespace: str, address: str, port: int, log: Path, clients: int = 8, rate: float = 25.0):
        self.clients = clients
        self.log = log
        with open(log, "ab") as errors:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", namespace, sys.executable, str(HERE / "load.py"), address, str(port),
                 "--clients", str(clients), "--rate", str(rate)],
                stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, start_new_session=True)
        self.latest: dict = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait(lambda totals: totals["ok"] >= 2 * clients, 10, "the load to start")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.latest = json.loads(line)

    def wait(self, predicate, timeout: float, message: str) -> dict:
        def check():
            if self.proc.poll() is not None and not self.latest.get("final"):
                raise AssertionError(f"the load client exited with {self.proc.returncode}: {self.log.read_text()}")
            return self.latest and predicate(self.latest) and self.latest
        return wait_until(check, timeout, interval=0.05, message=message)

    def wait_more(self, requests: int, timeout: float = 20.0) -> dict:
        """Wait until `requests` more have been served than so far."""
        target = self.latest["ok"] + requests
        return self.wait(lambda totals: totals["ok"] >= target, timeout, f"{requests} more requests served")

    def served_since(self, host: str, since: float) -> bool:
        seen = self.latest["hosts"].get(host)
        return bool(seen) and seen["last"] > since

    def stop(self) -> dict:
        """Stop sending, wait for the requests in flight; the final totals."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(5)
        assert self.latest.get("final"), f"the load client did not finish: {self.log.read_text()}"
        return self.latest
