"""The ceiling of Python on this machine: a bare epoll loop answering a fixed response.

No parser, no timeouts, no backpressure, no Date header: only accept, recv, count the request
heads, send. For reference in bench/core.py; never a server to use. Usage: bare_epoll.py PORT
"""
import select
import socket
import sys

RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: bare\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 13\r\n\r\nHello, World!")


def serve(port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN)
    connections = {}
    print(f"listening on 127.0.0.1:{port}", flush=True)
    while True:
        for fd, _ in epoll.poll():
            if fd == listener.fileno():
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    connections[conn.fileno()] = conn
                    epoll.register(conn.fileno(), select.EPOLLIN)
                continue
            conn = connections[fd]
            try:
                data = conn.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                conn.send(RESPONSE * data.count(b"\r\n\r\n"))
            else:
                epoll.unregister(fd)
                del connections[fd]
                conn.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
