"""Real nginx and HAProxy in front of a prefork under test, in the foreground, on loopback.

Each runs from a directory of its own (configuration, pid, logs), waits until its port
answers, and is stopped (and its processes killed) by stop(), also when a test fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from support.polling import wait_until
from support.ports import free_port
from support.processes import stop_group


def shared_directory() -> Path:
    """A directory an unprivileged proxy (nginx's workers run as www-data) can reach: pytest's
    tmp_path lives under a 0700 directory of root's."""
    path = Path(tempfile.mkdtemp(prefix="prefork-proxy-"))
    path.chmod(0o755)
    return path


class Proxy:
    def __init__(self, command: list[str], port: int, directory: Path):
        self.port = port
        self.directory = directory
        self.output = directory / "proxy.out"
        with open(self.output, "w") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._listening, 10, message=f"{command[0]} to listen on {port}")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"proxy exited with {self.proc.returncode}:\n{self.output.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_group(self.proc)


def nginx(upstream: str, directory: Path, extra_location: str = "") -> Proxy:
    """nginx (workers as www-data when run as root) proxying 127.0.0.1:PORT to `upstream`
    (host:port or unix:/path), as a TLS-terminating front would: X-Forwarded-Proto https."""
    assert shutil.which("nginx"), "nginx is missing: apt-get install nginx-light (.ci/run does)"
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(nginx_conf(directory, 256, "user www-data;" if os.geteuid() == 0 else "", f"""
    upstream app {{ server {upstream}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            {extra_location}
        }}
    }}
"""))
    return Proxy(["nginx", "-p", str(directory), "-c", str(conf)], port, directory)


def nginx_conf(directory: Path, connections: int, user: str, http: str) -> str:
    """An nginx.conf running in the foreground with its pid, logs and temporary files in
    `directory`, and `http` inside its http block."""
    return f"""
{user}
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log info;
daemon off;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
{http}
}}
"""


def haproxy(backend: str, directory: Path, server_options: str = "send-proxy-v2") -> Proxy:
    """HAProxy in http mode on 127.0.0.1:PORT in front of `backend` (host:port)."""
    assert shutil.which("haproxy"), "haproxy is missing: apt-get install haproxy (.ci/run does)"
    port = free_port()
    conf = directory / "haproxy.cfg"
    conf.write_text(f"""
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    bind 127.0.0.1:{port}
    default_backend app
backend app
    server app1 {backend} {server_options}
""")
    return Proxy(["haproxy", "-db", "-f", str(conf)], port, directory)
