#!/bin/sh
# Runs a swarm node's own dockerd in the foreground (its log is the container's).
#
# The lab starts the container without --privileged (refused on these machines):
# every capability but SYS_RESOURCE, seccomp and AppArmor unconfined, the host's
# cgroup namespace with /sys/fs/cgroup mounted read-write, under an init (docker-init
# reaps the shims dockerd leaves). The node is a cgroup subtree /<node name> of its
# own: this container sits in /<node name>/<id> (the lab's cgroup parent and CPU
# weight), and dockerd puts the node's containers under /<node name>/containers, whose
# cpu.shares is set here below the engine's (the lab removes those subtrees when it
# removes the node).
#
# The node's containers run with crun (TESTBED_NODE_RUNTIME; runc is known too), and
# the engine's Go programs with GOGC=400 (a 1 GiB soft limit): dockerd re-executes
# its 75 MB binary three times per container it starts (libnetwork-setkey, set-ipv6,
# setup-resolver), and each of those spent a fifth of its CPU in the garbage
# collector at Go's default of 100 (README, "make a swarm of real machines").
#
# The node's eth0 is on this machine's docker0 (172.17.0.0/16, where the manager
# and the registry are), so the node's own bridges take addresses elsewhere.
set -eu
name=${TESTBED_NODE_NAME:-$(hostname)}
bip=${TESTBED_NODE_BIP:-192.168.240.1/24}
pool=${TESTBED_NODE_POOL:-base=192.168.0.0/16,size=24}
# not "tasks": every cgroup v1 directory has a file of that name
workload="/$name/containers"
shares=${TESTBED_TASKS_CPU_SHARES:-1024}
runtime=${TESTBED_NODE_RUNTIME:-crun}
export GOGC="${GOGC:-400}" GOMEMLIMIT="${GOMEMLIMIT:-1GiB}"
if [ -d /sys/fs/cgroup/cpu ] && mkdir -p "/sys/fs/cgroup/cpu$workload"; then
  echo "$shares" > "/sys/fs/cgroup/cpu$workload/cpu.shares" || true
fi
# A hybrid host (cgroup v1 controllers plus a v2 hierarchy with a controller of its
# own) is one crun refuses to run containers on: the node's containers use the v1
# hierarchies only, so the v2 one is taken out of the node's view.
if [ -d /sys/fs/cgroup/cpu ] && mountpoint -q /sys/fs/cgroup/unified; then
  umount /sys/fs/cgroup/unified || true
fi
# mounts made by the node's containers (volumes, overlay2) propagate as on a host
mount --make-rshared / 2>/dev/null || true
# a restarted node (its engine stopped by a fault) keeps the old run state: dockerd's and
# containerd's pid files and sockets there make containerd time out, and the node stays Down
rm -rf /var/run/docker.pid /var/run/docker
exec dockerd --host unix:///var/run/docker.sock --cgroup-parent "$workload" \
  --bip "$bip" --default-address-pool "$pool" \
  --add-runtime crun=/usr/bin/crun --default-runtime "$runtime" "$@"
