#!/usr/bin/env python3
"""Call a Regent service with the Python Regent 0.1.0 client (PyPI `regent`).

Used by crates/regent/tests/it/interop.rs. Reads one JSON object on stdin (so the
secret never appears on the command line):

    {"socket": PATH, "secret": S, "calls": [{"op": NAME, "data": ANY, "secret": S2?}, ...]}

and prints on stdout a JSON list with the decoded response of each call, in order.
Each call uses a fresh client, as a program using the Python library would.
"""
import json
import sys

from regent.client import Client


def main():
    spec = json.load(sys.stdin)
    responses = []
    for call in spec["calls"]:
        client = Client(
            socket_path=spec["socket"],
            socket_secret=call.get("secret", spec["secret"]),
        )
        responses.append(client.request(call["op"], call.get("data")))
    json.dump(responses, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
