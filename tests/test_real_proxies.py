"""prefork behind the proxies users run: a Django project behind nginx on a unix socket (nginx's
workers as www-data, TLS terminated in front: X-Forwarded-Proto https), and HAProxy passing the
client with the PROXY protocol v2."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from support.paths import APPS, REPO
from support.polling import wait_until
from support.proxies import haproxy, nginx, shared_directory

pytestmark = pytest.mark.slow


@pytest.fixture
def proxy_dir():
    directory = shared_directory()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def django_env(database) -> dict:
    return {"DJANGO_SETTINGS_MODULE": "djsite.settings", "DJANGO_DB": str(database),
            "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)])}


def prepare_django(database) -> None:
    env = {**os.environ, **django_env(database)}
    subprocess.run([sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"], env=env, check=True,
                   timeout=120)
    subprocess.run([sys.executable, "-c", "import django; django.setup(); "
                    "from django.contrib.auth.models import User; "
                    "User.objects.create_superuser('admin', 'admin@example.com', 'pw-for-tests-only')"],
                   env=env, check=True, timeout=60)


@pytest.mark.timeout(120)
def test_django_admin_login_behind_nginx_on_a_unix_socket(start_server, proxy_dir):
    pytest.importorskip("django")
    database = proxy_dir / "db.sqlite3"
    prepare_django(database)
    sock = proxy_dir / "django.sock"
    server = start_server("-w", "2", "-b", f"unix:{sock}", "--chdir", str(APPS), "djsite.wsgi",
                          env=django_env(database), expect_ports=1)
    front = nginx(f"unix:{sock}", proxy_dir)
    try:
        # The client comes from 127.0.0.2: nginx says so in X-Forwarded-For.
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        base = f"http://127.0.0.1:{front.port}"
        with httpx.Client(transport=transport, base_url=base, timeout=10) as client:
            page = client.get("/admin/login/?next=/admin/")
            assert page.status_code == 200, page.text
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            login = client.post("/admin/login/?next=/admin/",
                                data={"csrfmiddlewaretoken": token, "username": "admin",
                                      "password": "pw-for-tests-only", "next": "/admin/"},
                                headers={"Origin": f"https://127.0.0.1:{front.port}",
                                         "Referer": f"https://127.0.0.1:{front.port}/admin/login/"})
            # 403 here is Django's CSRF origin check: the request did not look like https.
            assert login.status_code == 302, login.text[:2000]
            assert login.headers["location"] == "/admin/"
            me = client.get("/whoami").json()
            assert me == {"remote_addr": "127.0.0.2", "secure": True, "user": "admin"}
            assert client.get("/admin/").status_code == 200
    finally:
        front.stop()
    assert "Traceback" not in server.log()


@pytest.mark.timeout(60)
def test_haproxy_send_proxy_v2_puts_the_client_in_the_access_log(start_server, proxy_dir, tmp_path):
    log = tmp_path / "access.log"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--proxy-protocol", "--access-log", str(log))
    front = haproxy(f"127.0.0.1:{server.port}", proxy_dir)
    try:
        transport = httpx.HTTPTransport(local_address="127.0.0.3")
        with httpx.Client(transport=transport, timeout=10) as client:
            response = client.get(f"http://127.0.0.1:{front.port}/plaintext?via=haproxy")
        assert response.status_code == 200 and response.text == "Hello, World!"
    finally:
        front.stop()
    line = wait_until(lambda: [l for l in log.read_text().splitlines() if "via=haproxy" in l], 10,
                      message="the access log line")[0]
    assert line.startswith("127.0.0.3 - - ["), line


@pytest.mark.timeout(120)
def test_keepalive_0_behind_nginx_pooling_connections_loses_no_request(start_server, proxy_dir):
    """keepalive = 0: prefork closes after every response, and must say so (Connection: close),
    or nginx puts the connection back in its pool and sends the next request into a closing
    socket: 'upstream prematurely closed connection', a 502 for a POST it may not retry."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--keep-alive", "0")
    front = nginx(f"127.0.0.1:{server.port}", proxy_dir, extra_location="proxy_next_upstream off;")
    failures = []
    try:
        def post(client, number):
            response = client.post(f"http://127.0.0.1:{front.port}/echo", content=b"x" * number)
            if response.status_code != 200 or response.content != b"x" * number:
                failures.append((number, response.status_code))

        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda number: post(client, number), range(1, 1201)))
    finally:
        front.stop()
    errors = [line for line in (proxy_dir / "nginx-error.log").read_text().splitlines() if "[error]" in line]
    assert not failures and not errors, (len(failures), errors[:3])
