"""Helpers the test modules share, one job a module:

paths      where the checkout under test, its test apps and its conf/ are
polling    wait_until: poll a condition against a deadline (never a sleep as synchronisation)
command    the `prefork` command run to its end (`-t`, `-s`), with this checkout's code
server     Server: a running `prefork` in the background, its log, its listening ports
client     a raw-socket HTTP/1.1 client: connect, one request on a new connection, read a response
processes  what /proc says of a process: children, title, alive, memory, CPU; the workers of a master
descriptors  what a process holds open: files, and which process holds a TCP connection
ports      a free port on 127.0.0.1 for a program that cannot take port 0
logs       lines of a log file, and waiting for them
load       a load client that counts every failed request
proxies    real nginx and HAProxy in front of a prefork under test
tls        a test CA and certificates made with openssl (the `certificates` fixture)
"""
