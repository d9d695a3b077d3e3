# A connection plugin for the playbook runs in the QEMU guest (docs/deploy.md, "The whole stack in a guest"): each
# inventory host is a systemd-nspawn container (its own overlay of /, its own network namespace on the guest's bridge,
# systemd as its init), and Ansible reaches it by entering the container's namespaces with nsenter(1) instead of
# over ssh: under QEMU's emulator an ssh session per task costs seconds of emulated crypto; entering namespaces costs
# a fork. Everything the roles do (apt, user, template, systemd) runs inside the container exactly as on a real
# host: only the transport differs.
from __future__ import annotations

import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase

DOCUMENTATION = '''
    name: tiergate_nsenter
    short_description: run tasks inside a local systemd-nspawn container by entering its namespaces
    description:
      - Enters every namespace of the container's init (nsenter --all) and its root, as root.
    options:
      pid_file:
        description: File holding the PID of the container's init (as seen from the controller).
        vars:
          - name: ansible_nsenter_pid_file
'''


class Connection(ConnectionBase):
    transport = 'tiergate_nsenter'
    has_pipelining = True
    # The container's own /tmp and home, not the controller's.
    default_user = 'root'

    def _pid(self) -> str:
        path = self.get_option('pid_file')
        try:
            with open(path, encoding='ascii') as f:
                return f.read().strip()
        except OSError as e:
            raise AnsibleConnectionFailure(f'container of {self._play_context.remote_addr}: cannot read {path}: {e}') from e

    def _connect(self):
        self._connected = True
        return self

    def _nsenter(self, argv: list[str], stdin=None, stdout=subprocess.PIPE) -> subprocess.Popen:
        cmd = ['nsenter', '--target', self._pid(), '--all', '--root', '--wd', '--', *argv]
        return subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._display.vvv(f'EXEC in {self._pid()}: {cmd}', host=self._play_context.remote_addr)
        p = self._nsenter(['/bin/sh', '-c', cmd], stdin=subprocess.PIPE)
        out, err = p.communicate(in_data)
        return p.returncode, out, err

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        with open(in_path, 'rb') as src:
            p = self._nsenter(['/bin/sh', '-c', f'cat > {shlex.quote(out_path)}'], stdin=src)
            _, err = p.communicate()
        if p.returncode != 0:
            raise AnsibleError(f'put_file to {out_path} failed: {err.decode(errors="replace")}')

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        with open(out_path, 'wb') as dest:
            p = self._nsenter(['/bin/cat', in_path], stdout=dest)
            _, err = p.communicate()
        if p.returncode != 0:
            raise AnsibleError(f'fetch_file of {in_path} failed: {err.decode(errors="replace")}')

    def close(self):
        self._connected = False
