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

if [ ! -x .venv/bin/ansible-playbook ] || ! .venv/bin/ansible-playbook --version 2>/dev/null | grep -q "core ${ANSIBLE_CORE_VERSION}"; then
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
fi

if [ "${RELFLOW_SKIP_BUILD:-0}" != 1 ]; then
    echo "==> building relflow (release)" >&2
    cargo build --release --locked --bin relflow
fi
