# relflow's own callback plugin: one JSON line per task result, plus the final
# stats, appended to the file named by $RELFLOW_EVENTS_FILE. relflow parses it
# into per-task results; the human stdout callback is left alone for the log.
# Two more events decide how relflow settles a run:
#   no_hosts   a play whose host pattern matched no host (it ran nothing);
#   permanent  a task set the fact `relflow_permanent` (a reason, or true):
#              if the run fails, retrying cannot help, so relflow
#              dead-letters the message at once.
# ansible-core ships no JSON-lines callback, hence this file. It is embedded in
# the relflow binary and written to the runner's private work dir.
from __future__ import annotations

DOCUMENTATION = '''
    name: relflow_events
    type: notification
    short_description: JSON lines of task results for relflow
    description:
      - Appends one JSON object per task result and one for the final stats
        to the file named by the RELFLOW_EVENTS_FILE environment variable,
        plus one per play that matched no host and one per task that set
        the fact relflow_permanent.
    requirements:
      - enabled in callbacks_enabled (relflow sets ANSIBLE_CALLBACKS_ENABLED)
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase

MAX_MSG = 4000
# The fact a playbook sets to say "this failure is permanent".
PERMANENT_FACT = 'relflow_permanent'


def _text(value):
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = json.dumps(value, default=str)
        except Exception:
            value = str(value)
    if len(value) > MAX_MSG:
        value = value[:MAX_MSG] + '...'
    return value


def _parts(result):
    # ansible-core >= 2.19 has public host/task/result; older ones only the
    # underscore names (loopabull-era installs may run an older ansible).
    host = getattr(result, 'host', None) or result._host
    task = getattr(result, 'task', None) or result._task
    res = getattr(result, 'result', None)
    if res is None:
        res = result._result
    return host, task, res


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'relflow_events'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get('RELFLOW_EVENTS_FILE')
        self._play = ''
        self._play_hosts = ''
        self._task_started = None

    def _emit(self, event):
        if not self._path:
            return
        line = json.dumps(event, default=str, ensure_ascii=True) + '\n'
        # Append and close each time so a killed run still leaves every
        # finished result on disk.
        with open(self._path, 'a', encoding='utf-8') as f:
            f.write(line)

    def _permanent_mark(self, host, task, res):
        # set_fact puts the fact under ansible_facts; in a loop, per item.
        facts = [res.get('ansible_facts')]
        facts += [r.get('ansible_facts') for r in res.get('results') or [] if isinstance(r, dict)]
        for f in facts:
            value = f.get(PERMANENT_FACT) if isinstance(f, dict) else None
            if value:
                self._emit({
                    'event': 'permanent',
                    'host': host.get_name(),
                    'task': task.get_name(),
                    'reason': None if value is True else _text(value),
                })

    def _task_event(self, result, status, ignored=False):
        host, task, res = _parts(result)
        self._permanent_mark(host, task, res)
        msg = res.get('msg')
        if status in ('failed', 'unreachable'):
            stderr = res.get('stderr')
            if stderr:
                msg = '%s: %s' % (msg, stderr) if msg else stderr
        elif status == 'skipped' and msg is None:
            msg = res.get('skip_reason')
        self._emit({
            'event': 'task',
            'host': host.get_name(),
            'play': self._play,
            'task': task.get_name(),
            'status': 'ignored' if ignored else status,
            'msg': _text(msg),
            # From the task's start to this host's result (hosts run a task
            # side by side, so this is the host's wait, queueing included).
            'duration_ms': None if self._task_started is None
            else int((time.monotonic() - self._task_started) * 1000),
        })

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()
        hosts = play.hosts
        self._play_hosts = ','.join(hosts) if isinstance(hosts, list) else str(hosts)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_started = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self._task_started = time.monotonic()

    def v2_playbook_on_no_hosts_matched(self):
        self._emit({'event': 'no_hosts', 'play': self._play, 'hosts': self._play_hosts})

    def v2_runner_on_ok(self, result):
        _, _, res = _parts(result)
        self._task_event(result, 'changed' if res.get('changed') else 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._task_event(result, 'failed', ignored=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._task_event(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._task_event(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for host in sorted(stats.processed.keys()):
            s = stats.summarize(host)
            hosts[host] = {
                'ok': s.get('ok', 0),
                'changed': s.get('changed', 0),
                'failed': s.get('failures', 0),
                'skipped': s.get('skipped', 0),
                'unreachable': s.get('unreachable', 0),
            }
        self._emit({'event': 'stats', 'hosts': hosts})
