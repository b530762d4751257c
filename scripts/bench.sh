#!/bin/sh
# Runs relflow's benchmarks (crates/relflow-bench) side by side with their
# baselines and collects the figures in target/bench-results/*.md
# (docs/performance.md explains them). Needs RabbitMQ on 127.0.0.1 with
# rabbitmqctl, java (for ansible-rulebook), and the .venv scripts/setup.sh
# makes. Takes ~30 minutes.
# Run it on a quiet machine: figures on a loaded 2-core box are noise.
set -eu
cd "$(dirname "$0")/.."

[ -x .venv/bin/ansible-playbook ] || ./scripts/setup.sh
# loopabull 0.0.7 (the baseline) in its own venv, never in .venv. It imports
# `imp`, so it needs Python <= 3.11; its requirements miss pika. --no-deps
# skips fedmsg & co., which its rabbitmq looper does not use.
if [ ! -x target/bench-venv/bin/loopabull ]; then
    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install -q --no-deps loopabull==0.0.7 pika pyyaml
fi
# ansible-rulebook 1.3.2 (the peers bench) in a venv of its own, with the
# same ansible-core as .venv; it runs its rules on an embedded JVM (java on
# PATH: Debian's default-jre-headless).
if [ ! -x target/bench-venv-rulebook/bin/ansible-rulebook ]; then
    python3 -m venv target/bench-venv-rulebook
    target/bench-venv-rulebook/bin/pip install -q "ansible-rulebook==1.3.2" "ansible-core==${ANSIBLE_CORE_VERSION:-2.19.14}"
fi

echo "load: $(cat /proc/loadavg)"
mkdir -p target/bench-results
rm -f target/bench-results/*.md
cargo build --release -p relflow --bin relflow
export RELFLOW_BIN="$PWD/target/release/relflow"
for bench in ${BENCHES:-noop latency parallel peers}; do
    cargo bench -p relflow-bench --bench "$bench"
done
echo
cat target/bench-results/*.md
echo
# Signature verification (relflow, then Python fedmsg on the same messages)
# and the bridge end to end into the embedded queue.
cargo bench -p relflow-fedmsg
cargo bench -p relflow-ingest
