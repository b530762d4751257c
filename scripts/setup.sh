#!/usr/bin/env bash
# Prepare a machine for relflow: a project-local Python venv with ansible-core
# (relflow runs the real `ansible-playbook` from it) and a release build.
#
# Idempotent: re-running only does what is missing. Set RELFLOW_SKIP_BUILD=1
# to set up the venv alone.
set -euo pipefail
cd "$(dirname "$0")/.."

ANSIBLE_CORE_VERSION="${ANSIBLE_CORE_VERSION:-2.19.14}"
PYTHON="${PYTHON:-python3}"
# Schema packages on PyPI for the topics Fedora's release engineering
# consumes; docs/schemas.md says what each covers.
RELFLOW_SCHEMA_PACKAGES="bodhi-messages koji-fedoramessaging-messages pagure-messages \
    fedora-messaging-the-new-hotness-schema anitya-schema copr-messaging fedocal-messages \
    noggin-messages fedorainfra-ansible-messages mdapi-messages"

# grep reads all of the version text: with `grep -q` and pipefail, an
# ansible-playbook killed by SIGPIPE would read as "wrong version".
if [ ! -x .venv/bin/ansible-playbook ] || ! .venv/bin/ansible-playbook --version 2>/dev/null | grep "core ${ANSIBLE_CORE_VERSION}" >/dev/null; then
    echo "==> creating .venv with ansible-core ${ANSIBLE_CORE_VERSION}" >&2
    "$PYTHON" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "ansible-core==${ANSIBLE_CORE_VERSION}"
fi
echo "==> $(.venv/bin/ansible-playbook --version | head -1)" >&2

# RELFLOW_TEST_PY=1: the real bus clients the ingest tests publish with
# (fedmsg signs with the test keys, pyzmq publishes, fedora-messaging's CLI
# publishes to RabbitMQ). fedmsg 1.1.7 needs pyOpenSSL's load_crl, removed in
# pyOpenSSL 24.3; service-identity is held back to match that cryptography.
if [ "${RELFLOW_TEST_PY:-0}" = 1 ]; then
    if ! .venv/bin/python -c 'import fedmsg.crypto.x509_ng as x, zmq, fedora_messaging; assert x._cryptography' 2>/dev/null; then
        echo "==> installing fedmsg, pyzmq, fedora-messaging into .venv (RELFLOW_TEST_PY=1)" >&2
        .venv/bin/pip install --quiet --disable-pip-version-check \
            "fedmsg==1.1.7" pyzmq fedora-messaging "pyOpenSSL<24.3" "service-identity<24.2"
    fi
    # The fedora-messaging schema packages of what Fedora's release
    # engineering consumes (`relflow schemas import` reads them; the schema
    # tests import them). Each names its classes under the `fedora.messages`
    # entry points.
    if ! .venv/bin/python -c 'import bodhi.messages, koji_fedoramessaging_messages, pagure_messages, anitya_schema' 2>/dev/null; then
        echo "==> installing the fedora-messaging schema packages into .venv (RELFLOW_TEST_PY=1)" >&2
        .venv/bin/pip install --quiet --disable-pip-version-check ${RELFLOW_SCHEMA_PACKAGES}
    fi
fi

if [ "${RELFLOW_SKIP_BUILD:-0}" != 1 ]; then
    echo "==> building relflow (release)" >&2
    cargo build --release --locked --bin relflow
fi
