#!/usr/bin/env python3
"""A tiny SMTP sink for Regent's end-to-end tests.

Usage: smtp_sink.py DIR

Listens on 127.0.0.1 on a free port, prints "PORT <n>" on stdout once it is
accepting, and writes every message it receives to DIR as one JSON file
(mail_from, rcpt_tos, subject, body, raw), atomically (written then renamed).
Exits when stdin closes, so it never outlives the test that started it.

Needs aiosmtpd: `python3 -m pip install aiosmtpd` or `apt-get install python3-aiosmtpd`.
"""

import asyncio
import email
import email.policy
import itertools
import json
import os
import sys

try:
    from aiosmtpd.smtp import SMTP
except ImportError:
    sys.stderr.write(
        "smtp_sink.py needs aiosmtpd: python3 -m pip install aiosmtpd "
        "(or apt-get install python3-aiosmtpd)\n"
    )
    sys.exit(3)


class Sink:
    """Writes each delivered message to a directory."""

    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(message.get("Subject", "")),
            "body": body.get_content() if body is not None else "",
            "raw": raw.decode("utf-8", "replace"),
        }
        n = next(self.counter)
        tmp = os.path.join(self.directory, ".msg-%05d.tmp" % n)
        final = os.path.join(self.directory, "msg-%05d.json" % n)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, final)
        return "250 Message accepted for delivery"


async def main(directory):
    loop = asyncio.get_running_loop()
    sink = Sink(directory)
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.localhost"), host="127.0.0.1", port=0
    )
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
    # Serve until stdin reaches end of file (the test dropped its end of the pipe).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: smtp_sink.py DIR\n")
        sys.exit(2)
    asyncio.run(main(sys.argv[1]))
