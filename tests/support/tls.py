"""Test certificates made with the `openssl` command: a CA, server certificates for 127.0.0.1
and localhost, a client certificate, and a few broken files. EC P-256 keys: fast to make."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_NAMES = "subjectAltName=DNS:localhost,IP:127.0.0.1"


@dataclass(frozen=True)
class Certificates:
    """Paths of the PEM files in `directory`."""

    directory: Path

    def __getattr__(self, name: str) -> Path:  # certs.server_pem is directory/server.pem
        stem, _, suffix = name.rpartition("_")
        if suffix not in ("pem", "key"):
            raise AttributeError(name)
        return self.directory / f"{stem}.{suffix}"

    def copy_to(self, directory: Path) -> "Certificates":
        """The same files in a directory of the test's own (to swap or break them there)."""
        directory.mkdir(parents=True, exist_ok=True)
        for path in self.directory.glob("*.*"):
            if path.is_file():
                shutil.copy(path, directory / path.name)
        return Certificates(directory)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    if result.returncode:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def _key(name: str, cwd: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=cwd)


def _ca(name: str, subject: str, cwd: Path) -> None:
    _key(name, cwd)
    _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-subj", subject, "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", f"{name}.pem", cwd=cwd)


def _issue(name: str, subject: str, ca: str, extensions: list[str], cwd: Path) -> None:
    _key(name, cwd)
    (cwd / f"{name}.ext").write_text("\n".join(extensions) + "\n")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "30", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=cwd)


def _expired(name: str, ca: str, cwd: Path) -> None:
    """A server certificate valid in 2020 only (`openssl ca` is the one that takes dates)."""
    _key(name, cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", "/CN=prefork expired", "-out", f"{name}.csr", cwd=cwd)
    (cwd / "index.txt").write_text("")
    (cwd / "ca.cnf").write_text(f"""
[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial.txt
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = server
[anything]
commonName = supplied
[server]
{SERVER_NAMES}
""")
    (cwd / "serial.txt").write_text("1000\n")
    _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", f"{ca}.pem", "-keyfile", f"{ca}.key",
             "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-in", f"{name}.csr",
             "-out", f"{name}.pem", "-notext", cwd=cwd)


def make_certificates(directory: Path) -> Certificates:
    """ca.pem; server, rotated (a second one for the same names), client (signed by ca) and
    stranger (a client signed by another CA); expired; garbage.pem, which is not PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    _ca("ca", "/CN=prefork test CA", directory)
    server = [SERVER_NAMES, "extendedKeyUsage=serverAuth", "basicConstraints=CA:FALSE"]
    _issue("server", "/CN=prefork test server", "ca", server, directory)
    _issue("rotated", "/CN=prefork rotated server", "ca", server, directory)
    client = ["extendedKeyUsage=clientAuth", "basicConstraints=CA:FALSE"]
    _issue("client", "/CN=prefork test client", "ca", client, directory)
    _ca("other_ca", "/CN=another CA", directory)
    _issue("stranger", "/CN=a client of another CA", "other_ca", client, directory)
    _expired("expired", "ca", directory)
    (directory / "garbage.pem").write_bytes(b"this is not a certificate\n")
    for path in directory.glob("*.key"):
        path.chmod(0o600)
    return Certificates(directory)
