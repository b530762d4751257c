#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine and run them all.
#
# The tests use real components: the project venv's ansible-playbook,
# RabbitMQ on 127.0.0.1:5672 (guest/guest) and PostgreSQL on 127.0.0.1:5432,
# which this script starts if they are down. Needs root for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

port_open() { (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
    echo "error: nothing listens on 127.0.0.1:$1 after 60s ($2)" >&2
    return 1
}

# System packages some tests drive for real (flr calls ostree and rsync;
# visudo checks the sudoers snippets flr prints; socat terminates TLS in front
# of RabbitMQ for relflow-amqp's amqps:// tests; the remote-host tests run
# sshd in a network namespace made with ip, log in with ssh, and add users;
# the packaging tests build the RPM with rpmbuild and check the units with
# systemd-analyze).
missing=()
for tool in ostree:ostree rsync:rsync visudo:sudo openssl:openssl socat:socat \
    /usr/sbin/sshd:openssh-server ssh:openssh-client ip:iproute2 useradd:passwd \
    rpmbuild:rpm systemd-analyze:systemd setpriv:util-linux; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! port_open 5672; then
    say "starting RabbitMQ"
    rabbitmq-server -detached
fi
if ! port_open 5432; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
wait_port 5672 RabbitMQ
wait_port 5432 PostgreSQL

RELFLOW_SKIP_BUILD=1 RELFLOW_TEST_PY=1 ./scripts/setup.sh

# House rules first: they are cheap, and a red one means nothing else matters.
say "cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo test (whole workspace)"
cargo test --workspace --locked

# The web page in headless Chromium (Debian's package) against a real
# `relflow serve`; playwright-core is pinned in package-lock.json.
say "browser test (crates/relflow/tests/browser)"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build -p relflow --locked
(cd crates/relflow/tests/browser && npm ci --no-audit --no-fund --loglevel=error && node test.mjs)
