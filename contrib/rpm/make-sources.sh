#!/usr/bin/env bash
# Make the two sources contrib/rpm/relflow.spec builds from, into DIR
# (default ~/rpmbuild/SOURCES):
#   relflow-VERSION.tar.gz         the committed tree (git archive), or the
#                                  working tree without target/ and .venv
#                                  where there is no git checkout
#   relflow-VERSION-vendor.tar.xz  every crate Cargo.lock names (cargo vendor)
# The vendoring needs crates.io; the rpmbuild that follows is offline.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-$HOME/rpmbuild/SOURCES}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name="relflow-$version"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git archive --format=tar --prefix="$name/" HEAD | tar -x -C "$work"
else
    mkdir "$work/$name"
    tar -c --exclude=./target --exclude=./.venv --exclude=./.relflow --exclude=node_modules . |
        tar -x -C "$work/$name"
fi
tar -czf "$out/$name.tar.gz" -C "$work" "$name"

echo "==> cargo vendor (crates for $name)" >&2
(cd "$work/$name" && cargo vendor --locked --versioned-dirs --quiet vendor >/dev/null)
XZ_OPT="${XZ_OPT:--T0 -2}" tar -cJf "$out/$name-vendor.tar.xz" -C "$work/$name" vendor
echo "==> $out/$name.tar.gz, $out/$name-vendor.tar.xz" >&2
