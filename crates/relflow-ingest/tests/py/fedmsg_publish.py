"""Publish fedmsg messages with the real fedmsg library, for relflow's tests.

    fedmsg_publish.py ENDPOINT KEYS_DIR CASES_JSON

Binds a fedmsg publisher (fedmsg.core.FedMsgContext, the object behind
fedmsg.publish) on ENDPOINT and builds one message per case with
FedMsgContext.publish: fedmsg makes the envelope (msg_id, timestamp, i,
username) and signs it with the case's certificate from KEYS_DIR
(fedmsg.crypto, x509 backend). A case is {"topic", "msg", "cert",
"tamper", "frame_topic"}: "tamper" changes the body after signing (as a
man in the middle would), "frame_topic" sends a different ZeroMQ topic frame.

ZeroMQ PUB drops what it sends before a subscriber is connected, so the
exact bytes fedmsg sent are re-sent every 50 ms until stdin is closed: the
receiver sees the same envelope many times, which also exercises its dedupe.
Prints one line per case: {"msg_id": ..., "topic": ...}, then "ready".
"""
import json
import sys
import threading
import time
import warnings

warnings.simplefilter("ignore")

import fedmsg.encoding  # noqa: E402
from fedmsg_test_context import CERT, context  # noqa: E402

endpoint, keys, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

ctx = context(endpoint, keys)

sent = []
for case in cases:
    ctx.c["certnames"]["relflow-test"] = case.get("cert", CERT)
    captured = {}

    def hook(msg, case=case, captured=captured):
        if case.get("tamper"):
            msg["msg"]["tampered"] = True
        captured["msg"] = msg

    # modname "relflow": topic org.fedoraproject.test.relflow.<topic>
    ctx.publish(topic=case["topic"], msg=case["msg"], modname="relflow", pre_fire_hook=hook)
    msg = captured["msg"]
    frame = case.get("frame_topic") or msg["topic"]
    sent.append([frame.encode("utf-8"), fedmsg.encoding.dumps(msg).encode("utf-8")])
    print(json.dumps({"msg_id": msg["msg_id"], "topic": msg["topic"]}), flush=True)
print("ready", flush=True)

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
while not stop.is_set():
    for frames in sent:
        ctx.publisher.send_multipart(frames)
    time.sleep(0.05)
ctx.destroy()
