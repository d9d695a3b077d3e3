# Jinja tests of the tiergate roles, loaded by ansible-playbook because this directory sits next to site.yml
# (a playbook of your own that uses the roles: copy it next to that playbook, or name it in ANSIBLE_TEST_PLUGINS).
#
#   when: director_service_start is not tiergate_started_from_stopped
#
# takes the registered result of a role's `state: started` task and is true when that task found the unit inactive
# or failed, i.e. this run has just started it: it runs the new code and config already, so the role's restart or
# reload handler skips it (a first deploy starts every unit exactly once). A result without a status (the task was
# skipped, or render-only mode) counts as a unit that was running: the handler acts.

DOCUMENTATION = """
name: tiergate_started_from_stopped
short_description: the registered systemd start task started its unit from inactive or failed
description:
  - True when the C(status.ActiveState) of a registered C(ansible.builtin.systemd) result (the unit's state
    before the task) is C(inactive) or C(failed). The tiergate roles' handlers skip a restart or reload then.
positional: _input
options:
  _input:
    description: the registered result of a C(state: started) systemd task
    type: dict
    required: true
"""

from jinja2 import Undefined


def started_from_stopped(result):
    # An undefined result (its task never ran this play) is a unit this run did not start.
    if isinstance(result, Undefined) or not isinstance(result, dict):
        return False
    status = result.get('status') or {}
    return status.get('ActiveState', 'active') in ('inactive', 'failed')


class TestModule:
    def tests(self):
        return {'tiergate_started_from_stopped': started_from_stopped}
