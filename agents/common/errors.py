"""Exceptions of the agents package.

`agents` must not import `orchestrator`, so it has its own root, `AgentError`.
An agent's `run()` lets these escape; `agents.__main__` turns them into one
log line and a non-zero exit code.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error raised on purpose by an agent."""


class ConfigError(AgentError):
    """The agent's config file is missing, malformed or inconsistent."""


class ProtocolError(AgentError):
    """A ZeroMQ message could not be decoded or is not valid for its type."""


class LockstepTimeout(AgentError):
    """The clock waited too long for reports; the message names who is missing."""


class PeerTimeout(AgentError):
    """A request to a peer (e.g. the DSO) got no reply in time."""


class StopRequested(AgentError):
    """The agent was asked to stop (SIGTERM) while it waited for a peer's reply."""
