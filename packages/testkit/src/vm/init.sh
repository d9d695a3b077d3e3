#!/bin/sh
# /init of the tiergate test guest (busybox sh, PID 1). Rendered by initramfs.ts, which fills in the module list
# by the module list. Mounts the host root read-only over 9p with a tmpfs overlay on top, mounts the
# per-run scratch share, runs /tg-scratch/run.sh in a chroot, stores its output there, and powers off.
# Lines starting with "tg-init:" on the console are the harness's progress markers.
export PATH=/bin
log() { echo "tg-init: $*" > /dev/console; }
halt() { log "$*"; sync; poweroff -f; sleep 5; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
log "start $(cut -d' ' -f1 /proc/uptime)"

# The order matters: libcrc32c (needed by ip_vs) fails with "unknown symbol" unless a crc32c
# provider is loaded first. Load what exists, log what fails, and let the scenario decide.
for m in @MODULES@; do
  modprobe "$m" 2> /tmp/modprobe.err || log "modprobe $m failed: $(cat /tmp/modprobe.err)"
done
log "modules $(cut -d' ' -f1 /proc/uptime)"

mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host || halt "mount hostroot failed"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || halt "mount overlay failed"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
# `ip netns add` needs a writable /run/netns. /tmp stays the overlay's (writable, in RAM): a fresh tmpfs
# there would hide a checkout that lives under the host's /tmp (a CI clone may).
mount -t tmpfs tmpfs /newroot/run
mkdir -p /newroot/tg-scratch /newroot/root
# cache=none: every write reaches the host at once, so output survives a hard poweroff.
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 work /newroot/tg-scratch || halt "mount scratch failed"
hostname tg-guest

log "run $(cut -d' ' -f1 /proc/uptime)"
# The new root goes ON TOP of / (as switch_root does), not merely chroot'ed into: the kernel refuses user
# namespaces to a chroot'ed process (unshare(CLONE_NEWUSER): EPERM), and systemd units with PrivateUsers= (Debian's
# redis-server.service) need them inside the guest's containers. From here on this shell works relative to its
# cwd, the new root; /bin/busybox is there too (busybox-static).
cd /newroot
mount --move . / || halt "moving the new root failed"
chroot . /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root TERM=dumb LANG=C.UTF-8 TG_SCRATCH=/tg-scratch \
  /bin/bash -c 'cd /tg-scratch && exec /bin/bash /tg-scratch/run.sh' \
  > ./tg-scratch/stdout 2> ./tg-scratch/stderr < /dev/null
code=$?
echo "$code" > ./tg-scratch/exit-code
log "exit $code $(cut -d' ' -f1 /proc/uptime)"
/bin/busybox sync
/bin/busybox umount ./tg-scratch
/bin/busybox poweroff -f
sleep 5
