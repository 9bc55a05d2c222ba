"""Container images of the docker backend (Dockerfiles in images/).

`ensure_images(client, say=...)` returns an `ImageSet` of content-hashed tags,
building whatever is missing; see build.py (recipes, progress), base.py (the
base image: python:3.11-slim or the offline debootstrap base) and inputs.py
(hashes, build contexts, host-built wheels).
"""

from orchestrator.images.base import BaseImageError
from orchestrator.images.build import KINDS, ImageBuildError, ImageSet, ensure_images
from orchestrator.images.inputs import ImageInputError

__all__ = [
    "KINDS",
    "BaseImageError",
    "ImageBuildError",
    "ImageInputError",
    "ImageSet",
    "ensure_images",
]
