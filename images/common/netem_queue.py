"""Userspace network emulation for kernels without sch_netem (stdlib only).

    python3 netem_queue.py --queue 0 --delay-ms 50 --jitter-ms 5 --loss-percent 1 \
        --ready-file /run/netem.ready

The entrypoint sends the container's egress packets to NFQUEUE `--queue`
(iptables mangle POSTROUTING -o eth0 -j NFQUEUE); this process receives each
packet's id over nfnetlink_queue (metadata only, no payload copy), drops it
with probability loss, otherwise accepts it after delay +- jitter (uniform),
never reordering packets (like netem with a rate). `tc netem` does the same in
the kernel where it exists; the entrypoint prefers that. Needs CAP_NET_ADMIN.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NF_DROP = 0
NF_ACCEPT = 1
QUEUE_MAXLEN = 8192
RCVBUF = 8 << 20


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


class Queue:
    def __init__(self, number: int) -> None:
        self.number = number
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((0, 0))
        self.seq = 0

    def _send(self, msg_type: int, attrs: bytes, flags: int = NLM_F_REQUEST) -> None:
        self.seq += 1
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.number) + attrs
        header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags,
                             self.seq, 0)  # fmt: skip
        self.sock.send(header + body)

    def _ack(self) -> None:
        data = self.sock.recv(65536)
        _length, kind = struct.unpack_from("=IH", data, 0)
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", data, 16)
            if error != 0:
                raise OSError(-error, f"nfqueue config: {os.strerror(-error)}")

    def bind(self) -> None:
        cmd = struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)
        self._send(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_CMD, cmd), NLM_F_REQUEST | NLM_F_ACK)
        self._ack()
        params = struct.pack("!IB", 0, NFQNL_COPY_META)
        maxlen = struct.pack("!I", QUEUE_MAXLEN)
        attrs = _attr(NFQA_CFG_PARAMS, params) + _attr(NFQA_CFG_QUEUE_MAXLEN, maxlen)
        self._send(NFQNL_MSG_CONFIG, attrs, NLM_F_REQUEST | NLM_F_ACK)
        self._ack()

    def packets(self) -> list[int]:
        """Ids of the packets waiting in the socket (non-blocking)."""
        ids: list[int] = []
        while True:
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return ids
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    pid = _packet_id(data[offset + 20 : offset + length])
                    if pid is not None:
                        ids.append(pid)
                offset += (length + 3) & ~3

    def verdict(self, packet_id: int, verdict: int) -> None:
        self._send(
            NFQNL_MSG_VERDICT, _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))
        )


def _packet_id(attrs: bytes) -> int | None:
    offset = 0
    while offset + 4 <= len(attrs):
        length, kind = struct.unpack_from("=HH", attrs, offset)
        if length < 4:
            return None
        if kind & 0x7FFF == NFQA_PACKET_HDR:
            return int(struct.unpack_from("!I", attrs, offset + 4)[0])
        offset += (length + 3) & ~3
    return None


def run(args: argparse.Namespace) -> None:
    queue = Queue(args.queue)
    queue.bind()
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    delay, jitter, loss = args.delay_ms / 1000, args.jitter_ms / 1000, args.loss_percent / 100
    pending: list[tuple[float, int]] = []  # (release time, packet id)
    last_release = 0.0
    while True:
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        readable, _, _ = select.select([queue.sock], [], [], timeout)
        now = time.monotonic()
        if readable:
            for packet_id in queue.packets():
                if loss and random.random() < loss:
                    queue.verdict(packet_id, NF_DROP)
                    continue
                wait = max(0.0, delay + random.uniform(-jitter, jitter))
                last_release = max(now + wait, last_release)  # no reordering
                heapq.heappush(pending, (last_release, packet_id))
        while pending and pending[0][0] <= time.monotonic():
            queue.verdict(heapq.heappop(pending)[1], NF_ACCEPT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss-percent", type=float, default=0.0)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run(args)
    except OSError as exc:
        print(f"netem_queue: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
