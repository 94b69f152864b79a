"""/status.html in a real headless Chromium, driven over WebDriver by chromedriver, while the
server is under load: the page must show a non-zero request rate.

The WebDriver protocol is plain HTTP and JSON (W3C WebDriver), spoken here with httpx, so the
test needs the browser and its driver (Debian: chromium, chromium-driver) and nothing else.
Set PREFORK_STATUS_PNG=PATH to keep the screenshot (docs/status.png is made that way, with
PREFORK_STATUS_SECONDS=30 so that the chart has half a minute of history).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from support.client import connect, read_response
from support.polling import wait_until
from support.ports import free_port
from support.processes import stop_group

pytestmark = pytest.mark.timeout(90)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                   reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)")


class Load:
    """Threads sending keep-alive GETs as fast as the server answers, until stop()."""

    def __init__(self, port: int, targets: list[str], threads: int = 4):
        self.port = port
        self.targets = targets
        self.running = True
        self.answered = 0
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self, index: int) -> None:
        target = self.targets[index % len(self.targets)]
        request = f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        try:
            with connect(self.port) as sock:
                buf = bytearray()
                while self.running:
                    sock.sendall(request)
                    status, _, _ = read_response(sock, buf)
                    assert status == 200, status
                    self.answered += 1
        except BaseException as exc:  # reported by stop(), in the test's thread
            self.errors.append(exc)

    def stop(self) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(timeout=10)
        assert not self.errors, self.errors


class Browser:
    """A headless Chromium session through chromedriver (W3C WebDriver over HTTP)."""

    def __init__(self, tmp_path: Path):
        port = free_port()
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        wait_until(self._driver_ready, timeout=20, message="chromedriver to answer")
        options = {"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium-profile'}"]}
        answer = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"/session/{answer['sessionId']}"

    def _driver_ready(self) -> bool:
        try:
            return self.http.get("/status").json()["value"]["ready"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def _call(self, method: str, path: str, payload: dict | None = None):
        response = self.http.request(method, path, json=payload)
        value = response.json()["value"]
        assert response.status_code == 200, value
        return value

    def open(self, url: str) -> None:
        self._call("POST", self.session + "/url", {"url": url})

    def script(self, source: str):
        return self._call("POST", self.session + "/execute/sync", {"script": source, "args": []})

    def screenshot(self) -> bytes:
        return base64.b64decode(self._call("GET", self.session + "/screenshot"))

    def close(self) -> None:
        try:
            self._call("DELETE", self.session)
        finally:
            self.http.close()
            stop_group(self.driver, timeout=10)  # chromedriver, and any Chromium it left behind


def shown_rate(browser: Browser) -> float:
    """The requests/s figure the page shows, 0 while it shows none yet."""
    text = browser.script("return document.getElementById('rate').textContent")
    return float(text) if text.replace(".", "", 1).isdigit() else 0.0


@needs_browser
def test_status_page_shows_the_rate_under_load(start_server, tmp_path):
    (tmp_path / "page.html").write_bytes(b"<p>a static page</p>\n" * 100)
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--static-root", str(tmp_path))
    load = Load(server.port, ["/plaintext", "/json", "/static/page.html", "/plaintext"])
    browser = Browser(tmp_path)
    try:
        browser.open(f"http://127.0.0.1:{server.port}/status.html")
        # The page's own polling is one request a second: the load is what makes the rate high.
        rate = wait_until(lambda: shown_rate(browser) > 100 and shown_rate(browser), timeout=30, interval=0.2,
                          message="the load's rate on the page")
        assert rate > 100
        # Every worker has its row, and one of them shows a rate of its own.
        rows = wait_until(lambda: browser.script(
            "return [...document.querySelectorAll('#workers tr')].map(r => r.cells[6].textContent)"),
            message="the workers' rows")
        assert len(rows) == 2
        wait_until(lambda: any(cell.isdigit() and int(cell) > 0 for cell in browser.script(
            "return [...document.querySelectorAll('#workers tr')].map(r => r.cells[6].textContent)")),
            timeout=10, interval=0.2, message="a worker's own rate")
        assert browser.script("return document.querySelectorAll('#chart path').length") >= 1
        keep = os.environ.get("PREFORK_STATUS_PNG")
        end = time.monotonic() + float(os.environ.get("PREFORK_STATUS_SECONDS", "0")) if keep else 0
        wait_until(lambda: time.monotonic() >= end, timeout=120, message="the chart's history")
        png = browser.screenshot()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        (Path(keep) if keep else tmp_path / "status.png").write_bytes(png)
    finally:
        browser.close()
        load.stop()
    assert load.answered > 0
