# Network topology helpers for scenario scripts run inside the QEMU guest (bash; source this file).
# Everything lives in a private range used only inside the guest: a bridge br0 in the root namespace
# and one network namespace per host, each joined to br0 by a veth pair (eth0 inside the namespace,
# v-<name> on the bridge). Addresses come from variables that topology.ts exports before sourcing:
# TG_PREFIX (e.g. 10.99.0), TG_VIP, TG_CLIENT_IP, TG_DIRECTOR_IP, TG_BRIDGE_IP, TG_RS_BASE
# (real server i gets $TG_PREFIX.$((TG_RS_BASE + i))).

# tg_rs_ip I: the address of real server I (1-based).
tg_rs_ip() { echo "$TG_PREFIX.$((TG_RS_BASE + $1))"; }

# tg_ns_add NAME ADDR: a namespace NAME with eth0=ADDR/24 on br0 and lo up.
# With TG_SEGMENT_NS set, br0 lives in that namespace (a segment of the real host, for hosts outside the guest), and
# the namespace is named $TG_NETNS_PREFIX$NAME (namespace names are global on a shared host).
tg_ns_add() {
  local name=$1 addr=$2 ns=${TG_NETNS_PREFIX:-}$1
  ip netns add "$ns"
  ip link add "v-$name" type veth peer name eth0 netns "$ns"
  if [[ -n ${TG_SEGMENT_NS:-} ]]; then
    ip link set "v-$name" netns "$TG_SEGMENT_NS"
    ip -n "$TG_SEGMENT_NS" link set "v-$name" master br0 up
  else
    ip link set "v-$name" master br0 up
  fi
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# tg_topology_up N: br0 plus namespaces client, director and rs1..rsN.
tg_topology_up() {
  local n=$1 i
  ip link add br0 type bridge
  ip addr add "$TG_BRIDGE_IP/24" dev br0
  ip link set br0 up
  tg_ns_add client "$TG_CLIENT_IP"
  tg_ns_add director "$TG_DIRECTOR_IP"
  for ((i = 1; i <= n; i++)); do tg_ns_add "rs$i" "$(tg_rs_ip "$i")"; done
}

# tg_director_vip: the VIP as /32 on the director's eth0, so the director answers ARP for it.
tg_director_vip() { ip -n director addr add "$TG_VIP/32" dev eth0; }

# tg_sysctl NS KEY VALUE: a per-namespace sysctl (conf/* and vs/* are per namespace), via /proc.
tg_sysctl() { ip netns exec "$1" sh -c "echo $3 > /proc/sys/${2//.//}"; }

# tg_realserver_dr NS: the LVS-DR real-server recipe: accept packets for the VIP (on lo, /32) but never
# answer ARP for it (arp_ignore=1) nor use it as an ARP source (arp_announce=2), else clients would
# bypass the director. Tests will replace this with `tiergate realserver up`.
tg_realserver_dr() {
  local ns=$1 dev
  for dev in all eth0; do
    tg_sysctl "$ns" "net.ipv4.conf.$dev.arp_ignore" 1
    tg_sysctl "$ns" "net.ipv4.conf.$dev.arp_announce" 2
  done
  ip -n "$ns" addr add "$TG_VIP/32" dev lo
}

# tg_wait_file PATH [TRIES]: wait (0.1 s steps, default 300 tries) until PATH exists; fail otherwise.
tg_wait_file() {
  local i
  for ((i = 0; i < ${2:-300}; i++)); do [[ -e $1 ]] && return 0; sleep 0.1; done
  echo "tg_wait_file: $1 did not appear" >&2
  return 1
}

# Hosts with their own filesystem and service manager (test/stack-vm.test.ts): a systemd-nspawn container per host,
# booted with systemd as its init on a writable overlay of the guest's / (so every installed package is there and
# nothing is shared back), in its own network namespace on br0. Needs `tg_hosts_init` once first.
# TG_HOSTS_DIR (default /hosts) holds the containers' layers, TG_HOSTS_RUN (default /run/tg-hosts) their PID files.
# TG_AUTHORIZED_KEYS, when set, is installed as root's authorized_keys in every container (tg_container_ssh).
tg_hosts_init() {
  mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
  mkdir -p /dev/shm "${TG_HOSTS_DIR:-/hosts}" "${TG_HOSTS_RUN:-/run/tg-hosts}"
  mountpoint -q /dev/shm || mount -t tmpfs tmpfs /dev/shm
  # An overlay's upper layer cannot live on the guest's overlay root: a tmpfs of its own.
  mount -t tmpfs -o mode=0755 tmpfs "${TG_HOSTS_DIR:-/hosts}"
}

# tg_container_up NAME ADDR [nspawn options...]: boots host NAME with eth0=ADDR/24 on br0. It stops at basic.target:
# the services of the guest image (nginx, postgresql, redis...) are installed but not running, as on a fresh host;
# what a host runs is what the playbook starts. The init's PID lands in /run/tg-hosts/NAME.pid (tg_container_wait).
tg_container_up() {
  local name=$1 addr=$2 dir=${TG_HOSTS_DIR:-/hosts}/$1 run=${TG_HOSTS_RUN:-/run/tg-hosts}
  local root=$dir/root
  shift 2
  tg_ns_add "$name" "$addr"
  mkdir -p "$dir/upper" "$dir/work" "$root"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/upper,workdir=$dir/work" "$root"
  # Its own identity: a machine id (journald, systemd-firstboot) and a host name.
  systemd-id128 new > "$root/etc/machine-id"
  echo "$name" > "$root/etc/hostname"
  # A fresh host's root: Debian's skeleton dotfiles, not those of the machine's root (this image's /root may set up
  # pyenv or the like in .bashrc, which every ssh session would run: seconds each under emulation).
  install -m 0644 /etc/skel/.bashrc /etc/skel/.profile "$root/root/"
  # TG_CONTAINER_SEED: a directory laid over the host's root before it boots (files a prepared image would have).
  if [[ -n ${TG_CONTAINER_SEED:-} ]]; then cp -a "$TG_CONTAINER_SEED/." "$root/"; fi
  if [[ -n ${TG_AUTHORIZED_KEYS:-} ]]; then
    install -d -m 0700 "$root/root/.ssh"
    install -m 0600 "$TG_AUTHORIZED_KEYS" "$root/root/.ssh/authorized_keys"
  fi
  # --keep-unit --register=no: no systemd or machined in the guest's root to register with.
  # --capability=CAP_NET_ADMIN: nspawn grants it only for networks it creates itself; a host's own network setup needs
  # it (the realserver's VIP on lo, the director's IPVS table, keepalived's VIP).
  # SYSTEMD_NSPAWN_API_VFS_WRITABLE=network: /proc/sys/net writable (the rest of /proc/sys stays read-only). nspawn
  # does so by itself only for networks it creates; with a namespace of ours, `tiergate realserver up` (arp_ignore)
  # and the director's IPVS sysctls failed with EROFS.
  # Each container gets a cgroup of its own first (on the pure cgroup2 of the guest; on the systemd and unified
  # hierarchies of a cgroup v1 hybrid host): nspawn --keep-unit makes `payload` and `supervisor` cgroups below its
  # own, and two containers in one cgroup collided ("Failed to create //payload subcgroup: Device or resource busy"),
  # as did one with what an earlier container left there.
  local cgs=() c
  if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    cgs=("/sys/fs/cgroup/tg-${TG_NETNS_PREFIX:-}$name")
  else
    for c in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do [[ -d $c ]] && cgs+=("$c/tg-${TG_NETNS_PREFIX:-}$name"); done
  fi
  for c in "${cgs[@]}"; do mkdir -p "$c"; done
  (
    for c in "${cgs[@]}"; do echo "$BASHPID" > "$c/cgroup.procs"; done
    SYSTEMD_NSPAWN_API_VFS_WRITABLE=network exec systemd-nspawn --quiet --register=no --keep-unit --capability=CAP_NET_ADMIN \
      --directory="$root" --machine="${TG_NETNS_PREFIX:-}$name" \
      --network-namespace-path="/run/netns/${TG_NETNS_PREFIX:-}$name" --console=pipe "$@" --boot -- systemd.unit=basic.target
  ) > "$dir.console" 2>&1 < /dev/null &
  echo $! > "$run/$name.nspawn"
}

# tg_container_wait NAME [TRIES]: waits (0.5 s steps, default 600) until NAME's systemd has finished booting, then
# writes its init's PID (as the guest's root namespace sees it) to /run/tg-hosts/NAME.pid.
tg_container_wait() {
  local name=$1 nspawn leader state i run=${TG_HOSTS_RUN:-/run/tg-hosts}
  nspawn=$(cat "$run/$name.nspawn")
  for ((i = 0; i < ${2:-600}; i++)); do
    if ! kill -0 "$nspawn" 2> /dev/null; then
      echo "tg_container_wait: systemd-nspawn for $name exited; console:" >&2
      tail -20 "${TG_HOSTS_DIR:-/hosts}/$name.console" >&2
      return 1
    fi
    leader=$(cat /proc/"$nspawn"/task/*/children 2> /dev/null | awk '{print $1}' || true)
    if [[ -n $leader ]]; then
      state=$(timeout 20 nsenter --target "$leader" --all --root --wd systemctl is-system-running 2> /dev/null || true)
      if [[ $state == running || $state == degraded ]]; then
        echo "$leader" > "$run/$name.pid"
        return 0
      fi
    fi
    sleep 0.5
  done
  echo "tg_container_wait: $name did not boot (state '$state'); console:" >&2
  tail -20 "${TG_HOSTS_DIR:-/hosts}/$name.console" >&2
  return 1
}

# tg_on NAME CMD...: runs CMD inside host NAME (its namespaces and root), as Ansible's connection does.
tg_on() { local name=$1; shift; nsenter --target "$(cat "${TG_HOSTS_RUN:-/run/tg-hosts}/$name.pid")" --all --root --wd "$@"; }

# tg_uplink_up: enslaves the guest's virtio NIC (runInGuest's `uplink`: a tap on the host) to br0, so the guest's
# hosts and the host's namespaces on the tap's bridge are one L2 segment. No address: the guest's root namespace is
# not a host of the segment.
tg_uplink_up() {
  local d dev=
  modprobe virtio_net
  for d in /sys/class/net/*; do
    [[ $(basename "$(readlink -f "$d/device/driver" 2> /dev/null)") == virtio_net ]] && dev=$(basename "$d")
  done
  [[ -n $dev ]] || { echo "tg_uplink_up: no virtio-net device (runInGuest without uplink?)" >&2; return 1; }
  ip link set "$dev" name uplink0
  ip link set uplink0 master br0 up
}

# tg_container_ssh NAME: sshd in host NAME (Debian's ssh.service; the host keys are the image's), so a controller
# reaches it as it reaches a real host. Root logs in with the key tg_container_up installed (TG_AUTHORIZED_KEYS).
tg_container_ssh() { tg_on "$1" systemctl start ssh.service; }
