#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the notification tests, on 127.0.0.1 only.

Every message is appended to LOG as one JSON line: envelope sender, recipients, the raw
message, and whether the session was TLS and authenticated.

Usage: smtp_receiver.py PORT LOG READY_FILE [--starttls CERT KEY] [--auth USER PASSWORD]
With --starttls, STARTTLS is required before MAIL; with --auth, AUTH LOGIN/PLAIN is required
(only over TLS, as aiosmtpd insists by default).
"""
import argparse
import json
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("log")
parser.add_argument("ready_file")
parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
parser.add_argument("--auth", nargs=2, metavar=("USER", "PASSWORD"))
args = parser.parse_args()

lock = threading.Lock()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
        }
        with lock:
            with open(args.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return "250 OK queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and args.auth is not None
        and auth_data.login.decode() == args.auth[0]
        and auth_data.password.decode() == args.auth[1]
    )
    return AuthResult(success=ok)


kwargs = {}
if args.starttls:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.starttls[0], args.starttls[1])
    kwargs["tls_context"] = context
    kwargs["require_starttls"] = True
if args.auth:
    kwargs["authenticator"] = authenticator
    kwargs["auth_required"] = True
controller = Controller(Handler(), hostname="127.0.0.1", port=args.port, **kwargs)
controller.start()
tmp = args.ready_file + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write("ready")
os.rename(tmp, args.ready_file)
threading.Event().wait()
