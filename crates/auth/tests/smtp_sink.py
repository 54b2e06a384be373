"""A loopback SMTP sink for regent-auth's tests (aiosmtpd).

Usage: python3 smtp_sink.py OUTDIR
Listens on 127.0.0.1 on a free port, prints the port on stdout, writes each
message to OUTDIR/N.eml (atomically, with an X-Rcpt-To line first), and exits
when its stdin closes. Exits with status 3 if aiosmtpd cannot be imported.
"""
import asyncio
import os
import sys

try:
    from aiosmtpd.smtp import SMTP
except ImportError as e:
    sys.stderr.write(f"aiosmtpd is not importable: {e}\n")
    sys.exit(3)


class Handler:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        tmp = os.path.join(self.outdir, f".{self.count}.tmp")
        final = os.path.join(self.outdir, f"{self.count}.eml")
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        with open(tmp, "wb") as f:
            f.write(("X-Rcpt-To: " + ",".join(envelope.rcpt_tos) + "\r\n").encode())
            f.write(content)
        os.rename(tmp, final)
        return "250 Message accepted"


async def main():
    outdir = sys.argv[1]
    loop = asyncio.get_running_loop()
    handler = Handler(outdir)
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


asyncio.run(main())
