#!/bin/bash
# The host half of the deployed-stack topology (test/stack-vm.test.ts). Only the directors need a kernel with IPVS, so
# only lb1 and lb2 live in the QEMU guest; the other hosts run on this machine's own kernel at native speed, on one
# L2 segment with the guest:
#   - TG_SEGMENT_NS, a network namespace of ours holding the segment's bridge br0 (10.99.0.254, where the Ansible
#     controller runs) and the tap the guest's NIC is plugged into (runInGuest's `uplink`);
#   - proxy1, proxy2, app1, app2, redis1: systemd-nspawn containers (topology.sh's tg_container_up: an overlay of /,
#     their own network namespace on br0, systemd as init stopped at basic.target, sshd started for the controller);
#   - client and collector: plain namespaces.
# Nothing here is routed anywhere else: the namespaces have no default route and br0 has no uplink but the tap.
# Writes $STACK_DIR/host.ready when every container is up; tears everything down when $STACK_DIR/host.stop appears,
# when the process that started it is gone, after an hour, or on SIGTERM.
# Environment: STACK_DIR, RELEASE (the checkout, bind-mounted read-only at /opt/tiergate-release), TOPOLOGY_SH,
# TG_SEGMENT_NS, TG_NETNS_PREFIX, TG_HOSTS_DIR, TG_HOSTS_RUN, TG_AUTHORIZED_KEYS.
set -euo pipefail
# shellcheck source=/dev/null
source "$TOPOLOGY_SH"

CONTAINERS=(proxy1:10.99.0.11 proxy2:10.99.0.12 app1:10.99.0.21 app2:10.99.0.22 redis1:10.99.0.30)
PLAIN=(client:10.99.0.50 collector:10.99.0.40)

teardown() {
  local f
  set +e
  # Throwaway hosts: SIGKILL to each container's init (its PID namespace's PID 1) ends everything in it at once; a
  # graceful poweroff took over 10 s a container. SIGKILL to systemd-nspawn alone would leave the container running.
  for f in "$TG_HOSTS_RUN"/*.pid "$TG_HOSTS_RUN"/*.nspawn; do [[ -e $f ]] && kill -KILL "$(cat "$f")" 2> /dev/null; done
  for f in "$TG_HOSTS_RUN"/*.pid "$TG_HOSTS_RUN"/*.nspawn; do
    [[ -e $f ]] || continue
    for ((i = 0; i < 50; i++)); do kill -0 "$(cat "$f")" 2> /dev/null || break; sleep 0.1; done
  done
  # The containers' cgroups (tg_container_up made one per container), leaves first.
  for f in "${CONTAINERS[@]}"; do
    for d in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
      [[ -d $d/tg-$TG_NETNS_PREFIX${f%%:*} ]] && find "$d/tg-$TG_NETNS_PREFIX${f%%:*}" -depth -type d -exec rmdir {} + 2> /dev/null
    done
  done
  for f in "$TG_HOSTS_DIR"/*/root; do mountpoint -q "$f" && umount -l "$f"; done
  # What a killed nspawn leaves in /run (on disk here, not a tmpfs): the next nspawn of that machine name refuses to
  # start over it. The machine names carry TG_NETNS_PREFIX, so no other run's are touched.
  for f in "${CONTAINERS[@]}"; do rm -rf "/run/systemd/nspawn/propagate/$TG_NETNS_PREFIX${f%%:*}"; done
  mountpoint -q "$TG_HOSTS_DIR" && umount -l "$TG_HOSTS_DIR"
  for f in "${CONTAINERS[@]}" "${PLAIN[@]}"; do ip netns del "$TG_NETNS_PREFIX${f%%:*}" 2> /dev/null; done
  ip netns del "$TG_SEGMENT_NS" 2> /dev/null
  echo "host topology torn down" >&2
}
trap teardown EXIT
trap 'exit 143' TERM INT

ip netns add "$TG_SEGMENT_NS"
ip -n "$TG_SEGMENT_NS" link set lo up
ip -n "$TG_SEGMENT_NS" link add br0 type bridge
ip -n "$TG_SEGMENT_NS" addr add 10.99.0.254/24 dev br0
ip -n "$TG_SEGMENT_NS" link set br0 up
ip -n "$TG_SEGMENT_NS" tuntap add dev tap0 mode tap
ip -n "$TG_SEGMENT_NS" link set tap0 master br0 up

tg_hosts_init
for h in "${CONTAINERS[@]}"; do tg_container_up "${h%%:*}" "${h#*:}" --bind-ro="$RELEASE:/opt/tiergate-release"; done
for h in "${PLAIN[@]}"; do tg_ns_add "${h%%:*}" "${h#*:}"; done
for h in "${CONTAINERS[@]}"; do
  tg_container_wait "${h%%:*}" 240
  tg_container_ssh "${h%%:*}"
done
touch "$STACK_DIR/host.ready"

# Bounded, and the test process that started us must still be there (a killed test leaves nothing running).
parent=$PPID
for ((i = 0; i < 36000; i++)); do
  [[ -e $STACK_DIR/host.stop ]] && break
  kill -0 "$parent" 2> /dev/null || break
  sleep 0.1
done
