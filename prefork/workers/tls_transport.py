"""The TLS transport: the plain transport's interface over an `ssl.SSLObject` and two memory BIOs.

The socket stays ours and non-blocking, on the worker's Reactor like any other: ciphertext
read from it goes into the incoming BIO, the SSLObject turns it into plaintext for the
protocol, and what the protocol writes is encrypted into the outgoing BIO, then sent. No
thread and no blocking call: the handshake advances one flight at a time as bytes arrive,
under the connection's deadline (header_timeout from the accept), so a client that starts a
handshake and stops is cut as a slow request head is.

Output is queued as plaintext, as in the plain transport, and encrypted in bounded batches
only when the ciphertext before it has gone out, so a large response costs at most one batch
of ciphertext in memory beyond the plaintext it came from. `out_len` counts both, and
backpressure works on it unchanged. There is no sendfile: a file is read and encrypted in
pieces (_send_file_piece).

A handshake that fails (plain HTTP on a TLS port, a scanner's garbage, a client certificate
refused) is one line in the log and a closed connection, never a traceback.
"""

from __future__ import annotations

import logging
import os
import ssl

from .reactor import EPOLLIN, EPOLLOUT
from .transport import READ_SIZE, Transport

log = logging.getLogger("prefork")

ENCRYPT_BATCH = 256 * 1024  # plaintext encrypted at once, when the ciphertext before it is sent
RECORD_PIECE = 64 * 1024  # plaintext per SSLObject.write (OpenSSL cuts it into 16 KiB records)
FILE_PIECE = 64 * 1024  # bytes of a file read per piece

_WANT_READ = ssl.SSLWantReadError
_ZERO_RETURN = ssl.SSLZeroReturnError
_SSL_ERROR = ssl.SSLError


class TlsTransport(Transport):
    __slots__ = ("tls", "records", "incoming", "outgoing", "cipher", "handshaking")

    can_sendfile = False
    secure = True

    def __init__(self, reactor, sock, peer, settings, on_closed, context: ssl.SSLContext):
        super().__init__(reactor, sock, peer, settings, on_closed)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        # The C object under ssl.SSLObject: the per-request read, write and pending() without
        # the wrapper's Python frames (a third of this transport's own cost per request).
        self.records = getattr(self.tls, "_sslobj", self.tls)
        self.cipher = b""  # ciphertext not sent yet (counted in out_len, as queued plaintext is)
        self.handshaking = True

    # -- input ----------------------------------------------------------------------------------

    def on_events(self, mask: int) -> None:
        if mask & EPOLLOUT:
            if self.file_job is not None:
                self._send_file()
                return
            self.flush()
            if self.closed or not mask & ~EPOLLOUT:
                return
        # EPOLLIN, or an error or hang-up that recv reports (read here, not through a call to
        # on_readable: this runs for every request).
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        if not data:
            # The end of the TCP stream, with or without close_notify before it (a "ragged"
            # end is taken as an end, as gunicorn's suppress_ragged_eofs and browsers do).
            self.read_closed = True
            if self.lingering or self.handshaking:
                self.abort()
            else:
                self.protocol.eof_received()
            return
        if self.lingering:
            return  # our side is closed: what still comes is discarded (see finish_close)
        incoming = self.incoming
        incoming.write(data)
        if self.handshaking and not self._handshake():
            return
        # Give the protocol everything the SSLObject can decrypt now: bytes left inside it would
        # never bring another EPOLLIN (at most one recv's worth, so the protocol's bound holds).
        tls = self.records
        read = tls.read
        while not self.closed and not self.lingering:
            try:
                data = read(READ_SIZE)
            except _WANT_READ:
                break
            except _ZERO_RETURN:  # close_notify: the client has finished sending
                self.read_closed = True
                self.protocol.eof_received()
                return
            except _SSL_ERROR as exc:
                log.info("TLS connection with %s broken: %s", _peer(self.peer), _why(exc))
                self.abort()
                return
            if not data:
                break
            self.protocol.data_received(data)
            if not incoming.pending and not tls.pending():
                break  # all consumed: another read could only raise SSLWantReadError (which costs)
        if self.outgoing.pending and not self.closed:  # a TLS 1.3 key update, say
            self._send_pending()

    def on_readable(self) -> None:
        self.on_events(EPOLLIN)

    def _handshake(self) -> bool:
        """Advance the handshake with what arrived; True once it is complete."""
        try:
            self.tls.do_handshake()
        except _WANT_READ:
            self._send_pending()  # our flight (ServerHello ... Finished), if this step made one
            return False
        except _SSL_ERROR as exc:
            log.info("TLS handshake with %s failed: %s", _peer(self.peer), _why(exc))
            self._send_pending()  # the alert, so that the client can say why
            self.abort()
            return False
        self.handshaking = False
        self._send_pending()  # the last of the handshake, and TLS 1.3's session tickets
        return not self.closed

    # -- output ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Encrypt queued plaintext batch by batch and send it; what does not fit waits for EPOLLOUT."""
        if self.closed:
            return
        if self.handshaking:  # only our handshake flight can be waiting: the protocol wrote nothing yet
            self._send_pending()
            return
        out = self.out
        if out and not self.cipher and self.out_len <= ENCRYPT_BATCH:
            # The common case, a response or a few: all of it in one batch, one send.
            write = self.records.write
            try:
                for piece in out:
                    write(piece)
            except _SSL_ERROR as exc:
                log.info("TLS connection with %s broken: %s", _peer(self.peer), _why(exc))
                self.abort()
                return
            out.clear()
            cipher = self.outgoing.read()
            try:
                sent = self.sock.send(cipher)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.abort()
                return
            self.out_len = left = len(cipher) - sent
            if left:
                self.cipher = memoryview(cipher)[sent:]
                self._progress(sent)
        else:
            sent = self._send()
            if sent is None:
                return
            if self.out_len:
                self._progress(sent)
        self._after_flush()

    def _send(self) -> int | None:
        """Send ciphertext, encrypting more whenever all of it is out; the bytes sent, or None
        if the connection broke."""
        sock = self.sock
        sent = 0
        while True:
            cipher = self.cipher
            if not cipher:
                if not self.out:
                    return sent
                cipher = self._encrypt()
                if cipher is None:
                    return None
            try:
                count = sock.send(cipher)
            except (BlockingIOError, InterruptedError):
                count = 0
            except OSError:
                self.abort()
                return None
            sent += count
            self.out_len -= count
            if count < len(cipher):
                self.cipher = memoryview(cipher)[count:]
                return sent
            self.cipher = b""

    def _encrypt(self):
        """Up to ENCRYPT_BATCH bytes of queued plaintext as ciphertext (now in self.cipher)."""
        out = self.out
        write = self.records.write
        taken = 0
        try:
            while out and taken < ENCRYPT_BATCH:
                piece = out[0]
                if len(piece) > RECORD_PIECE:
                    view = memoryview(piece)
                    piece, out[0] = view[:RECORD_PIECE], view[RECORD_PIECE:]
                else:
                    del out[0]
                write(piece)
                taken += len(piece)
        except _SSL_ERROR as exc:
            log.info("TLS connection with %s broken: %s", _peer(self.peer), _why(exc))
            self.abort()
            return None
        cipher = self.outgoing.read()
        self.out_len += len(cipher) - taken
        self.cipher = cipher
        return cipher

    def _send_pending(self) -> None:
        """Send what the SSLObject wrote itself (handshake, alerts, close_notify), before anything
        else; the rest waits for EPOLLOUT."""
        produced = self.outgoing.read()
        if produced:
            self.cipher = bytes(self.cipher) + produced if self.cipher else produced
            self.out_len += len(produced)
        if not self.cipher:
            return
        try:
            count = self.sock.send(self.cipher)
        except (BlockingIOError, InterruptedError):
            count = 0
        except OSError:
            self.abort()
            return
        self.out_len -= count
        self.cipher = memoryview(self.cipher)[count:] if count < len(self.cipher) else b""
        self.update_interest()

    # -- files ----------------------------------------------------------------------------------

    def _send_file_piece(self, job) -> int:
        """No sendfile through TLS: read a piece and queue it; _send_file() sends it (encrypted)
        before it reads the next, so a file costs one piece of memory, whatever its size."""
        piece = os.pread(job.fd, min(job.count, FILE_PIECE), job.offset)
        self.write(piece)
        return len(piece)

    # -- closing --------------------------------------------------------------------------------

    def finish_close(self) -> None:
        """After the last response: close_notify, then the plain transport's half-close and linger."""
        if self.closed:
            return
        if not self.handshaking:
            try:
                self.tls.unwrap()
            except _WANT_READ:
                pass  # the client's close_notify is not awaited
            except _SSL_ERROR:
                pass
            produced = self.outgoing.read()
            if produced:
                try:
                    self.sock.send(produced)  # a few bytes into an empty send buffer; else skipped
                except OSError:
                    pass
        super().finish_close()

    def abort(self) -> None:
        self.cipher = b""
        super().abort()


def _peer(peer) -> str:
    if type(peer) is tuple:
        return f"{peer[0]}:{peer[1]}"
    return "a unix socket peer"


def _why(exc: ssl.SSLError) -> str:
    """OpenSSL's reason, in words a log reader knows."""
    reason = exc.reason or ""
    if reason == "HTTP_REQUEST":
        return "a plain HTTP request on a TLS port"
    if reason:
        return reason.replace("_", " ").lower()
    return str(exc)
