"""Publish a numbered stream of signed fedmsg messages, for the gap tests.

    fedmsg_sequence.py ENDPOINT KEYS_DIR

Binds one fedmsg publisher (fedmsg.core.FedMsgContext, signing with the
test certificate from KEYS_DIR) on ENDPOINT and keeps it for its whole life,
so fedmsg's `i` counts on across everything it sends. Each line on stdin is
a number N: it publishes the next N messages with ctx.publish, printing
each envelope as fedmsg encoded it (one JSON line), then "sent". Unlike
fedmsg_publish.py nothing is re-sent: what no subscriber receives is lost,
as on the real bus. EOF on stdin stops it.
"""
import sys
import time
import warnings

warnings.simplefilter("ignore")

import fedmsg.encoding  # noqa: E402
from fedmsg_test_context import context  # noqa: E402

endpoint, keys = sys.argv[1], sys.argv[2]

ctx = context(endpoint, keys)
print("ready", flush=True)

n = 0
for line in sys.stdin:
    for _ in range(int(line)):
        n += 1
        captured = {}
        ctx.publish(topic="seq", msg={"n": n}, modname="relflow", pre_fire_hook=captured.update)
        print(fedmsg.encoding.dumps(captured), flush=True)
        # A little air between messages, as on the bus: a burst into a
        # reconnecting socket is not what this tests.
        time.sleep(0.002)
    print("sent", flush=True)
ctx.destroy()
