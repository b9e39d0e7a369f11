#!/usr/bin/env python3
"""A local stand-in for a Debian mirror and for snapshot.debian.org.

Neither the live mirror's changes nor the snapshot service can be
reached or staged here, so the drift test serves both from ROOT on
loopback, as an HTTP proxy (apt's Acquire::http::Proxy sends absolute
URIs) and as a plain server:
  http://deb.debian.org/debian/X             -> ROOT/live/X  (the "mirror", changed by the test)
  /archive/debian/<YYYYMMDDTHHMMSSZ>/X       -> ROOT/archive/debian/<ts>/X (the "snapshots", never changed)
Anything else is 404. The chosen port is written to PORTFILE.
usage: apt_server.py ROOT PORTFILE
"""
import http.server
import os
import sys
import urllib.parse

root, portfile = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def _file(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if url.netloc == "deb.debian.org" and path.startswith("/debian/"):
            rel = "live/" + path[len("/debian/"):]
        elif path.startswith("/archive/debian/"):
            rel = path.lstrip("/")
        else:
            return None
        full = os.path.realpath(os.path.join(root, rel))
        if not full.startswith(os.path.realpath(root) + os.sep) or not os.path.isfile(full):
            return None
        return full

    def _serve(self, body):
        f = self._file()
        if f is None:
            self.send_error(404)
            return
        data = open(f, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):
        self._serve(True)

    def do_HEAD(self):
        self._serve(False)

    def log_message(self, fmt, *args):
        sys.stderr.write("apt_server: " + fmt % args + "\n")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
