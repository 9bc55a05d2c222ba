"""The swarm backend: the testbed as services on a Docker Swarm (backend.py;
services.py says what service runs a unit, nodes.py which node it runs on,
cluster.py the manager, the run's layout and images, resources.py the label
queries `cleanup` and `testbed clean` remove by)."""

from orchestrator.backends.swarm.backend import SwarmBackend

__all__ = ["SwarmBackend"]
