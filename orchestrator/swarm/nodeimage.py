"""The lab's node image: `testbed/node:<hash>` (images/node/ on the offline base).

The hash covers the base image's id and the files of images/node/, so the image
is built once and reused until one of them changes.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from typing import Any

from orchestrator.images.base import LABEL_IMAGE, LABEL_INPUTS, ensure_offline_base
from orchestrator.images.build import ImageBuildError, _stream_build, image_exists
from orchestrator.images.inputs import IMAGES_DIR, Digest

NODE_DIR = IMAGES_DIR / "node"
REPOSITORY = "testbed/node"
BUILD_TIMEOUT_SECONDS = 1800

Say = Callable[[str], None]


def node_tag(client: Any, say: Say = lambda _line: None) -> tuple[str, str]:
    """(tag, base) of the node image; the offline base is built if missing."""
    base = ensure_offline_base(client, say)
    digest = Digest().add("base", str(client.images.get(base).id).encode())
    for path in sorted(p for p in NODE_DIR.iterdir() if p.is_file()):
        digest.add_file(path.name, path)
    return f"{REPOSITORY}:{digest.hexdigest()}", base


def node_image(client: Any, say: Say = lambda _line: None) -> str:
    """The node image's tag, built when missing (apt needs the Debian mirror)."""
    tag, base = node_tag(client, say)
    if image_exists(client, tag):
        return tag
    started = time.monotonic()
    say(f"node: building {tag} FROM {base}")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for path in sorted(p for p in NODE_DIR.iterdir() if p.is_file()):
            tar.add(path, arcname=path.name)
    context.seek(0)
    _stream_build(
        client,
        "node",
        say,
        fileobj=context,
        custom_context=True,
        tag=tag,
        buildargs={"BASE": base},
        labels={LABEL_IMAGE: "node", LABEL_INPUTS: tag.partition(":")[2]},
        rm=True,
        forcerm=True,
        decode=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    if not image_exists(client, tag):
        raise ImageBuildError(f"node: the build finished without producing {tag}")
    say(f"node: built {tag} in {time.monotonic() - started:.1f} s")
    return tag
