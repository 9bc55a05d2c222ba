"""Build the testbed's images with the Docker Engine API (low-level client,
streaming the build output as progress).

    images = ensure_images(client, say=print)         # build what is missing
    images.agent, images.chain, images.prometheus     # tags to run

Recipes: for each kind, the cheap inputs that make its hash and the build
context (made only when the tag is missing). Tags are
`testbed/<kind>:<inputs hash>`; images carry the labels `testbed.image=<kind>`,
`testbed.inputs=<hash>`, and `testbed.run=<run id>` when a run built them.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.errors import TestbedError
from orchestrator.images.base import LABEL_IMAGE, LABEL_INPUTS, resolve_base
from orchestrator.images.inputs import (
    AGENT_PACKAGES,
    ENTRYPOINT,
    IMAGES_DIR,
    NETEM_QUEUE,
    REPO,
    Context,
    Wheelhouse,
    build_project_wheel,
    source_files,
)

KINDS = ("agent", "chain", "prometheus")
REPOSITORY = "testbed/{kind}"
LABEL_RUN = "testbed.run"
BUILD_TIMEOUT_SECONDS = 1800
BUILD_LOG_TAIL = 20

Say = Callable[[str], None]


class ImageBuildError(TestbedError):
    """An image did not build (the message ends with the build's last lines)."""

    exit_code = 1


def anvil_path() -> Path:
    return REPO / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def prometheus_path() -> Path:
    found = shutil.which("prometheus")
    return Path(found) if found else Path("/usr/bin/prometheus")


@dataclass(frozen=True)
class ImageSet:
    base: str
    agent: str
    chain: str
    prometheus: str

    def of(self, kind: str) -> str:
        return str(getattr(self, kind))

    def as_dict(self) -> dict[str, str]:
        return {"base": self.base, **{k: self.of(k) for k in KINDS}}


class Recipe:
    """One image kind: its hash inputs and its build context."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.dockerfile = IMAGES_DIR / kind / "Dockerfile"
        self._wheelhouse: Wheelhouse | None = None

    def hash_context(self) -> Context:
        """What the hash covers (cheap: no wheels are built here)."""
        ctx = self._common()
        if self.kind == "agent":
            wheels = self.wheelhouse()
            ctx.add_text("wheels.key", wheels.key)
            for name, path in source_files(REPO, AGENT_PACKAGES):
                ctx.add_file(f"project/{name}", path)
        elif self.kind == "chain":
            ctx.add_file("anvil", anvil_path())
        elif self.kind == "prometheus":
            ctx.add_file("prometheus", prometheus_path())
            self._add_web(ctx)
        return ctx

    def _common(self) -> Context:
        ctx = Context()
        ctx.add_file("Dockerfile", self.dockerfile)
        ctx.add_file("entrypoint.sh", ENTRYPOINT)
        ctx.add_file("netem_queue.py", NETEM_QUEUE)
        return ctx

    def wheelhouse(self) -> Wheelhouse:
        if self._wheelhouse is None:
            self._wheelhouse = Wheelhouse.for_agents()
        return self._wheelhouse

    def _add_web(self, ctx: Context) -> None:
        web = Path("/usr/share/prometheus/web")
        if web.is_dir():
            ctx.add_tree("web", web)
        else:
            ctx.add_text("web/README", "no web assets on the build host\n")

    def build_context(self, scratch: Path, say: Say) -> Context:
        """The context sent to the engine (agent: wheels built here if needed)."""
        if self.kind != "agent":
            return self.hash_context()
        ctx = self._common()
        ctx.add_tree("wheels", self.wheelhouse().ensure(say))
        say("agent: building the project wheel (agents, market)")
        wheel = build_project_wheel(scratch, __version__)
        ctx.add_file(f"project/{wheel.name}", wheel)
        return ctx

    def tag(self, base_id: str) -> str:
        digest = self.hash_context().digest(extra=[("base", base_id)])
        return f"{REPOSITORY.format(kind=self.kind)}:{digest}"


def image_exists(client: Any, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_images(
    client: Any,
    *,
    kinds: Sequence[str] = KINDS,
    say: Say = lambda _line: None,
    run_id: str | None = None,
    policy: str | None = None,
    rebuild: bool = False,
    overrides: Mapping[str, str] | None = None,
) -> ImageSet:
    """Tags of every image, building those that are missing (or all: `rebuild`).
    `overrides` {kind: image}: use that image (it must exist) instead of building."""
    overrides = dict(overrides or {})
    for kind, ref in overrides.items():
        if not image_exists(client, ref):
            raise ImageBuildError(f"{kind}: image {ref!r} (override) does not exist")
    if all(kind in overrides for kind in KINDS):
        return ImageSet(base="", **{k: overrides[k] for k in KINDS})
    base, offline = resolve_base(client, say, policy)
    base_id = str(client.images.get(base).id)
    tags: dict[str, str] = {}
    for kind in KINDS:
        if kind in overrides:
            tags[kind] = overrides[kind]
            say(f"{kind}: {overrides[kind]} (override)")
            continue
        recipe = Recipe(kind)
        tag = recipe.tag(base_id)
        tags[kind] = tag
        if kind not in kinds:
            continue
        if not rebuild and image_exists(client, tag):
            say(f"{kind}: {tag} (up to date)")
            continue
        build_image(client, recipe, tag, base, say, run_id=run_id, offline=offline)
    return ImageSet(base=base, **tags)


def build_image(
    client: Any,
    recipe: Recipe,
    tag: str,
    base: str,
    say: Say,
    *,
    run_id: str | None = None,
    offline: bool = True,
) -> None:
    started = time.monotonic()
    say(f"{recipe.kind}: building {tag} FROM {base}")
    scratch = Path(tempfile.mkdtemp(prefix=f"testbed-{recipe.kind}-"))
    try:
        context = recipe.build_context(scratch, say)
        archive = io.BytesIO()
        context.tar(archive)
        archive.seek(0)
        labels = {LABEL_IMAGE: recipe.kind, LABEL_INPUTS: tag.rsplit(":", 1)[1]}
        if run_id:
            labels[LABEL_RUN] = run_id
        _stream_build(
            client,
            recipe.kind,
            say,
            fileobj=archive,
            custom_context=True,
            tag=tag,
            buildargs={"BASE": base},
            labels=labels,
            rm=True,
            forcerm=True,
            decode=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            # the offline base has everything: prove that the build needs no network
            network_mode="none" if offline else None,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not image_exists(client, tag):
        raise ImageBuildError(f"{recipe.kind}: the build finished without producing {tag}")
    say(f"{recipe.kind}: built {tag} in {time.monotonic() - started:.1f} s")


def _stream_build(client: Any, kind: str, say: Say, **kwargs: Any) -> None:
    import docker.errors

    log: list[str] = []
    try:
        for chunk in client.api.build(**kwargs):
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise ImageBuildError(_failure(kind, str(detail), log))
            text = str(chunk.get("stream", "")).rstrip()
            if not text:
                continue
            log.extend(text.splitlines())
            for line in text.splitlines():
                if line.startswith("Step "):
                    say(f"{kind}: {line}")
    except docker.errors.APIError as exc:
        raise ImageBuildError(_failure(kind, str(exc), log)) from exc


def _failure(kind: str, why: str, log: list[str]) -> str:
    tail = "\n".join(f"  | {line}" for line in log[-BUILD_LOG_TAIL:])
    return f"image {kind} failed to build: {why.strip()}" + (f"\n{tail}" if tail else "")


def images_for_clean(client: Any) -> list[Any]:
    """Every image the testbed built (label testbed.image)."""
    return list(client.images.list(filters={"label": LABEL_IMAGE}))


def planned_tags(client: Any, policy: str | None = None) -> dict[str, str] | None:
    """The tags `ensure_images` would return, without building or pulling
    anything; None when the base image is not in the engine yet."""
    from orchestrator.images.base import SLIM_IMAGE, base_policy, offline_tag

    policy = base_policy(policy)
    if policy == "offline":
        candidates = [offline_tag()]
    elif policy == "auto":
        candidates = [SLIM_IMAGE, offline_tag()]
    else:
        candidates = [policy]
    base = next((ref for ref in candidates if image_exists(client, ref)), None)
    if base is None:
        return None
    base_id = str(client.images.get(base).id)
    return {"base": base, **{kind: Recipe(kind).tag(base_id) for kind in KINDS}}
