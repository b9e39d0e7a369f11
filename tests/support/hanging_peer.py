#!/usr/bin/env python3
"""A broken peer for kiln's timeout tests: an engine or a registry that
accepts connections and then never answers, or trickles its answer.

usage: hanging_peer.py MODE ADDRESS READY_FILE
  MODE     silent    accept, read whatever comes, never write a byte
           trickle   read the request, then send a status line and headers
                     one byte every 3 s, never finishing them
           pingable  an engine that answers GET /_ping ("OK") and image
                     inspects (a made-up image), and is silent for the rest
                     (a build, a save): for builders and the writer lock
           auth      a registry that wants credentials: 401 with a Basic
                     challenge to every request (so the client asks a
                     credential helper)
  ADDRESS  unix:/path/to.sock, or tcp:PORT on 127.0.0.1 (0: any free port)
  READY_FILE  written once listening: the socket path or the port

A test double for a misbehaving peer only; it is never a stand-in for a
working engine or registry. It runs until killed.
"""
import os
import socket
import sys
import threading
import time

held = []  # every accepted connection stays open: closing would be an answer


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def drain(conn):
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def reply(conn, status, body, content_type="application/json"):
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    conn.sendall(head + body)


def serve(conn, mode):
    try:
        if mode == "silent":
            drain(conn)
        elif mode == "trickle":
            if read_request(conn) is None:
                return
            for b in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"." * 100000:
                conn.sendall(bytes([b]))
                time.sleep(3)
        elif mode == "auth":
            while read_request(conn) is not None:
                conn.sendall(b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="kiln-test"\r\n'
                             b"Content-Length: 0\r\n\r\n")
        elif mode == "pingable":
            while True:  # keep-alive: several requests may share the connection
                line = read_request(conn)
                if line is None:
                    return
                method, path = line.split(" ")[:2]
                path = path.split("?")[0]
                if method == "GET" and path.endswith("/_ping"):
                    reply(conn, "200 OK", b"OK", "text/plain")
                elif method == "GET" and "/images/" in path and path.endswith("/json"):
                    reply(conn, "200 OK", b'{"Id":"sha256:' + b"0" * 64 + b'","RepoTags":[],"Config":{}}')
                else:
                    drain(conn)
                    return
    except OSError:
        pass


def main():
    mode, address, ready = sys.argv[1:4]
    if mode not in ("silent", "trickle", "pingable", "auth"):
        sys.exit(f"unknown mode {mode}")
    if address.startswith("unix:"):
        path = address[5:]
        if os.path.exists(path):
            os.unlink(path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        where = path
    else:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(address.split(":", 1)[1])))
        where = str(srv.getsockname()[1])
    srv.listen(64)
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        f.write(where + "\n")
    os.rename(tmp, ready)
    while True:
        conn, _ = srv.accept()
        held.append(conn)
        threading.Thread(target=serve, args=(conn, mode), daemon=True).start()


if __name__ == "__main__":
    main()
