"""The http_parser setting: auto, httptools or python; which class each gives, the error when
httptools is asked for and cannot be imported, and the parser a real server says it runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support.client import connect, read_response
from support.command import PREFORK
from support.parsers import PARSER_SETTINGS, REQUEST_PARSERS
from support.paths import REPO
from prefork import config as configuration
from prefork.http import RequestParser, parser_class

pytestmark = pytest.mark.timeout(60)
needs_httptools = pytest.mark.skipif("httptools" not in REQUEST_PARSERS, reason="httptools is not installed")


@needs_httptools
def test_auto_and_httptools_give_the_llhttp_parser():
    from prefork.http.llhttp_parser import LlhttpRequestParser

    assert parser_class("auto") == parser_class("httptools") == (LlhttpRequestParser, "httptools")
    assert issubclass(LlhttpRequestParser, RequestParser)
    assert configuration.load(None, {}).http_parser == "auto"


def test_python_gives_the_pure_python_parser():
    assert parser_class("python") == (RequestParser, "python")


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="'h11'"):
        parser_class("h11")


def hide_httptools(monkeypatch):
    """As if httptools were not installed: importing it raises ImportError."""
    monkeypatch.setitem(sys.modules, "httptools", None)
    monkeypatch.delitem(sys.modules, "prefork.http.llhttp_parser", raising=False)


def test_without_httptools_auto_falls_back_to_python(monkeypatch):
    hide_httptools(monkeypatch)
    assert parser_class("auto") == (RequestParser, "python")
    assert configuration.load(None, {"http_parser": "auto"}).http_parser == "auto"


def test_without_httptools_asking_for_it_is_a_config_error_naming_key_and_value(monkeypatch, tmp_path):
    hide_httptools(monkeypatch)
    with pytest.raises(configuration.ConfigError) as caught:
        configuration.load(None, {"http_parser": "httptools"})
    message = str(caught.value)
    assert "'http_parser'" in message and "'httptools'" in message and "command line" in message
    path = tmp_path / "prefork.toml"
    path.write_text('http_parser = "httptools"\n')
    with pytest.raises(configuration.ConfigError, match=f"{path}: invalid value 'httptools' for key 'http_parser'"):
        configuration.load(str(path), {})


def test_the_command_refuses_httptools_it_cannot_import(tmp_path):
    """`prefork -t --http-parser httptools` where httptools does not import: exit 1, key and value named."""
    broken = tmp_path / "httptools"
    broken.mkdir()
    (broken / "__init__.py").write_text('raise ImportError("No module named \'httptools\'")\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    result = subprocess.run(PREFORK + ["-t", "--http-parser", "httptools"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert "http_parser" in result.stderr and "httptools" in result.stderr and "Traceback" not in result.stderr
    auto = subprocess.run(PREFORK + ["-t", "--http", "auto"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert auto.returncode == 0, auto.stderr


def test_an_unknown_choice_is_refused_by_the_command():
    result = subprocess.run(PREFORK + ["-t", "--http-parser", "h11"], cwd=REPO, capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "auto, httptools, python" in result.stderr.replace("'", "")


@pytest.mark.parametrize("flag", ["--http-parser", "--http"])
@pytest.mark.parametrize("name", PARSER_SETTINGS)
def test_the_server_says_which_parser_runs_and_serves_with_it(start_server, flag, name):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", flag, name)
    server.wait_for_log(rf"master \d+: 1 worker, generation \d+, {name} request parser")
    with connect(server.port) as sock:
        buf = bytearray()
        for number in range(3):  # fresh heads on one connection
            sock.sendall(b"GET /?n=%d HTTP/1.1\r\nHost: a\r\nX-N: %d\r\n\r\n" % (number, number))
            assert read_response(sock, buf)[0] == 200
        sock.sendall(b"MKCOLA / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/2.0\r\nHost: a\r\n\r\n")
        assert read_response(sock, buf)[0] != 400  # an extension method parses (the site answers it)
        assert read_response(sock, buf)[0] == 505
