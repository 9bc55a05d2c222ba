"""until_reachable: a JSON-RPC peer that starts listening late is waited for;
an error that is not about reaching it is raised at once."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from agents.common.errors import AgentError
from agents.common.rpc import JsonRpc
from agents.common.startup import until_reachable

LATE_SECONDS = 1.5


class Answer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x01"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_peer_that_listens_late_is_reached() -> None:
    port = free_port()
    servers: list[HTTPServer] = []

    def listen() -> None:
        servers.append(HTTPServer(("127.0.0.1", port), Answer))
        servers[0].serve_forever()

    threading.Timer(LATE_SECONDS, listen).start()
    rpc = JsonRpc(f"http://127.0.0.1:{port}/", timeout=5)
    started = time.monotonic()
    try:
        assert until_reachable("chain", lambda: rpc.call("eth_getCode", [])) == "0x01"
        assert time.monotonic() - started >= LATE_SECONDS
    finally:
        rpc.close()
        while not servers:
            time.sleep(0.05)
        servers[0].shutdown()


def test_other_errors_are_raised_at_once() -> None:
    calls: list[int] = []

    def wrong() -> None:
        calls.append(1)
        raise AgentError("no contract at 0x0")

    with pytest.raises(AgentError, match="no contract"):
        until_reachable("chain", wrong)
    assert calls == [1]


def test_an_unreachable_peer_is_given_up_after_the_deadline() -> None:
    rpc = JsonRpc(f"http://127.0.0.1:{free_port()}/", timeout=1)
    with pytest.raises(AgentError, match="JSON-RPC"):
        until_reachable("chain", lambda: rpc.call("eth_getCode", []), seconds=1.0)
