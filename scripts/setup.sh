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

if [ "${RELFLOW_SKIP_BUILD:-0}" != 1 ]; then
    echo "==> building relflow (release)" >&2
    cargo build --release --locked --bin relflow
fi
