"""Print a message's one-line summary, as its fedora-messaging class says it.

Run by relflow (dry-run) with the venv's Python. Reads one JSON document on
stdin: {"name": entry point name, "topic", "headers", "body"}. The message is
data handed to the package's own class; nothing in it is evaluated.
"""

import json
import sys
from importlib.metadata import entry_points


def main():
    req = json.load(sys.stdin)
    (ep,) = [e for e in entry_points(group="fedora.messages") if e.name == req["name"]]
    cls = ep.load()
    msg = cls(body=req["body"], topic=req["topic"], headers=req["headers"])
    print(json.dumps({"summary": str(msg.summary)}))


if __name__ == "__main__":
    main()
