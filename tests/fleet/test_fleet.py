"""Three prefork hosts behind HAProxy (then nginx), each in a network namespace of its own, under
load from a client in another: rolling deploy, rolling binary upgrade, drain, a host killed, a
host stalled. Every failed request is counted by the client (tests/fleet/load.py).

The topology and the load balancers' configuration are conf/haproxy.cfg and
conf/nginx-upstream.conf themselves (see fleet.py). Needs root, `ip`, haproxy and nginx; CI
has them (.ci/run). Set FLEET_RESULTS=FILE to keep the figures of a run as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from support.polling import wait_until
from support.processes import alive
from fleet import (CLIENT_ADDRESS, CONF, LB_ADDRESS, HAProxy, Host, Load, Network, Nginx, get,
                   haproxy_check, haproxy_servers, nginx_servers, remove_stale)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="network namespaces need root and ip"),
]
HAPROXY_TEXT = (CONF / "haproxy.cfg").read_text()
SERVERS = haproxy_servers(HAPROXY_TEXT)  # web1 -> ("10.0.0.11", 8000), ...
CHECK = haproxy_check(HAPROXY_TEXT)  # inter, fall, rise, port of the health check
# From a change on a host to HAProxy's verdict: `fall` (or `rise`) checks, the first one up to an
# interval away, each taking up to its 1 s timeout, and a little slack for a loaded machine.
VERDICT = (CHECK["fall"] + 1) * CHECK["inter"] + CHECK["fall"] * 1.0 + 2.0
STALL = 10.0  # seconds a slow host's workers are stopped
RESULTS: list[dict] = []


class Fleet:
    def __init__(self, network: Network, directory: Path):
        self.network = network
        self.directory = directory
        self.hosts: dict[str, Host] = {}
        self.balancer = None

    def start_hosts(self, *extra: str) -> None:
        for name, (address, port) in SERVERS.items():
            host = Host(self.network, name, address, port, CHECK["port"], self.directory / name, extra)
            host.start()
            self.hosts[name] = host

    def stop_hosts(self) -> None:
        for host in self.hosts.values():
            host.control("quit")
        for host in self.hosts.values():
            wait_until(host.stopped, 15, message=f"{host.name} to stop")

    def load(self, scenario: str) -> "Scenario":
        return Scenario(self, scenario)


class Scenario:
    """The client's load for the length of a `with` block; its final totals in `totals`, and
    in RESULTS with the scenario's own figures (`notes`)."""

    def __init__(self, fleet: Fleet, name: str):
        self.fleet = fleet
        self.name = name
        self.notes: dict = {}
        self.totals: dict = {}

    def __enter__(self) -> Load:
        log = self.fleet.directory / f"load-{len(RESULTS)}.log"
        self.load = Load(self.fleet.network.name("client"), LB_ADDRESS, 80, log)
        self.started = time.monotonic()
        return self.load

    def __exit__(self, *exc_info) -> None:
        self.totals = self.load.stop()
        RESULTS.append({"scenario": self.name, "seconds": round(time.monotonic() - self.started, 1),
                        "requests": self.totals["ok"] + self.totals["failed"], "failed": self.totals["failed"],
                        "resent": self.totals["resent"], "slow": self.totals["slow"],
                        "max_latency": self.totals["max_latency"],
                        "per_host": {h: s["count"] for h, s in sorted(self.totals["hosts"].items())},
                        **self.notes})


@pytest.fixture(scope="module")
def fleet(request):
    remove_stale()
    network = Network(f"pf{os.getpid()}")
    directory = Path(tempfile.mkdtemp(prefix="prefork-fleet-"))
    directory.chmod(0o755)  # nginx's workers (nobody) read nothing here, but pass through
    fleet = Fleet(network, directory)
    try:
        nodes = {"lb": LB_ADDRESS, "client": CLIENT_ADDRESS, **{n: a for n, (a, _) in SERVERS.items()}}
        network.create(nodes)
        fleet.start_hosts("--proxy-protocol")
        fleet.balancer = HAProxy(network.name("lb"), directory)
        for name in SERVERS:
            fleet.balancer.wait_state(name, "UP", VERDICT)
        yield fleet
    finally:
        if fleet.balancer is not None:
            fleet.balancer.stop()
        network.destroy()
        if RESULTS and os.environ.get("FLEET_RESULTS"):
            Path(os.environ["FLEET_RESULTS"]).write_text(json.dumps(RESULTS, indent=2) + "\n")
        if request.session.testsfailed:  # the hosts', balancers' and client's logs
            print(f"\nfleet logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def test_the_configurations_name_the_same_three_hosts():
    upstream = nginx_servers((CONF / "nginx-upstream.conf").read_text())
    assert len(SERVERS) == 3
    assert upstream == [f"{address}:{port}" for address, port in SERVERS.values()]


@pytest.mark.timeout(90)
def test_rolling_deploy_of_a_new_app_version_loses_nothing(fleet):
    scenario = fleet.load("rolling deploy (new file, HUP)")
    with scenario as load:
        load.wait(lambda t: len(t["hosts"]) == 3, 10, "every host to serve")
        for host in fleet.hosts.values():
            host.deploy_file("v2")
            os.kill(host.master(), signal.SIGHUP)
            wait_until(lambda: host.serves("v2"), 20, message=f"{host.name} to serve v2")
            # ... and through HAProxy, before the next host is touched
            load.wait(lambda t: t["hosts"][host.name]["versions"].get("v2"), 10, f"v2 from {host.name}")
            load.wait_more(100)  # while the old generation finishes and exits
    totals = scenario.totals
    assert totals["failed"] == 0, totals["failures"]
    assert all(host.serves("v2") for host in fleet.hosts.values())
    assert all("v2" in seen["versions"] for seen in totals["hosts"].values())
    assert totals["clients"] == [CLIENT_ADDRESS], "the PROXY header carries the client's address"


@pytest.mark.timeout(120)
def test_rolling_binary_upgrade_loses_nothing(fleet):
    scenario = fleet.load("rolling binary upgrade (USR2, QUIT)")
    with scenario as load:
        for host in fleet.hosts.values():
            old = host.master()
            os.kill(old, signal.SIGUSR2)
            new = wait_until(lambda: (pid := read_pid(host)) not in (None, old) and pid, 10,
                             message=f"{host.name}'s new master")
            wait_until(lambda: serving_master(host) == (new, 2), 15, interval=0.05,
                       message=f"{host.name}'s new master serving with 2 workers")
            os.kill(old, signal.SIGQUIT)
            wait_until(lambda: not alive(old), 15,
                       message=f"{host.name}'s old master to exit")
            load.wait_more(50)
    totals = scenario.totals
    assert totals["failed"] == 0, totals["failures"]
    assert len(totals["hosts"]) == 3


@pytest.mark.timeout(120)
def test_a_drained_host_gets_no_more_requests_then_stops_without_losing_any(fleet):
    host = fleet.hosts["web2"]
    scenario = fleet.load("drain one host, resume, drain again, then stop it (TERM)")
    with scenario as load:
        load.wait(lambda t: len(t["hosts"]) == 3, 10, "every host to serve")
        host.control("drain")
        fleet.balancer.wait_state(host.name, "DOWN", VERDICT)
        resumed = time.monotonic()
        host.control("resume")
        back = fleet.balancer.wait_state(host.name, "UP", VERDICT)
        load.wait(lambda t: load.served_since(host.name, back), 10, "the resumed host to be sent requests")
        drained = time.monotonic()
        host.control("drain")
        out = fleet.balancer.wait_state(host.name, "DOWN", VERDICT)
        load.wait_more(300)
        last = load.latest["hosts"][host.name]["last"]
        assert host.serves("v2"), "a drained host still serves whoever comes"
        os.kill(host.master(), signal.SIGTERM)
        wait_until(host.stopped, 15, message="the drained host to stop")
        load.wait_more(100)
        scenario.notes = {"out_after": round(out - drained, 1), "last_request_after": round(last - drained, 1),
                          "back_after_resume": round(back - resumed, 1)}
    totals = scenario.totals
    assert totals["failed"] == 0, totals["failures"]
    # The last request it got was sent before HAProxy's verdict (a response is at most ~a
    # second late on this loaded machine); after it, the others carried all the load.
    assert last < out + 1.0
    assert totals["hosts"][host.name]["last"] == last
    host.start()
    fleet.balancer.wait_state(host.name, "UP", VERDICT)


@pytest.mark.timeout(120)
def test_a_killed_host_loses_at_most_its_requests_in_flight_and_is_taken_back(fleet):
    host = fleet.hosts["web3"]
    scenario = fleet.load("host killed (kill -9 master and workers), restarted")
    with scenario as load:
        load.wait(lambda t: len(t["hosts"]) == 3, 10, "every host to serve")
        killed = time.monotonic()
        host.kill()
        out = fleet.balancer.wait_state(host.name, "DOWN", VERDICT)
        load.wait_more(300)
        host.start()
        back = fleet.balancer.wait_state(host.name, "UP", VERDICT)
        load.wait(lambda t: load.served_since(host.name, back), 10, "the host to be sent requests again")
        scenario.notes = {"out_after": round(out - killed, 1), "back_after_restart": round(back - killed, 1)}
    totals = scenario.totals
    # At most what was in flight on that host: no more than one request per client.
    assert totals["failed"] <= load.clients, totals["failures"]


@pytest.mark.timeout(120)
def test_a_stalled_host_delays_only_its_requests_in_flight_and_recovers(fleet):
    host = fleet.hosts["web1"]
    workers = host.worker_pids(host.master())
    assert len(workers) == 2
    scenario = fleet.load(f"slow host (workers stopped {STALL:g} s)")
    with scenario as load:
        load.wait(lambda t: len(t["hosts"]) == 3, 10, "every host to serve")
        stalled = time.monotonic()
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            out = fleet.balancer.wait_state(host.name, "DOWN", VERDICT)
            load.wait_more(200)  # the other two carry the load meanwhile
            # The stall lasts STALL seconds, by definition of the scenario.
            wait_until(lambda: time.monotonic() >= stalled + STALL, STALL + 1, interval=0.05)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        back = fleet.balancer.wait_state(host.name, "UP", VERDICT)
        load.wait(lambda t: load.served_since(host.name, back), 10, "the host to be sent requests again")
        scenario.notes = {"out_after": round(out - stalled, 1), "back_after_resume": round(back - resumed, 1)}
    totals = scenario.totals
    assert totals["failed"] == 0, totals["failures"]
    # Only requests already sent to the stalled host wait, at most one per client, for the
    # length of the stall: HAProxy sends no new ones once its check failed.
    assert totals["slow"] <= load.clients
    assert totals["max_latency"] < STALL + 3


@pytest.mark.timeout(120)
def test_behind_nginx_a_killed_host_loses_nothing_and_comes_back(fleet):
    fleet.balancer.stop()
    fleet.balancer = None
    fleet.stop_hosts()
    fleet.start_hosts("--forwarded-allow-ips", LB_ADDRESS)  # nginx sends X-Forwarded-For
    fleet.balancer = Nginx(fleet.network.name("lb"), fleet.directory / "nginx")
    client = fleet.network.name("client")
    wait_until(lambda: answers(client, LB_ADDRESS, 80), 10, message="nginx to answer")
    host = fleet.hosts["web2"]
    scenario = fleet.load("behind nginx: host killed, restarted")
    with scenario as load:
        load.wait(lambda t: len(t["hosts"]) == 3, 10, "every host to serve")
        host.kill()
        killed = time.monotonic()
        load.wait_more(300)
        host.start()
        # nginx tries a failed server again after fail_timeout (5 s)
        load.wait(lambda t: load.served_since(host.name, killed + 1), 15, "nginx to send to it again")
    totals = scenario.totals
    assert totals["failed"] == 0, totals["failures"]  # proxy_next_upstream: another host answers
    assert totals["clients"] == [CLIENT_ADDRESS], "X-Forwarded-For carries the client's address"


# -- helpers --------------------------------------------------------------------------------------

def read_pid(host: Host) -> int | None:
    try:
        return host.master()
    except (OSError, ValueError):  # between the old master's rename and the new one's write
        return None


def serving_master(host: Host) -> tuple[int, int] | None:
    """(master pid, serving workers) as /status tells it, on a new connection."""
    try:
        status, body = get(host.namespace, host.address, host.status_port, "/status", 2)
    except OSError:
        return None
    document = json.loads(body)
    return document["master"]["pid"], len(document["workers"])


def answers(namespace: str, address: str, port: int) -> bool:
    try:
        return get(namespace, address, port, "/", 2)[0] == 200
    except OSError:
        return False
