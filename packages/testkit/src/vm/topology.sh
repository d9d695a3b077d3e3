# Network topology helpers for scenario scripts run inside the QEMU guest (bash; source this file).
# Everything lives in a private range used only inside the guest: a bridge br0 in the root namespace
# and one network namespace per host, each joined to br0 by a veth pair (eth0 inside the namespace,
# v-<name> on the bridge). Addresses come from variables that topology.ts exports before sourcing:
# TG_PREFIX (e.g. 10.99.0), TG_VIP, TG_CLIENT_IP, TG_DIRECTOR_IP, TG_BRIDGE_IP, TG_RS_BASE
# (real server i gets $TG_PREFIX.$((TG_RS_BASE + i))).

# tg_rs_ip I: the address of real server I (1-based).
tg_rs_ip() { echo "$TG_PREFIX.$((TG_RS_BASE + $1))"; }

# tg_ns_add NAME ADDR: a namespace NAME with eth0=ADDR/24 on br0 and lo up.
tg_ns_add() {
  local name=$1 addr=$2
  ip netns add "$name"
  ip link add "v-$name" type veth peer name eth0 netns "$name"
  ip link set "v-$name" master br0 up
  ip -n "$name" link set lo up
  ip -n "$name" addr add "$addr/24" dev eth0
  ip -n "$name" link set eth0 up
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
