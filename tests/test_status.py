"""Seeing the server work: /status, /metrics, /health and /status.html from the scoreboard,
on the built-in site and on a status listener of its own beside an APP."""

from __future__ import annotations

import signal
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.client import get, read_response
from support.paths import APPS
from support.polling import wait_until
from support.processes import wait_workers

pytestmark = pytest.mark.timeout(40)


def status(port: int) -> dict:
    response = httpx.get(f"http://127.0.0.1:{port}/status", timeout=5)
    assert response.status_code == 200
    return response.json()


def test_request_counts_add_up_across_two_workers_whoever_answers(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    pids = set(wait_workers(server.proc.pid, 2))
    before = status(server.port)
    assert {w["pid"] for w in before["workers"]} == pids
    for _ in range(100):  # a new connection each: both workers serve some
        assert get(server.port, "/plaintext")[0] == 200
    # Every request counts, the /status ones too; a worker publishes its figures each heartbeat.
    expected = before["requests"] + 100 + 1
    after = wait_until(lambda: (doc := status(server.port))["requests"] >= expected and doc, 5,
                       message="the counts to be published")
    polls = after["requests"] - expected  # the /status requests made while waiting
    assert after["requests"] == before["requests"] + 100 + 1 + polls
    assert sum(w["requests"] for w in after["workers"]) == after["requests"]
    assert all(w["requests"] > 0 for w in after["workers"]), "both workers served"
    assert after["accepted"] == after["handled"] >= 100
    assert after["responses"]["2xx"] >= 100
    worker = after["workers"][0]
    for key in ("slot", "generation", "age", "heartbeat_age", "rss", "queued", "busy_threads", "reading",
                "writing", "waiting", "bytes_sent"):
        assert key in worker
    assert after["master"]["pid"] == server.proc.pid and after["master"]["generation"] == 1


def test_metrics_parse_as_prometheus_text_with_help_and_type(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    wait_workers(server.proc.pid, 2)
    for _ in range(10):
        get(server.port, "/json")

    def published():  # the other worker publishes with its next heartbeat
        response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        done = sum(s.value for s in families["prefork_requests"].samples) >= 10
        return done and (response, families)

    response, families = wait_until(published, 5, message="the requests in the metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    for name in ("prefork_requests", "prefork_connections_accepted", "prefork_responses",
                 "prefork_request_duration_seconds", "prefork_connections", "prefork_master_reloads"):
        assert name in families, name
    assert families["prefork_requests"].type == "counter"
    assert families["prefork_request_duration_seconds"].type == "histogram"
    workers = {s.labels["worker"] for s in families["prefork_requests"].samples}
    assert workers == {"0", "1"}
    text = response.text
    for family in families:
        assert f"# HELP {family}" in text and f"# TYPE {family}" in text


def test_health_turns_503_on_quit_for_the_connections_still_open(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout", "10",
                          "--chdir", APPS, "--status-bind", "127.0.0.1:0", "plain:app", expect_ports=2)
    (worker,) = wait_workers(server.proc.pid, 1)
    status_port = server.ports[1]
    with socket.create_connection(("127.0.0.1", status_port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[::2] == (200, b"ok\n")
        server.send_signal(signal.SIGQUIT)
        server.wait_for_log(r"graceful shutdown \(QUIT\)")
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")  # a load balancer's next check
        status_code, headers, body = read_response(sock)
        assert (status_code, body) == (503, b"draining\n")
        # The master turned /health at once; the worker closes the connection when it has
        # read its own QUIT: with this answer (Connection: close) or, if the check came just
        # before, as an idle connection right after.
        if headers.get("connection") != "close":
            assert sock.recv(1) == b""
    assert server.proc.wait(10) == 0


def test_with_an_app_the_status_routes_live_on_their_own_listener(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--status-bind", "127.0.0.1:0",
                          "--chdir", APPS, "plain:app", expect_ports=2)
    app_port, status_port = server.ports
    wait_workers(server.proc.pid, 2)
    assert get(app_port, "/status")[0] == 404  # the app's own routes, never shadowed
    assert get(status_port, "/health")[::2] == (200, b"ok\n")
    assert get(status_port, "/")[0] == 404
    doc = status(status_port)
    assert len(doc["workers"]) == 2
    page = get(status_port, "/status.html")
    assert page[0] == 200 and b"fetch(\"status\"" in page[2] and b"http" not in page[2].split(b"<script>")[1]


def test_the_landing_page_says_what_runs_and_links_every_route(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    code, _, page = get(server.port, "/")
    assert code == 200
    for link in (b"/status.html", b"/status", b"/metrics", b"/health", b"/plaintext", b"/json", b"/echo"):
        assert b'href="' + link in page or b"<code>" + link in page
    assert b"<td>workers</td><td>2</td>" in page and b"<td>dispatch</td><td>inline</td>" in page


def test_counts_stay_whole_when_workers_exit(start_server):
    """A worker that exits (recycled here every 40 requests; a reload or a crash alike) leaves
    every counter with the master, its last requests included: the sums in /status and over the
    series of /metrics (worker="exited" for the workers gone) count every request once."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--max-requests", "40")
    for _ in range(200):  # a new connection each, so requests queue for the next worker meanwhile
        assert get(server.port, "/plaintext")[0] == 200
    polls = iter(range(1, 1000))

    def whole():
        k = next(polls)  # this poll is request 200 + k, its own response not yet counted
        doc = status(server.port)
        return doc["requests"] == 200 + k and doc["responses"]["2xx"] == 200 + k - 1 and (k, doc)

    k, doc = wait_until(whole, 10, message="every request and response counted")
    assert doc["bytes_sent"] >= 200 * 13 and doc["master"]["respawns"] == 0
    response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = {s.labels["worker"]: s.value for s in families["prefork_requests"].samples}
    assert "exited" in requests and sum(requests.values()) == 200 + k + 1, requests
    responses = sum(s.value for s in families["prefork_responses"].samples if s.labels["code"] == "2xx")
    assert responses == 200 + k
