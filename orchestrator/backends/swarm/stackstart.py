"""The start order of a stack deployed by hand (`docker stack deploy`), which
has none of its own: every agent's service runs this script first (copied into
the stack's setup/ folder by `testbed render --format stack`), and it execs the
agent only once

1. the agent's config names a contract that has code on the chain (the
   deploy step deploys the market and then writes its address and epoch into
   every config: an agent started before would trade with address zero), and
2. every agent of the tier before it answers `testbed_agent_ready 1` on its
   metrics port (recorder -> dso -> clock -> solvers -> prosumer hosts, as
   `testbed run` starts them).

    python start.py CONFIG [--after NAME ...] -- python -m agents ROLE --config CONFIG

Standard library only: it runs in the agent image before anything else.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

METRICS_PORT = 9100  # the agents' metrics port in their containers (docker/containers.py)
READY_LINE = b"testbed_agent_ready 1.0"
NO_CODE = ("", "0x", "0x0")
POLL_SECONDS = 1.0
TIMEOUT_SECONDS = 900.0  # image pulls on a slow node, the chain's start, the deploy
REQUEST_SECONDS = 5.0


def _post(url: str, method: str, params: list[object]) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as reply:
        return json.loads(reply.read()).get("result")


def deployed(config_path: str, post: Callable[[str, str, list[object]], object] = _post) -> str:
    """The contract address once the config names one with code on its chain; '' before."""
    try:
        with open(config_path) as fh:
            config = json.load(fh)
        address = str(config.get("contract_address") or "")
        if not address or int(address, 16) == 0:
            return ""
        code = post(str(config["rpc_url"]), "eth_getCode", [address, "latest"])
    except (OSError, ValueError, KeyError):  # half written, or the chain not up yet
        return ""
    return address if code not in NO_CODE else ""


def ready(name: str, port: int = METRICS_PORT) -> bool:
    try:
        url = f"http://{name}:{port}/metrics"
        with urllib.request.urlopen(url, timeout=REQUEST_SECONDS) as reply:
            return READY_LINE in reply.read()
    except (OSError, urllib.error.URLError):  # not resolvable or not listening yet
        return False


def wait(
    what: str, check: Callable[[], object], timeout: float, sleep: Callable[[float], None]
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"start: {what}: not within {timeout:.0f} s")
        sleep(POLL_SECONDS)


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    if "--" not in argv:
        raise SystemExit("start: usage: start.py CONFIG [--after NAME ...] -- COMMAND ...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="start.py")
    parser.add_argument("config")
    parser.add_argument("--after", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS)
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        raise SystemExit("start: no command after --")
    return args, command


def main(argv: Sequence[str]) -> None:
    args, command = parse(argv)
    say = lambda line: print(f"start: {line}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"waiting for the market contract in {args.config}")
    wait("the deploy step", lambda: deployed(args.config), args.timeout, time.sleep)
    for name in args.after:
        say(f"waiting for {name} to be ready")
        wait(f"{name} ready", functools.partial(ready, name), args.timeout, time.sleep)
    say(f"contract {deployed(args.config)}: starting {' '.join(command)}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
