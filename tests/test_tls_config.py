"""TLS settings without TLS traffic: which listeners speak TLS, bad certificates and keys
refused by -t and at start with a message naming key, value and problem, and a reload (HUP)
with a broken certificate refused while the old workers keep serving.

The traffic itself (handshakes, rotation under load, client certificates) is test_tls.py's.
"""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest

from support.command import check, run_prefork
from support.polling import wait_until
from support.processes import wait_workers, workers

from prefork import config as configuration
from prefork.master.sockets import bind_all

pytestmark = pytest.mark.timeout(60)


# -- which listeners speak TLS ------------------------------------------------------------------

def protocols(tmp_path, *bind: str, certfile=None) -> list[str]:
    """What the workers are told to speak on each of these binds, bound for real."""
    overrides = {"bind": list(bind)}
    if certfile:
        overrides["certfile"] = str(certfile)
    config = configuration.load(None, overrides)
    listenings = bind_all(config.bind, 1, True, 16)
    try:
        return [listening.protocol(config.tls_by_default) for listening in listenings]
    finally:
        for listening in listenings:
            listening.close()


def test_with_a_certificate_every_tcp_bind_without_a_scheme_is_tls(tmp_path, certificates):
    """gunicorn's `-b 0.0.0.0:443 --certfile C --keyfile K`: TCP binds become TLS; a unix socket
    (a local proxy's) and a bind written http:// stay plain."""
    sock = tmp_path / "app.sock"
    found = protocols(tmp_path, "127.0.0.1:0", "[::1]:0", f"unix:{sock}", "http://127.0.0.1:0",
                      "echo://127.0.0.1:0", certfile=certificates.server_pem)
    assert found == ["https", "https", "http", "http", "echo"]


def test_a_bind_written_https_makes_only_those_tls(tmp_path, certificates):
    sock = tmp_path / "app.sock"
    found = protocols(tmp_path, "127.0.0.1:0", "https://127.0.0.1:0", f"https://unix:{sock}",
                      certfile=certificates.server_pem)
    assert found == ["http", "https", "https"]


def test_without_a_certificate_nothing_is_tls(tmp_path):
    assert protocols(tmp_path, "127.0.0.1:0", "http://127.0.0.1:0") == ["http", "http"]


def test_the_status_listener_stays_plain(start_server, certificates):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--status-bind", "127.0.0.1:0",
                          "--certfile", str(certificates.server_pem), "--keyfile", str(certificates.server_key),
                          expect_ports=2)
    line = server.wait_for_log(r"TLS on (.*): certificate (.*)")
    assert line.group(1) == "127.0.0.1:0"  # the status bind is not among them
    assert "CN=prefork test server" in line.group(2) and "IP Address:127.0.0.1" in line.group(2)
    with socket.create_connection(("127.0.0.1", server.ports[1]), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")


# -- the settings -------------------------------------------------------------------------------

def test_a_gunicorn_tls_command_line_is_accepted(certificates):
    result = check("-b", "0.0.0.0:443", "--certfile", str(certificates.server_pem),
                   "--keyfile", str(certificates.server_key), "--ca-certs", str(certificates.ca_pem),
                   "--cert-reqs", "2", "--ciphers", "ECDHE+AESGCM", "--tls-min-version", "1.3")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert "configuration ok" in result.stdout


@pytest.mark.parametrize("written, meant", [
    ("0", "none"), ("1", "optional"), ("2", "required"), ("none", "none"), ("Optional", "optional"),
    ("REQUIRED", "required")])
def test_cert_reqs_takes_gunicorn_numbers_and_words(written, meant):
    config = configuration.load(None, {"certfile": "c.pem", "ca_certs": "ca.pem", "cert_reqs": written})
    assert config.cert_reqs == meant


def test_the_file_takes_numbers_for_cert_reqs_and_the_version(tmp_path, certificates):
    conf = tmp_path / "prefork.toml"
    conf.write_text(f'certfile = "{certificates.server_pem}"\nkeyfile = "{certificates.server_key}"\n'
                    f'ca_certs = "{certificates.ca_pem}"\ncert_reqs = 2\ntls_min_version = 1.3\n')
    result = check("-c", str(conf))
    assert result.returncode == 0, result.stderr
    config = configuration.load(str(conf), {})
    assert (config.cert_reqs, config.tls_min_version) == ("required", "1.3")


@pytest.mark.parametrize("args, key, value, why", [
    (["-b", "https://127.0.0.1:0"], "bind", "https://127.0.0.1:0", "set certfile"),
    (["--keyfile", "k.pem"], "keyfile", "k.pem", "set certfile too"),
    (["--certfile", "c.pem", "--cert-reqs", "2"], "cert_reqs", "required", "set ca_certs too"),
    (["--certfile", "c.pem", "--tls-min-version", "1.1"], "tls_min_version", "1.1", None),
    (["--certfile", "c.pem", "--proxy-protocol"], "proxy_protocol", True, "terminate TLS in the proxy"),
])
def test_settings_that_cannot_work_are_refused_before_anything_binds(args, key, value, why):
    for result in (check(*args), run_prefork("-w", "1", *args)):
        assert result.returncode in (1, 2), result.stderr
        assert "listening" not in result.stderr
        if why is None:  # argparse's own refusal of a choice
            assert f"invalid choice: {value!r}" in result.stderr, result.stderr
        else:
            assert f"invalid value {value!r} for key {key!r}" in result.stderr, result.stderr
            assert why in result.stderr


# -- bad certificates and keys: -t and start-up ---------------------------------------------------

def broken(certificates, tmp_path):
    """(name, certfile, keyfile, key blamed, problem) for files that cannot be served."""
    files = certificates.copy_to(tmp_path / "broken")
    truncated = files.directory / "truncated.pem"
    truncated.write_text("\n".join(files.server_pem.read_text().splitlines()[:4]) + "\n-----END CERTIFICATE-----\n")
    encrypted = files.directory / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(files.server_key), "-aes256", "-passout", "pass:secret",
                    "-out", str(encrypted)], check=True, capture_output=True, timeout=30)
    return {
        "missing certificate": (files.directory / "nope.pem", files.server_key, "certfile", "no such file"),
        "a directory": (files.directory, files.server_key, "certfile", "is a directory"),
        "not PEM": (files.garbage_pem, files.server_key, "certfile", "not a PEM certificate"),
        "a key as certificate": (files.server_key, files.server_key, "certfile", "not a PEM certificate"),
        "cut short": (truncated, files.server_key, "certfile", "does not decode"),
        "missing key": (files.server_pem, files.directory / "nope.key", "keyfile", "no such file"),
        "not a key": (files.server_pem, files.garbage_pem, "keyfile", "not a PEM private key"),
        "another certificate's key": (files.server_pem, files.rotated_key, "keyfile",
                                      f"does not match the certificate in {files.server_pem}"),
        "encrypted key": (files.server_pem, encrypted, "keyfile", "encrypted"),
        "no key at all": (files.server_pem, None, "certfile", "holds no private key, and keyfile is not set"),
    }


CASES = ("missing certificate", "a directory", "not PEM", "a key as certificate", "cut short", "missing key",
         "not a key", "another certificate's key", "encrypted key", "no key at all")


@pytest.mark.parametrize("case", CASES)
def test_a_bad_certificate_or_key_is_named_by_the_check_and_stops_the_start(case, certificates, tmp_path):
    certfile, keyfile, key, why = broken(certificates, tmp_path)[case]
    args = ["--certfile", str(certfile)] + (["--keyfile", str(keyfile)] if keyfile else [])
    value = keyfile if key == "keyfile" else certfile
    expected = f"invalid value {str(value)!r} for key {key!r}: "
    result = check(*args)
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr and why in result.stderr, result.stderr
    assert "configuration invalid" in result.stderr
    result = run_prefork("-w", "1", "-b", "127.0.0.1:0", *args)
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr and why in result.stderr, result.stderr
    assert "listening" not in result.stderr and "Traceback" not in result.stderr


def test_bad_ca_certificates_and_ciphers_are_named(certificates):
    base = ["--certfile", str(certificates.server_pem), "--keyfile", str(certificates.server_key)]
    result = check(*base, "--ca-certs", str(certificates.garbage_pem), "--cert-reqs", "required")
    assert result.returncode == 1
    assert f"invalid value {str(certificates.garbage_pem)!r} for key 'ca_certs'" in result.stderr, result.stderr
    result = check(*base, "--ciphers", "NO-SUCH-CIPHER")
    assert result.returncode == 1
    assert "invalid value 'NO-SUCH-CIPHER' for key 'ciphers': OpenSSL selects no cipher" in result.stderr


def test_an_expired_certificate_is_served_with_a_warning(start_server, certificates):
    args = ["--certfile", str(certificates.expired_pem), "--keyfile", str(certificates.expired_key)]
    result = check(*args)
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "expired on Feb  1 00:00:00 2020 GMT" in result.stderr
    server = start_server("-w", "1", "-b", "127.0.0.1:0", *args)
    server.wait_for_log(r"\[WARNING\] .*expired on Feb  1 00:00:00 2020 GMT")


# -- reload (HUP) ---------------------------------------------------------------------------------

def tls_server(start_server, files, tmp_path):
    conf = tmp_path / "prefork.toml"
    conf.write_text(f'workers = 2\nbind = ["127.0.0.1:0"]\ncertfile = "{files.server_pem}"\n'
                    f'keyfile = "{files.server_key}"\n')
    return start_server("-c", str(conf))


def test_a_reload_with_a_broken_certificate_is_refused_and_the_old_workers_keep_serving(
        start_server, certificates, tmp_path):
    files = certificates.copy_to(tmp_path / "live")
    server = tls_server(start_server, files, tmp_path)
    master = server.proc.pid
    first = wait_workers(master, 2)
    good = files.server_pem.read_bytes()

    files.server_pem.write_bytes(files.garbage_pem.read_bytes())  # a botched copy
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(rf"\[ERROR\] reload failed, configuration unchanged: .*invalid value "
                        rf"'{files.server_pem}' for key 'certfile': not a PEM certificate")
    assert set(workers(master)) == set(first)

    files.server_pem.write_bytes(files.rotated_pem.read_bytes())  # the new certificate, the old key
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(rf"\[ERROR\] reload failed, .*'{files.server_key}' for key 'keyfile': "
                        r"this key does not match the certificate")
    assert set(workers(master)) == set(first)
    assert server.proc.poll() is None

    files.server_key.write_bytes(files.rotated_key.read_bytes())  # now the pair
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"TLS on 127.0.0.1:0: certificate .*CN=prefork rotated server")
    second = wait_workers(master, 2, exclude=first)
    assert not set(second) & set(first) and all("[gen 2]" in name for name in second.values())
    assert good != files.server_pem.read_bytes()


def test_a_reload_that_adds_a_certificate_makes_the_tcp_binds_tls(start_server, certificates, tmp_path):
    """Listeners written without a scheme follow the configuration in force at each fork."""
    conf = tmp_path / "prefork.toml"
    conf.write_text('workers = 1\nbind = ["127.0.0.1:0"]\n')
    server = start_server("-c", str(conf))
    first = wait_workers(server.proc.pid, 1)
    assert "TLS on" not in server.log()
    conf.write_text(conf.read_text() + f'certfile = "{certificates.server_pem}"\n'
                                       f'keyfile = "{certificates.server_key}"\n')
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"TLS on 127.0.0.1:0: certificate")
    wait_workers(server.proc.pid, 1, exclude=first)


def test_keys_only_root_reads_still_serve_workers_that_are_not_root(start_server, certificates, tmp_path):
    """The master reads the key before it forks; workers running as nobody never open it."""
    import os

    if os.geteuid() != 0:
        pytest.skip("changing user needs root")
    files = certificates.copy_to(tmp_path / "private")
    files.directory.chmod(0o700)
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--user", "nobody",
                          "--certfile", str(files.server_pem), "--keyfile", str(files.server_key))
    wait_until(lambda: workers(server.proc.pid), 10, message="a worker serving")
    server.send_signal(signal.SIGHUP)  # the master, still root, reads them again
    server.wait_for_log(r"generation 2 serving")
    assert "Permission" not in server.log()
