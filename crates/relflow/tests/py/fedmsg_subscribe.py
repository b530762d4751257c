"""Subscribe to fedmsg with pyzmq and check each envelope with fedmsg itself.

    fedmsg_subscribe.py ENDPOINT KEYS_DIR TOPIC_PREFIX

Connects a ZeroMQ SUB socket to ENDPOINT (relflow's [announce.fedmsg] PUB),
and for every [topic, envelope] message prints one JSON line: the topic
frame, whether `fedmsg.crypto.validate` accepts the envelope against the test
CA and CRL in KEYS_DIR (x509 backend), and the envelope.
"""
import json
import sys
import warnings

warnings.simplefilter("ignore")

import fedmsg.crypto  # noqa: E402
import zmq  # noqa: E402

endpoint, keys, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
config = dict(
    crypto_backend="x509",
    crypto_validate_backends=["x509"],
    ca_cert_location=keys + "/ca.crt",
    crl_location=keys + "/crl.pem",
    ssldir=keys,
)

socket = zmq.Context().socket(zmq.SUB)
socket.setsockopt_string(zmq.SUBSCRIBE, prefix)
socket.connect(endpoint)
print("subscribed", flush=True)
while True:
    frame, body = socket.recv_multipart()
    envelope = json.loads(body)
    valid = bool(fedmsg.crypto.validate(dict(envelope), **config))
    print(json.dumps({"frame": frame.decode(), "valid": valid, "envelope": envelope}), flush=True)
