#!/usr/bin/env bash
# Set up relflow and run the example end to end on the embedded queue: two
# real Fedora messages go on the queue, a worker runs the matching playbook
# with real ansible-playbook, and the recorded run is shown. No broker needed.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

relflow() { ./target/release/relflow --config examples/relflow.toml "$@"; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

rm -rf .relflow/example   # a fresh queue and run history for each demo

step "relflow check: the config and its rules"
relflow check

step "relflow publish: a pungi compose FINISHED, the same compose STARTED, a koji build COMPLETE"
relflow publish examples/messages/compose-finished.json examples/messages/compose-started.json \
    examples/messages/koji-build-complete.json

step "relflow dry-run: what the compose message will run, with its exact extra vars"
relflow dry-run examples/messages/compose-finished.json

step "relflow worker --drain: run everything queued, then exit"
relflow worker --drain

step "relflow runs list"
relflow runs list

step "relflow runs log (the compose run)"
relflow runs log "$(relflow runs list --rule compose-finished --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"

step "relflow status"
relflow status
