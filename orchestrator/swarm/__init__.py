"""A Docker Swarm on this machine for trying and testing the swarm backend.

- `lab.Lab`: this engine as manager plus worker nodes that are containers
  running their own dockerd (`Lab.up(workers=2)`, `lab.down()`);
- `registry.Registry`: the private registry (Debian's `docker-registry`, TLS
  with a self-signed certificate) the nodes pull the testbed's images from;
- `nodeimage.node_image`: the node containers' image (images/node/).
"""

from orchestrator.swarm.lab import Lab, LabError, LabNode
from orchestrator.swarm.registry import Registry, RegistryError

__all__ = ["Lab", "LabError", "LabNode", "Registry", "RegistryError"]
