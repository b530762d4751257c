"""Python fedmsg's verification rate on the messages the Rust bench made.

    fedmsg_verify.py CA_CERT CRL MESSAGES_JSONL SECONDS

Calls fedmsg.crypto.validate (x509 backend, the CA and CRL as local files,
the same checks relflow makes) on each message in turn for SECONDS and
prints one line: "<verifications per second>". Every message must verify.
"""
import json
import sys
import time
import warnings

warnings.simplefilter("ignore")

import fedmsg.crypto  # noqa: E402


def main():
    ca, crl, path, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    config = {
        "crypto_backend": "x509",
        "crypto_validate_backends": ["x509"],
        "ca_cert_location": ca,
        "crl_location": crl,
    }
    with open(path) as f:
        messages = [json.loads(line) for line in f if line.strip()]
    for m in messages:
        if not fedmsg.crypto.validate(m, **config):
            sys.exit("a message did not verify with Python fedmsg")
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < secs:
        for m in messages:
            fedmsg.crypto.validate(m, **config)
            n += 1
    print(f"{n / (time.perf_counter() - start):.0f}")


main()
