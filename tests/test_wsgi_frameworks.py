"""Real frameworks (Flask, Falcon) hosted by prefork under both dispatch paths.

Each app is wrapped in wsgiref.validate.validator (`app`); file responses are also fetched
from the unwrapped app (`raw`), where wsgi.file_wrapper reaches the server and os.sendfile.
"""

import hashlib
import os

import httpx
import pytest

from support.logs import assert_clean
from support.paths import APPS


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wsgi-frameworks")
    upload = os.urandom(5 << 20)
    download = folder / "download.bin"
    download.write_bytes(os.urandom(2 << 20))
    return upload, download


@pytest.mark.timeout(60)
@pytest.mark.parametrize("framework", ["flask_app", "falcon_app"])
@pytest.mark.parametrize("dispatch", ["inline", "threads"])
def test_framework(start_server, framework, dispatch, files):
    upload, download = files
    server = start_server(f"{framework}:app", "--chdir", APPS, "-w", "1", "-b", "127.0.0.1:0",
                          "--dispatch", dispatch, ready_timeout=20)
    raw = start_server(f"{framework}:raw", "--chdir", APPS, "-w", "1", "-b", "127.0.0.1:0",
                       "--dispatch", dispatch, ready_timeout=20)
    with httpx.Client(base_url=server.url, timeout=20) as client:
        r = client.get("/query", params=[("a", "1"), ("a", "2"), ("b", "\u00e9 & =")])
        assert r.status_code == 200 and r.json() == {"a": ["1", "2"], "b": ["\u00e9 & ="]}

        r = client.post("/upload", files={"file": ("big.bin", upload, "application/octet-stream")},
                        data={"note": "five megabytes"})
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "big.bin", "size": len(upload), "note": "five megabytes",
                            "sha256": hashlib.sha256(upload).hexdigest()}

        r = client.get("/stream", params={"n": 1000})
        assert r.status_code == 200
        assert r.text == "".join(f"line {i}\n" for i in range(1000))

        r = client.get("/file", params={"path": str(download)})
        assert r.status_code == 200 and r.content == download.read_bytes()
    with httpx.Client(base_url=raw.url, timeout=20) as client:
        r = client.get("/file", params={"path": str(download)})
        assert r.status_code == 200 and r.content == download.read_bytes()
        assert r.headers["content-length"] == str(download.stat().st_size)
    for s in (server, raw):
        assert_clean(s.log())
