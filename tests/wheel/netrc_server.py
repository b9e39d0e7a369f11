#!/usr/bin/env python3
"""A private package index for the test: serves DIR over HTTP on 127.0.0.1
and answers 401 (WWW-Authenticate: Basic) to any request without the right
Basic credentials. The password is read from a file, never from argv.

Usage: netrc_server.py DIR PASSWORD_FILE PORT_FILE
Writes the port it listens on to PORT_FILE; logs every request with its
status (never the credentials) to stderr.
"""
import base64
import functools
import http.server
import sys

root, password_file, port_file = sys.argv[1:4]
with open(password_file) as f:
    password = f.read().strip()
expected = "Basic " + base64.b64encode(f"kiln:{password}".encode()).decode()


class Handler(http.server.SimpleHTTPRequestHandler):
    def _authorized(self):
        if self.headers.get("Authorization") == expected:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="kiln-private-index"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self):
        if self._authorized():
            super().do_GET()

    def do_HEAD(self):
        if self._authorized():
            super().do_HEAD()

    def log_message(self, fmt, *args):
        sys.stderr.write("private-index: " + (fmt % args) + "\n")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
