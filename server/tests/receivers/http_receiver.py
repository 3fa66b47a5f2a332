#!/usr/bin/env python3
"""A real HTTP(S) receiver for the notification tests, on 127.0.0.1 only.

Every request is appended to LOG as one JSON line: method, path, headers (lower-case
names), body (text), the status answered and the time received. Answers:
- 500 while the file FAIL_FILE exists (a receiver that is down);
- for paths under /flaky/: 500 to the first two requests of each path, then 200;
- for paths under /slow/: after SLOW seconds (a line with status 0 is logged when the
  request arrives);
- 200 with a small JSON body otherwise (Telegram's {"ok": true}, Pushover's {"status": 1}).

Usage: http_receiver.py PORT_FILE LOG [--fail-file F] [--tls CERT KEY] [--slow SECONDS]
The port (bound as 127.0.0.1:0) is written to PORT_FILE once listening.
"""
import argparse
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("port_file")
parser.add_argument("log")
parser.add_argument("--fail-file")
parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
parser.add_argument("--slow", type=float, default=20.0)
args = parser.parse_args()

lock = threading.Lock()
seen = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with lock:
            n = seen.get(self.path, 0) + 1
            seen[self.path] = n
        if args.fail_file and os.path.exists(args.fail_file):
            status = 500
        elif self.path.startswith("/flaky/") and n <= 2:
            status = 500
        else:
            status = 200
        if self.path.startswith("/slow/"):
            with lock:
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"path": self.path, "status": 0}) + "\n")
            time.sleep(args.slow)
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "status": status,
            "received_at": time.time(),
        }
        with lock:
            with open(args.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        answer = b'{"ok": true, "status": 1}' if status == 200 else b'{"error": "down"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)
        self.close_connection = True

    do_GET = handle_any
    do_POST = handle_any
    do_PUT = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
if args.tls:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls[0], args.tls[1])
    server.socket = context.wrap_socket(server.socket, server_side=True)
tmp = args.port_file + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, args.port_file)
server.serve_forever()
