"""TLS: the server's `ssl.SSLContext`, built from the settings.

The master builds it before it forks, as root if it was started as root, the way nginx reads
its keys: the workers inherit it through fork(), so a worker that dropped its privileges
(--user) serves with a key it could not read itself. A reload (HUP) builds a new one from the
files as they are then; if they are bad, the reload is refused and the old workers keep the old
context. `prefork -t` builds it too, so it reports exactly what start-up would.

Every error names the key, the value and what is wrong with the file.
"""

from __future__ import annotations

import re
import ssl
import time

MINIMUM_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


class TLSError(Exception):
    """A certificate, key or TLS setting that cannot be used; the message names key and value."""


class _PassphraseWanted(Exception):
    pass


def server_context(config) -> ssl.SSLContext | None:
    """The server context of these settings (None without a certificate: config.py made sure
    no bind is https:// then), or TLSError saying which key and file is wrong."""
    if config.certfile is None:
        return None
    where = config.path or "command line"

    def bad(key: str, why: str) -> TLSError:
        return TLSError(f"{where}: invalid value {config.values[key]!r} for key {key!r}: {why}")

    certificate = _read(config.certfile, "certfile", bad)
    if PEM_CERTIFICATE not in certificate:
        raise bad("certfile", "not a PEM certificate (there is no -----BEGIN CERTIFICATE----- line)")
    _parse_certificates(config.certfile, "certfile", bad)
    key_key = "keyfile" if config.keyfile is not None else "certfile"
    key = _read(config.keyfile, "keyfile", bad) if config.keyfile is not None else certificate
    if b"PRIVATE KEY-----" not in key:
        raise bad(key_key, "not a PEM private key (there is no -----BEGIN ... PRIVATE KEY----- line)"
                  if key_key == "keyfile" else "holds no private key, and keyfile is not set")
    if b"ENCRYPTED" in key:
        raise bad(key_key, "the private key is encrypted, and the server cannot ask for its passphrase: "
                           "store it decrypted (openssl pkey -in KEY -out KEY.plain), readable by root only")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSIONS[config.tls_min_version]
    # No compression (CRIME), no renegotiation (a cheap way for a client to make us compute).
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        context.load_cert_chain(config.certfile, config.keyfile, password=_no_passphrase)
    except _PassphraseWanted:
        raise bad(key_key, "the private key is encrypted, and the server cannot ask for its passphrase") from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            if key_key == "keyfile":
                raise bad("keyfile", f"this key does not match the certificate in {config.certfile}") from None
            raise bad("certfile", "the private key in this file does not match its certificate") from None
        raise bad(key_key, f"OpenSSL cannot load the private key: {_reason(exc)}") from None
    except OSError as exc:
        raise bad(key_key, f"cannot read it: {exc.strerror or exc}") from None
    if config.ciphers is not None:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise bad("ciphers", "OpenSSL selects no cipher from it (see `openssl ciphers -v 'STRING'`)") from None
    if config.ca_certs is not None:
        _read(config.ca_certs, "ca_certs", bad)
        _parse_certificates(config.ca_certs, "ca_certs", bad)
        context.load_verify_locations(cafile=config.ca_certs)
    context.verify_mode = VERIFY_MODES[config.cert_reqs]
    context.set_alpn_protocols(["http/1.1"])
    return context


def warnings(config) -> list[str]:
    """What is wrong with a certificate that can still be served: expired, or not valid yet."""
    info = _decode(config.certfile) if config.certfile is not None else {}
    if not info:
        return []
    where = config.path or "command line"
    now = time.time()
    found = []
    not_after, not_before = info.get("notAfter"), info.get("notBefore")
    if not_after and ssl.cert_time_to_seconds(not_after) < now:
        found.append(f"{where}: the certificate in {config.certfile!r} (key 'certfile') expired on {not_after}: "
                     "clients that verify it refuse to connect")
    if not_before and ssl.cert_time_to_seconds(not_before) > now:
        found.append(f"{where}: the certificate in {config.certfile!r} (key 'certfile') is not valid before "
                     f"{not_before}: clients that verify it refuse to connect")
    return found


def describe(certfile: str) -> str:
    """The certificate in a log line: whose it is, its names, its serial and when it expires."""
    info = _decode(certfile)
    if not info:
        return certfile
    subject = ", ".join(f"CN={value}" for rdn in info.get("subject", ()) for name, value in rdn
                        if name == "commonName")
    names = ", ".join(f"{kind}:{value}" for kind, value in info.get("subjectAltName", ()))
    return (f"{certfile} ({'; '.join(filter(None, (subject, names)))}; serial {info.get('serialNumber', '?')}; "
            f"valid until {info.get('notAfter', '?')})")


def _read(path: str, key: str, bad) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise bad(key, "no such file") from None
    except IsADirectoryError:
        raise bad(key, "is a directory, not a file") from None
    except OSError as exc:
        raise bad(key, f"cannot read it: {exc.strerror}") from None


def _parse_certificates(path: str, key: str, bad) -> None:
    """Let OpenSSL parse the file's certificates alone, so that a broken one is blamed on its
    own key rather than on the private key loaded with it."""
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        scratch.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise bad(key, f"not a valid PEM certificate: {_reason(exc)}") from None


def _decode(path: str) -> dict:
    """The first certificate of a PEM file as the ssl module describes a peer's ({} if it cannot)."""
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # CPython's; no public equivalent
    if decode is None:
        return {}
    try:
        return decode(path)
    except (ssl.SSLError, OSError, ValueError):
        return {}


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words, without the ssl module's source position."""
    text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(exc))
    if exc.reason == "PEM_LIB" or "PEM lib" in text:
        return "its PEM text does not decode (damaged, or cut short?)"
    return exc.reason.replace("_", " ").lower() if exc.reason else text


def _no_passphrase() -> bytes:
    raise _PassphraseWanted
