#!/usr/bin/env bash
# Install relflow system-wide, the way its systemd units expect it:
#
#   PREFIX/bin/relflow, PREFIX/bin/flr
#   PREFIX/lib/relflow/venv             ansible-core, owned by root, readable by the
#                                       relflow user ([ansible] playbook_cmd defaults to it)
#   PREFIX/lib/systemd/system/          relflow-worker@, relflow-bridge, relflow-serve
#   PREFIX/lib/sysusers.d/relflow.conf  the relflow system user (created now, too)
#   PREFIX/lib/tmpfiles.d/relflow.conf
#   PREFIX/share/doc/relflow/           README, docs, licence
#   SYSCONFDIR/relflow/                 an example relflow.toml, ansible.cfg and
#                                       playbooks (never overwritten)
#
# Idempotent: run it again to upgrade the binaries; the venv is rebuilt only
# when its ansible-core version differs, and the config is left alone.
# Needs root (it creates the relflow user). Data lives in the units'
# StateDirectory (/var/lib/relflow), not here.
set -euo pipefail
cd "$(dirname "$0")/.."

ANSIBLE_CORE_VERSION="${ANSIBLE_CORE_VERSION:-2.19.14}"

usage() {
    cat <<'EOF'
usage: scripts/install.sh [--prefix DIR] [--sysconfdir DIR] [--bin-dir DIR] [--system-ansible]

  --prefix DIR      where binaries, the venv, units and docs go (default /usr/local)
  --sysconfdir DIR  where relflow/relflow.toml goes (default /etc)
  --bin-dir DIR     install relflow and flr from DIR instead of building them
                    (cargo build --release)
  --system-ansible  make no venv: relflow runs the distribution's
                    ansible-playbook from PATH (e.g. /usr/bin/ansible-playbook
                    from Fedora's ansible-core package)

Environment: ANSIBLE_CORE_VERSION (default 2.19.14), PYTHON (default
/usr/bin/python3: the venv's interpreter must be readable by the relflow
user, which a Python under /root is not).
EOF
}

prefix=/usr/local
sysconfdir=/etc
bin_dir=
system_ansible=0
while (($#)); do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --sysconfdir) sysconfdir="${2:?--sysconfdir needs a directory}"; shift 2 ;;
        --bin-dir) bin_dir="${2:?--bin-dir needs a directory}"; shift 2 ;;
        --system-ansible) system_ansible=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac
case "$sysconfdir" in /*) ;; *) echo "install.sh: --sysconfdir must be an absolute path" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (it installs into $prefix and creates the relflow user)" >&2
    exit 1
fi

say() { printf '==> %s\n' "$*" >&2; }
umask 022

if [ -z "$bin_dir" ]; then
    say "building relflow and flr (release)"
    cargo build --release --locked -p relflow -p flr
    bin_dir=target/release
fi
for bin in relflow flr; do
    [ -x "$bin_dir/$bin" ] || { echo "install.sh: $bin_dir/$bin is missing" >&2; exit 1; }
done

say "binaries -> $prefix/bin"
install -d "$prefix/bin"
install -m 0755 "$bin_dir/relflow" "$bin_dir/flr" "$prefix/bin/"

venv="$prefix/lib/relflow/venv"
if [ "$system_ansible" = 1 ]; then
    say "no venv (--system-ansible): relflow runs ansible-playbook from PATH"
    command -v ansible-playbook >/dev/null || say "warning: no ansible-playbook on PATH yet (dnf install ansible-core)"
# grep reads all of the version text, as in setup.sh: with `grep -q` and
# pipefail, ansible-playbook killed by SIGPIPE made a good venv look wrong
# and rebuilt it.
elif [ -x "$venv/bin/ansible-playbook" ] &&
    "$venv/bin/ansible-playbook" --version 2>/dev/null | grep "core ${ANSIBLE_CORE_VERSION}\]" >/dev/null; then
    say "venv $venv already has ansible-core $ANSIBLE_CORE_VERSION"
else
    python="${PYTHON:-/usr/bin/python3}"
    [ -x "$python" ] || python=python3
    say "venv with ansible-core $ANSIBLE_CORE_VERSION -> $venv ($python)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "ansible-core==${ANSIBLE_CORE_VERSION}"
fi

say "units, sysusers.d, tmpfiles.d -> $prefix/lib"
units="$prefix/lib/systemd/system"
install -d "$units" "$prefix/lib/sysusers.d" "$prefix/lib/tmpfiles.d"
for unit in contrib/systemd/*.service; do
    # The units name the RPM's layout (/usr/bin, /etc/relflow); point them here.
    sed -e "s#/usr/bin/relflow#$prefix/bin/relflow#g" \
        -e "s#/etc/relflow#$sysconfdir/relflow#g" \
        -e "s#/usr/share/doc/relflow#$prefix/share/doc/relflow#g" \
        "$unit" > "$units/$(basename "$unit")"
    chmod 0644 "$units/$(basename "$unit")"
done
install -m 0644 contrib/systemd/relflow.sysusers.conf "$prefix/lib/sysusers.d/relflow.conf"
sed "s#/etc/relflow#$sysconfdir/relflow#g" contrib/systemd/relflow.tmpfiles.conf \
    > "$prefix/lib/tmpfiles.d/relflow.conf"

if ! id relflow >/dev/null 2>&1; then
    say "creating the relflow system user"
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers "$prefix/lib/sysusers.d/relflow.conf"
    else
        useradd --system --home-dir /var/lib/relflow --no-create-home \
            --shell /usr/sbin/nologin --comment "relflow automation worker" relflow
    fi
fi

say "docs -> $prefix/share/doc/relflow"
install -d "$prefix/share/doc/relflow/docs"
install -m 0644 README.md LICENSE "$prefix/share/doc/relflow/"
install -m 0644 contrib/systemd/README.md "$prefix/share/doc/relflow/systemd.md"
install -m 0644 docs/*.md docs/*.json "$prefix/share/doc/relflow/docs/"

etc="$sysconfdir/relflow"
install -d -m 0755 "$etc"
if [ -e "$etc/relflow.toml" ]; then
    say "$etc/relflow.toml exists: left as it is"
else
    say "example config -> $etc (relflow.toml, ansible.cfg, playbooks/)"
    install -m 0644 contrib/relflow.toml "$etc/relflow.toml"
    [ -e "$etc/ansible.cfg" ] || install -m 0644 examples/ansible.cfg "$etc/ansible.cfg"
    install -d "$etc/playbooks"
    for pb in examples/playbooks/*.yml; do
        [ -e "$etc/playbooks/$(basename "$pb")" ] || install -m 0644 "$pb" "$etc/playbooks/"
    done
fi

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
cat >&2 <<EOF
==> installed. Next:
    $prefix/bin/relflow --config $etc/relflow.toml check
    systemctl enable --now relflow-worker@{1..2}.service relflow-bridge.service relflow-serve.service
EOF
