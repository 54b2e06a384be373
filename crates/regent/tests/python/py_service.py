#!/usr/bin/env python3
"""A Python Regent 0.1.0 service (PyPI `regent`) for our client to call.

Used by crates/regent/tests/it/interop.rs.

    py_service.py SOCKET_PATH      (the secret is the first line of stdin, never argv)

Operations:
- `whoami`: the name of the user the service runs as (like the seed's example);
- `greet`: takes {"name": non-empty string}; `prepare` raises ValueError otherwise,
  which the Python service answers as {"error": "Invalid data: ..."}.

Runs until killed. Single-threaded, as the original is.
"""
import os
import pwd
import sys

from regent.service import Operation, Service


class WhoAmI(Operation):
    def perform(self):
        return pwd.getpwuid(os.geteuid()).pw_name


class Greet(Operation):
    def prepare(self, data):
        if not isinstance(data, dict):
            raise ValueError("data must be an object with a name")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        self.name = name

    def perform(self):
        return {"greeting": "hello " + self.name, "length": len(self.name)}


def main():
    secret = sys.stdin.readline().rstrip("\n")
    service = Service(socket_path=sys.argv[1], socket_secret=secret)
    service.register("whoami", WhoAmI)
    service.register("greet", Greet)
    service.listen()


if __name__ == "__main__":
    main()
