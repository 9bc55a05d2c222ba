#!/bin/sh
# Entrypoint of every testbed image: network emulation for this testbed host,
# then the command (under the engine's init, which forwards SIGTERM to it).
#
# Egress of TESTBED_NETEM_DEV is shaped (default: the interface with a route to
# TESTBED_NETEM_SUBNET, the run's network on a swarm task that is also on the
# run's edge network; else eth0, the run's network), by
#   TESTBED_NETEM_DELAY_MS, TESTBED_NETEM_JITTER_MS, TESTBED_NETEM_LOSS_PERCENT,
#   TESTBED_NETEM_RATE_KBIT (unset or 0: not emulated).
# TESTBED_NETEM_MODE: kernel (tc qdisc netem), userspace (tc tbf for the rate,
# NFQUEUE + netem_queue.py for delay, jitter and loss: for kernels built
# without sch_netem), auto (default: kernel if it has netem, else userspace).
# Needs CAP_NET_ADMIN only (never --privileged).
set -eu
say() { echo "testbed-entrypoint: $*" >&2; }
fail() { say "$*"; exit 70; }

dev=${TESTBED_NETEM_DEV:-}
subnet=${TESTBED_NETEM_SUBNET:-}
delay=${TESTBED_NETEM_DELAY_MS:-0}
jitter=${TESTBED_NETEM_JITTER_MS:-0}
loss=${TESTBED_NETEM_LOSS_PERCENT:-0}
rate=${TESTBED_NETEM_RATE_KBIT:-0}
mode=${TESTBED_NETEM_MODE:-auto}
queue_script=/usr/local/lib/testbed/netem_queue.py

nonzero() { [ -n "$1" ] && [ "$1" != 0 ] && [ "$1" != 0.0 ]; }

netem_kernel() {
  set -- delay "${delay}ms"
  nonzero "$jitter" && set -- "$@" "${jitter}ms"
  nonzero "$loss" && set -- "$@" loss "${loss}%"
  nonzero "$rate" && set -- "$@" rate "${rate}kbit"
  tc qdisc replace dev "$dev" root netem "$@" 2>&1
}

netem_userspace() {
  if nonzero "$rate"; then
    burst=$((rate * 125 / 100)) # 10 ms at the rate, in bytes
    [ "$burst" -lt 16384 ] && burst=16384
    tc qdisc replace dev "$dev" root tbf rate "${rate}kbit" burst "$burst" latency 1s ||
      fail "tc tbf rate ${rate}kbit on $dev failed"
  fi
  if nonzero "$delay" || nonzero "$jitter" || nonzero "$loss"; then
    ready=/tmp/testbed-netem.ready
    rm -f "$ready"
    python3 "$queue_script" --queue 0 --delay-ms "$delay" --jitter-ms "$jitter" \
      --loss-percent "$loss" --ready-file "$ready" &
    queue_pid=$!
    i=0
    while [ ! -s "$ready" ]; do
      kill -0 "$queue_pid" 2>/dev/null || fail "netem_queue.py exited before it was ready"
      i=$((i + 1))
      [ "$i" -gt 200 ] && fail "netem_queue.py not ready after 10 s"
      sleep 0.05
    done
    iptables -w -t mangle -A POSTROUTING -o "$dev" -j NFQUEUE --queue-num 0 ||
      fail "iptables NFQUEUE rule on $dev failed"
  fi
}

# The interface of the run's network: the one with the route to its subnet.
run_dev() {
  ip -o route get "${subnet%/*}" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p'
}

if nonzero "$delay" || nonzero "$jitter" || nonzero "$loss" || nonzero "$rate"; then
  if [ -z "$dev" ] && [ -n "$subnet" ]; then
    dev=$(run_dev)
    [ -n "$dev" ] || fail "no interface on the run's network $subnet"
  fi
  dev=${dev:-eth0}
  what="delay ${delay}ms jitter ${jitter}ms loss ${loss}% rate ${rate}kbit on $dev"
  case "$mode" in
  kernel)
    err=$(netem_kernel) || fail "tc qdisc netem failed ($what): $err"
    say "netem (kernel): $what"
    ;;
  userspace)
    netem_userspace
    say "netem (userspace): $what"
    ;;
  auto)
    if err=$(netem_kernel); then
      say "netem (kernel): $what"
    else
      say "kernel netem unavailable ($err); emulating in userspace"
      netem_userspace
      say "netem (userspace): $what"
    fi
    ;;
  *) fail "TESTBED_NETEM_MODE=$mode: expected kernel, userspace or auto" ;;
  esac
fi
exec "$@"
