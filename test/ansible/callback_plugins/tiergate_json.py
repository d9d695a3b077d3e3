# A stdout callback that prints one JSON document for a playbook run: every task's result per host, and the
# per-host totals. Written here, for the tests only, because Debian's ansible-core ships no JSON stdout callback
# (`json` lives in the ansible.posix collection, which comes with the much larger `ansible` package): the
# tests read failures and totals from this document (test/infra-ansible.test.ts). The shape is ansible.posix's
# `json` callback's (plays[].tasks[].hosts, stats), so either can be read the same way.
from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: tiergate_json
    type: stdout
    short_description: one JSON document per playbook run (tiergate's tests)
    description:
      - Task results per host and the per-host totals, printed at the end of the run.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'tiergate_json'

    def __init__(self, display=None):
        super().__init__(display)
        self._plays = []

    def v2_playbook_on_play_start(self, play):
        self._plays.append({'play': {'name': play.get_name()}, 'tasks': []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._plays[-1]['tasks'].append({'task': {'name': task.get_name()}, 'hosts': {}})

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _record(self, result, **extra):
        entry = dict(self._clean(result._result))
        entry.update(extra)
        # A task that failed before any task started (a play-level error) has no task entry to hold it.
        if not self._plays or not self._plays[-1]['tasks']:
            self.v2_playbook_on_task_start(result._task, False)
        self._plays[-1]['tasks'][-1]['hosts'][result._host.get_name()] = entry

    def _clean(self, res):
        return {k: v for k, v in res.items() if not k.startswith('_ansible')}

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        totals = {}
        for host in sorted(stats.processed.keys()):
            totals[host] = stats.summarize(host)
        self._display.display(json.dumps({'plays': self._plays, 'stats': totals}, indent=2, sort_keys=True, default=str))
