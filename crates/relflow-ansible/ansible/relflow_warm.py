# relflow's warm Ansible pool: a pre-started Python that imports ansible once
# and forks one child per playbook run ("zygote"). A trivial ansible-playbook
# spends most of its time importing Python modules; a forked child starts with
# them already loaded.
#
# Embedded in relflow and written to the runner's private work dir; started as
#   <ansible-playbook's python> relflow_warm.py SOCKET ANSIBLE_PLAYBOOK WORKER_PID
# with the same allow-listed environment and working directory as a cold run
# (ansible reads its config at import time, so the runner restarts the pool
# when either, the config files or the ansible install change).
#
# Protocol, one Unix-socket connection per run (the socket lives in the 0700
# work dir):
#   runner -> pool: one JSON line {"argv", "env", "cwd", "supervisor"} (every
#                   OS string hex-encoded), sent with two fds: log, err
#   pool -> runner: {"pid": N}, later {"status": <raw wait status>}
#   runner -> pool: "term" / "kill" lines; EOF means the runner gave up on the
#                   run, which is then SIGTERMed like a timed-out run.
# The pool exits when its stdin reaches EOF and no run is left, and dies with
# the worker (PDEATHSIG is set by the runner's spawner; the default SIGTERM
# action kills the pool, and each run's supervisor has PDEATHSIG on the pool).
#
# Per run the pool forks R; R forks P, the playbook, and then execs relflow's
# Rust supervisor in "--pid P" mode, which adopts P exactly as it would a
# cold ansible-playbook (subreaper, PDEATHSIG, tree teardown). P never sees
# anything of another run: it is forked from the pool, which never runs a
# playbook itself, its environment is replaced, every fd above 2 is closed.
from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import sys

SOCKET_PATH, ANSIBLE_PLAYBOOK, WORKER_PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Die with the worker (the runner spawns us from a thread that lives as long
# as the worker), even if it is SIGKILLed.
_libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
if os.getppid() != WORKER_PID:
    sys.exit('relflow_warm: the worker exited before the pool started')
# A cold run has the script's directory first on sys.path.
sys.path[0] = os.path.dirname(os.path.abspath(ANSIBLE_PLAYBOOK))

from ansible.cli.playbook import main as playbook_main  # noqa: E402  the point of it all

# What a trivial run imports after the CLI; missing optional ones are fine.
PRELOAD = """
ansible.executor.playbook_executor ansible.executor.task_queue_manager
ansible.executor.task_executor ansible.executor.process.worker
ansible.playbook.handler ansible.playbook.task_include ansible.playbook.included_file
ansible.playbook.role_include ansible.playbook.handler_task_include
ansible.plugins.strategy.linear ansible.plugins.strategy.free
ansible.plugins.connection.local ansible.plugins.connection.ssh
ansible.plugins.callback.default ansible.plugins.callback.minimal
ansible.plugins.action.command ansible.plugins.action.debug ansible.plugins.action.normal
ansible.plugins.shell.sh ansible.plugins.become.sudo ansible.plugins.become.su
ansible.plugins.cache.memory ansible.plugins.vars.host_group_vars
ansible.plugins.inventory.host_list ansible.plugins.inventory.ini ansible.plugins.inventory.yaml
ansible.plugins.inventory.auto ansible.plugins.inventory.script ansible.plugins.inventory.toml
ansible.plugins.callback.junit ansible.plugins.callback.oneline ansible.plugins.callback.tree
ansible.plugins.connection.paramiko_ssh ansible.plugins.connection.psrp ansible.plugins.connection.winrm
ansible.plugins.shell.cmd ansible.plugins.shell.powershell ansible.utils._junit_xml ansible.modules
ansible.plugins.doc_fragments.connection_pipelining ansible.plugins.doc_fragments.default_callback
ansible.plugins.doc_fragments.result_format_callback ansible.plugins.doc_fragments.shell_common
ansible.plugins.doc_fragments.shell_windows ansible.plugins.doc_fragments.vars_plugin_staging
ansible.module_utils.connection ansible.utils.hashing ansible.utils.shlex
multiprocessing.popen_fork multiprocessing.synchronize multiprocessing.shared_memory
pty pprint xml.etree.ElementTree xml.dom.minidom tomllib
""".split()
for _name in PRELOAD:
    try:
        __import__(_name)
    except Exception:  # an optional dependency is missing: a run imports it if it needs it
        pass



def _cache_builtin_routing():
    """Parse ansible.builtin's routing table once, in the pool.

    Every ansible-playbook parses config/ansible_builtin_runtime.yml (some
    370 kB of YAML) on its first module lookup: a third of a warm run's own
    time. The collection loader reads it through _meta_yml_to_dict, which
    ansible documents as replaceable so other implementations can cache the
    output (that is what its content_id argument is for). The cache answers
    only when the bytes a run reads are exactly the bytes parsed here, so an
    edited file is parsed afresh; each run gets its own copy of the result,
    by fork, so nothing a run does to it reaches the pool or another run.
    """
    from ansible.utils.collection_loader import _collection_finder, _collection_meta

    parse = _collection_meta._meta_yml_to_dict
    path = os.path.join(os.path.dirname(ansible.__file__), 'config', 'ansible_builtin_runtime.yml')
    with open(path, 'rb') as f:
        raw = f.read()
    parsed = parse(raw, ('ansible.builtin', 'runtime.yml'))

    def cached(data, content_id):
        if content_id == ('ansible.builtin', 'runtime.yml') and data == raw:
            return parsed
        return parse(data, content_id)

    _collection_finder._meta_yml_to_dict = cached


try:
    import ansible  # noqa: E402
    _cache_builtin_routing()
except Exception as e:  # an ansible without this layout: runs parse it themselves, as cold runs do
    sys.stderr.write('relflow_warm: not caching the builtin routing table: %s\n' % e)


def _load_plugin_options():
    """Make the plugin loads every run makes, once, in the pool.

    Before its first play, every ansible-playbook loads all connection,
    shell, become, callback and vars plugins (PlaybookExecutor.run,
    TaskQueueManager.load_callbacks, vars.plugins) and its inventory and
    cache plugins, and parses each one's DOCUMENTATION YAML for its option
    definitions: about a third of what is left of a warm run. These are the
    same loader calls, on the same plugin paths (the pool has the runs'
    config and environment, and is restarted when either changes), so a
    run finds the modules imported and the definitions registered exactly
    as it would have made them, and skips both. Plugin instances, and the
    options' values, are still made in the run.
    """
    from ansible import constants
    from ansible.plugins import loader

    for plugins in (loader.connection_loader, loader.shell_loader, loader.become_loader,
                    loader.callback_loader, loader.vars_loader):
        list(plugins.all(class_only=True))
    for name in constants.INVENTORY_ENABLED:
        loader.inventory_loader.get(name, class_only=True)
    loader.cache_loader.get(constants.CACHE_PLUGIN, class_only=True)


try:
    _load_plugin_options()
except Exception as e:  # a run loads what is missing itself, as a cold run does
    sys.stderr.write('relflow_warm: not preloading plugin options: %s\n' % e)

RUN_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _h(s):
    return bytes.fromhex(s)


def _child_playbook(argv, env, cwd, mask):
    """P: becomes ansible-playbook, as if freshly exec'd."""
    os.dup2(1, 2)  # one stream, as in a cold run
    os.closerange(3, os.sysconf('SC_OPEN_MAX'))
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.environ.clear()
    os.environ.update({os.fsdecode(k): os.fsdecode(v) for k, v in env.items()})
    os.chdir(cwd)
    sys.argv = [os.fsdecode(a) for a in argv]
    # ansible serialises stdout writes with a lock it disables in forked
    # children; this process is a main process again, so give it a fresh one.
    try:
        import threading
        from ansible.utils import display as _display
        inst = _display.Display()
        inst._lock = threading.RLock()
        _display._synchronize_textiowrapper(sys.stdout, inst._lock)
        _display._synchronize_textiowrapper(sys.stderr, inst._lock)
    except Exception:
        pass
    code = 1
    try:
        playbook_main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code & 0xff)


def _child_run(req, fds, mask):
    """R: owns one run; forks P, then execs the supervisor to adopt it."""
    try:
        os.setpgid(0, 0)  # its own process group, like a cold supervisor
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        argv = [_h(a) for a in req['argv']]
        env = {_h(k): _h(v) for k, v in req['env'].items()}
        cwd = _h(req['cwd'])
        sup = [_h(a) for a in req['supervisor']]
        pid = os.fork()
        if pid == 0:
            _child_playbook(argv, env, cwd, mask)
        # RUN_SIGNALS stay blocked through exec: a SIGCHLD from a quick P is
        # kept pending for the supervisor's sigwait instead of being lost.
        os.execve(sup[0], sup + [str(pid).encode()], env)
    except BaseException as e:
        try:
            os.write(2, ('relflow-supervise: cannot run warm playbook: %s\n' % e).encode())
        finally:
            os._exit(127)


class Run:
    def __init__(self, conn, pid):
        self.conn, self.pid, self.buf, self.done = conn, pid, b'', False

    def send(self, obj):
        if self.conn is None:
            return
        try:
            self.conn.sendall((json.dumps(obj) + '\n').encode())
        except OSError:
            self.close()

    def close(self):
        if self.conn is not None:
            sel.unregister(self.conn)
            self.conn.close()
            self.conn = None

    def signal(self, sig):
        if not self.done:  # not reaped yet, so the pid is still ours
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


def _start(conn):
    conn.settimeout(10)
    data, fds = b'', []
    try:
        data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 2)
        while data and not data.endswith(b'\n'):
            more = conn.recv(1 << 20)
            if not more:
                break
            data += more
    except OSError:
        pass
    if len(fds) != 2 or not data.endswith(b'\n'):
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    req = json.loads(data)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, RUN_SIGNALS)
    pid = os.fork()
    if pid == 0:
        _child_run(req, fds, mask)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for fd in fds:
        os.close(fd)
    conn.setblocking(False)
    run = Run(conn, pid)
    runs[pid] = run
    sel.register(conn, selectors.EVENT_READ, run)
    run.send({'pid': pid})


def _reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        run = runs.pop(pid, None)
        if run is not None:
            run.done = True
            run.send({'status': status})
            run.close()


def _on_conn(run):
    try:
        data = run.conn.recv(4096)
    except BlockingIOError:
        return
    except OSError:
        data = b''
    if not data:  # the runner gave up on this run: tear it down
        run.close()
        run.signal(signal.SIGTERM)
        return
    run.buf += data
    while b'\n' in run.buf:
        line, run.buf = run.buf.split(b'\n', 1)
        if line == b'term':
            run.signal(signal.SIGTERM)
        elif line == b'kill':
            run.signal(signal.SIGKILL)


runs: dict[int, Run] = {}
sel = selectors.DefaultSelector()
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *_: None)

try:
    os.unlink(SOCKET_PATH)
except FileNotFoundError:
    pass
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.umask(0o077)
listener.bind(SOCKET_PATH)
listener.listen(64)
listener.setblocking(False)
sel.register(listener, selectors.EVENT_READ, 'accept')
sel.register(wake_r, selectors.EVENT_READ, 'signal')
sel.register(sys.stdin.fileno(), selectors.EVENT_READ, 'stdin')
import ansible  # noqa: E402
sys.stdout.write('ready %s\n' % os.path.dirname(ansible.__file__))
sys.stdout.flush()

retiring = False
while not (retiring and not runs):
    for key, _ in sel.select():
        what = key.data
        if what == 'accept':
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue
            _start(conn)
        elif what == 'signal':
            os.read(wake_r, 512)
            _reap()
        elif what == 'stdin':
            if not os.read(sys.stdin.fileno(), 512):
                retiring = True
                sel.unregister(key.fileobj)
                sel.unregister(listener)
                listener.close()
                try:
                    os.unlink(SOCKET_PATH)
                except OSError:
                    pass
        else:
            _on_conn(what)
    _reap()
