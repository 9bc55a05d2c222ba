"""Logging for agents: stderr, one line per event, `time level role/name: message`."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(agent)s: %(message)s"


class _AgentFilter(logging.Filter):
    def __init__(self, agent: str) -> None:
        super().__init__()
        self.agent = agent

    def filter(self, record: logging.LogRecord) -> bool:
        record.agent = self.agent
        return True


def setup_logging(role: str, name: str, level: str = "INFO") -> logging.Logger:
    """Configure the root logger for this process and return the agent's logger.

    Every record is prefixed with `role/name`; third-party chatter (web3, urllib3)
    is kept at WARNING unless the level asks for DEBUG.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_AgentFilter(f"{role}/{name}"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    if root.level > logging.DEBUG:
        for noisy in ("web3", "urllib3", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(f"agents.{role}")
