"""The fedmsg publisher both test publishers use: bound on one endpoint,
signing with the test certificate from a keys dir (the fixtures'), sending
at once (no post-init sleep, no linger)."""
import copy
import warnings

warnings.simplefilter("ignore")

import fedmsg.config  # noqa: E402
import fedmsg.core  # noqa: E402

CERT = "shell-app01.phx2.fedoraproject.org"


def context(endpoint, keys):
    config = copy.deepcopy(fedmsg.config.defaults)
    config.update(
        name="relflow-test",
        endpoints={"relflow-test": [endpoint]},
        active=False,
        topic_prefix="org.fedoraproject",
        environment="test",
        sign_messages=True,
        crypto_backend="x509",
        ssldir=keys,
        certnames={"relflow-test": CERT},
        post_init_sleep=0,
        zmq_linger=0,
    )
    return fedmsg.core.FedMsgContext(**config)
