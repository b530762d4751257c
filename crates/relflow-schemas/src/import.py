"""Print every installed fedora-messaging schema as one JSON document.

Run by `relflow schemas import` with the venv's Python. It only reads the
entry points of the `fedora.messages` group (each names a message class);
relflow writes the files. A class that fails to load is reported, not fatal:
one broken package must not hide the others.
"""

import json
import sys
from importlib.metadata import entry_points

# Every class needs it; without it the error says so, rather than "no classes".
import fedora_messaging  # noqa: F401


def describe(ep):
    cls = ep.load()
    topic = getattr(cls, "topic", "") or ""
    if not topic:
        # fedora_messaging's own base Message: no topic, an empty schema.
        return None
    dist = getattr(ep, "dist", None)
    return {
        "name": ep.name,
        "class": ep.value,
        "topic": topic,
        "package": dist.name if dist else None,
        "version": dist.version if dist else None,
        "schema": cls.body_schema,
    }


def main():
    schemas, errors = [], []
    for ep in sorted(entry_points(group="fedora.messages"), key=lambda e: e.name):
        try:
            found = describe(ep)
        except Exception as e:  # noqa: BLE001 - any import error is reported
            errors.append(f"{ep.name} ({ep.value}): {type(e).__name__}: {e}")
            continue
        if found is not None:
            schemas.append(found)
    json.dump({"schemas": schemas, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
