"""The IO-model lab: every model serves the protocol correctly, the sweep writes its CSV and plots,
and the claims the lab is built to show hold on loopback (real servers, real sockets)."""

from __future__ import annotations

import csv

import pytest

from prefork.lab import SWEEP, parse, protocol, unavailable
from prefork.lab.bench import bench
from prefork.lab.herd import measure
from prefork.lab.server import Running
from support.command import run_prefork

ROUNDS = 100


def start(spec: str) -> Running:
    why = unavailable(parse(spec)[0])
    if why:
        pytest.skip(f"{spec} is unavailable here: {why}")
    return Running(spec)


@pytest.mark.parametrize("spec", SWEEP)
def test_every_model_answers_every_request_correctly(spec):
    # the iterative server serves one client at a time by design: it gets one client, 100 round trips
    clients = 1 if spec == "blocking" else 100
    with start(spec) as server:
        result = bench(server.port, clients, 30.0, rounds=ROUNDS, timeout=10.0, server_pid=server.pid)
        assert server.proc.poll() is None, server.error_output()
    assert (result.requests, result.errors, result.timeouts) == (clients * ROUNDS, 0, 0), result.row()
    assert result.server_cpu_s >= 0 and result.rss_mb > 1, result.row()  # measured (NaN fails); ticks are 10 ms


@pytest.mark.parametrize("spec", ["select", "epoll:edge", "proactor"])
def test_a_wrong_token_would_be_caught(spec):
    """The driver checks each body against its own request: a server that answered another
    client's request would show as errors. Here every client gets its own token back over
    pipelined bytes split at odd places."""
    import socket

    with start(spec) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        wire = b"".join(protocol.request(f"t{i}") for i in range(5)) + b"GET nonsense\r\n\r\n"
        for offset in range(0, len(wire), 7):
            sock.sendall(wire[offset:offset + 7])
        expected = b"".join(protocol.response(f"t{i}\n".encode()) for i in range(5)) + protocol.BAD_REQUEST
        received = b""
        while len(received) < len(expected):
            received += sock.recv(65536)
    assert received == expected


def test_quick_run_writes_the_csv_and_the_plots(tmp_path):
    out = tmp_path / "run"
    done = run_prefork("lab", "run", "--quick", "--models", "blocking,epoll:edge,reactor", "--concurrency", "1,8",
                       "--seconds", "0.3", "--experiments", "herd", "--out", str(out), timeout=50)
    assert done.returncode == 0, done.stderr + done.stdout
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["variant"], r["concurrency"]) for r in rows] == [
        ("blocking", "", "1"), ("blocking", "", "8"), ("epoll", "edge", "1"), ("epoll", "edge", "8"),
        ("reactor", "", "1"), ("reactor", "", "8")]
    for row in rows:
        assert float(row["rps"]) > 0 and float(row["server_cpu_s"]) > 0 and float(row["rss_mb"]) > 0, row
    assert int(rows[1]["timeouts"]) > 0, "7 of the 8 clients wait for the iterative server in vain"
    assert int(rows[3]["timeouts"]) == int(rows[3]["errors"]) == 0, rows[3]
    plots = sorted(p.name for p in out.glob("*.png"))
    assert plots == ["cpu_per_request.png", "herd.png", "memory.png", "p99.png", "throughput.png"]
    assert all((out / p).stat().st_size > 10_000 for p in plots)
    assert (out / "herd.csv").exists()


def best_rate(spec: str, clients: int, tries: int = 3) -> float:
    """The best of three short runs: the machine is shared, and one run can lose its CPU."""
    with start(spec) as server:
        return max(bench(server.port, clients, 1.0, timeout=0.5, warmup=2.0).rps for _ in range(tries))


def test_at_high_concurrency_epoll_reactor_and_prefork_serve_more_than_the_iterative_server():
    blocking = best_rate("blocking", 50)
    for spec in ("epoll", "reactor", "prefork"):
        assert best_rate(spec, 50) > blocking, spec


def test_one_slow_handler_delays_the_reactor_but_not_the_emulated_proactor():
    medians = {}
    for model in ("reactor", "proactor"):
        with start(model) as server:
            result = bench(server.port, 10, 1.0, slow=1, slow_sleep_ms=40, timeout=2.0)
        assert result.errors == result.timeouts == 0 and result.requests > 0, result.row()
        medians[model] = result.p50_ms
    assert medians["reactor"] > 3 * medians["proactor"], medians


def test_a_shared_socket_wakes_every_worker_and_reuseport_sockets_wake_one():
    ratios = {}
    for mode in ("shared", "exclusive", "reuseport"):
        counts = measure(mode, 4, 200)
        assert sum(c["accepts"] for c in counts) == 200, (mode, counts)
        ratios[mode] = sum(c["wakeups"] for c in counts) / 200
    assert ratios["shared"] > 2.0 and ratios["reuseport"] < 1.6 and ratios["exclusive"] < ratios["shared"], ratios


def test_protocol_splits_pipelined_heads_and_keeps_the_rest():
    buffer = bytearray(protocol.request("a", cpu_us=5) + protocol.request("b") + b"GET /c HT")
    assert protocol.answers(buffer) == protocol.response(b"a\n") + protocol.response(b"b\n")
    assert buffer == b"GET /c HT"
    assert protocol.respond(b"GET nowhere HTTP/1.1") == protocol.BAD_REQUEST
