"""The docker backend: the testbed as containers on one Docker Engine
(backend.py; containers.py says what runs in each container, engine.py holds
the labels and label queries, network.py the run's private network)."""

from orchestrator.backends.docker.backend import DockerBackend

__all__ = ["DockerBackend"]
