#!/usr/bin/env python3
"""A home server's web panel over Regent, as a sketch: the operations of
home-server.toml driven with the Python Regent 0.1.0 client (PyPI `regent`).

Run it as the panel's unprivileged user (www-data), next to a daemon serving
home-server.toml:

    REGENT_SOCKET=/run/regent/regent.sock python3 home-panel.py 127.0.0.1 8080

It holds no privilege: every change is a declared, typed operation the daemon
checks (an unknown app or time zone is refused there, not here). A change an
administrator must approve (installing an app, the SSH settings) is held: the
page shows its uid and a button that asks again, which runs it once approved
(`regent pending`, `regent approve ID`). Standard library only, besides the
client.

Tested end to end against home-server.toml by the CLI integration test
`panel::the_home_panel_drives_the_home_server_example`.
"""
import html
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

from regent.client import Client
from regent.exceptions import ProcessError, SocketError

SOCKET = os.environ.get("REGENT_SOCKET", "/run/regent/regent.sock")
SECRET = os.environ.get("REGENT_SECRET", "")
APPS = ["nextcloud-desktop", "transmission-daemon", "minidlna"]

# Operation -> the form fields it takes (each a parameter; an empty field is
# left out, and the operation leaves that setting alone).
ACTIONS = {
    "set-hostname": ("name",),
    "set-timezone": ("zone",),
    "restart-web": (),
    "install-app": ("app",),
    "ssh-settings": ("port", "root_login"),
}
INTEGERS = {"port"}
# The form that asks again for a held request (by its uid).
CONTINUE = "continue"


def call(op, data=None, uid=None):
    """One request, or with `uid` the next step of a held one; installing can
    take minutes, so wait long enough. A service that cannot be reached, or
    that closes the connection without an answer, is shown as an error."""
    client = Client(socket_path=SOCKET, socket_secret=SECRET, socket_timeout=900)
    try:
        return client.request(op, data) if uid is None else client.auth(uid)
    except (OSError, SocketError, ProcessError) as e:
        return {"success": False, "error": f"cannot reach the service: {e}"}


def show(answer):
    return "<pre>" + html.escape(json.dumps(answer, indent=2)) + "</pre>"


def held(answer):
    """For a held request, the button that asks again (it runs once approved)."""
    if not (isinstance(answer, dict) and answer.get("success")):
        return ""
    uid = answer.get("uid")
    if not (isinstance(uid, str) and uid):
        return ""
    return (
        f"<form method=post action={CONTINUE}>"
        f'<input type=hidden name=uid value="{html.escape(uid)}">'
        "<button>Run it once approved</button></form>"
    )


def page(result=""):
    apps = "".join(f"<option>{html.escape(a)}</option>" for a in APPS)
    return f"""<!doctype html><title>Home server</title>
<h1>Home server</h1>{result}
<h2>Web server</h2>{show(call("web-status"))}
<form method=post action=restart-web><button>Restart</button></form>
<h2>Apps</h2>{show(call("app-status"))}
<form method=post action=install-app><select name=app>{apps}</select><button>Install</button></form>
<h2>System</h2>
<form method=post action=set-hostname><input name=name placeholder="host name"><button>Set</button></form>
<form method=post action=set-timezone><input name=zone placeholder="Europe/Paris"><button>Set</button></form>
<h2>SSH</h2>{show(call("ssh-show"))}
<form method=post action=ssh-settings><input name=port placeholder="port">
<select name=root_login><option value="">root login: unchanged</option><option>no</option><option>prohibit-password</option></select>
<button>Ask for the change</button></form>
"""


class Panel(BaseHTTPRequestHandler):
    def reply(self, body, status=200):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(page())

    def do_POST(self):
        op = self.path.strip("/")
        if op not in ACTIONS and op != CONTINUE:
            return self.reply("unknown action", 404)
        length = self.headers.get("Content-Length") or "0"
        if not (length.isascii() and length.isdigit()):
            return self.reply("bad request", 400)
        if int(length) > 4096:
            return self.reply("too large", 413)
        form = parse_qs(self.rfile.read(int(length)).decode(errors="replace"))
        if op == CONTINUE:
            answer = call(None, uid=form.get("uid", [""])[0])
        else:
            data = {}
            for field in ACTIONS[op]:
                value = form.get(field, [""])[0]
                if value:
                    # ASCII digits only: int() takes other scripts' digits too
                    # (and fails on some that isdigit() accepts, such as "²").
                    number = field in INTEGERS and value.isascii() and value.isdigit()
                    data[field] = int(value) if number else value
            answer = call(op, data or None)
        # A held request (install-app and ssh-settings ask an administrator)
        # answers with its uid, which the button sends back.
        self.reply(page(f"<h2>{html.escape(op)}</h2>{show(answer)}{held(answer)}"))


if __name__ == "__main__":
    args = sys.argv[1:3] + ["127.0.0.1", "8080"][len(sys.argv[1:3]) :]
    HTTPServer((args[0], int(args[1])), Panel).serve_forever()
