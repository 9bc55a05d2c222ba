"""`testbed render SPEC --format compose`: the docker backend's containers as a
docker-compose project, so a user can read (or run by hand) what it does.

The services come from the same ContainerSpecs the backend starts (image,
command, limits, netem, labels, mounts); the compose project adds what the
orchestrator does itself in `testbed run`: a `deploy` step (the market
contract, then the contract address and epoch patched into every config) and
health checks instead of the orchestrator's readiness probes.

    text = render_compose(plan, images, out=Path("compose-smoke"))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from agents.common.typed import to_json, to_plain
from orchestrator.backends.base import Unit
from orchestrator.backends.docker.containers import (
    CHAIN_PORT,
    CONFIG_DIR,
    METRICS_PORT,
    ContainerSpec,
    chain_command,
    container_name,
    docker_placement,
    unit_spec,
)
from orchestrator.backends.docker.engine import LABEL_ORCHESTRATOR, LABEL_RUN, LABEL_SPEC
from orchestrator.hosts import PROFILES
from orchestrator.plan import DSO_ACCOUNT, Plan
from orchestrator.render import ChainInfo, agent_config, dev_key

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
PROMETHEUS_PORT = 9090
SETUP_DIR = "/testbed/setup"
CHAIN_TIMEOUT_SECONDS = 120
WALLCLOCK_MARGIN_SECONDS = 30.0  # + 2 s per agent: the tiers start after the deploy
UNDEPLOYED = "0x0000000000000000000000000000000000000000"  # deploy.py fills it in
ORCHESTRATOR = "compose"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # JSON scalars and lists are YAML; no HTML escaping (Jinja's own tojson does it)
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


def _python_check(code: str) -> list[str]:
    return ["CMD", "python3", "-c", code]


def agent_healthcheck(name: str) -> list[str]:
    url = f"http://{name}:{METRICS_PORT}/metrics"
    return _python_check(
        "import sys, urllib.request as u; "
        f"sys.exit(b'testbed_agent_ready 1.0' not in u.urlopen({url!r}, timeout=2).read())"
    )


def chain_healthcheck() -> list[str]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    return _python_check(
        "import urllib.request as u; "
        f"u.urlopen(u.Request('http://127.0.0.1:{CHAIN_PORT}', data={body!r}.encode(), "
        "headers={'Content-Type': 'application/json'}), timeout=2).read()"
    )


def _service(
    spec: ContainerSpec, images: Mapping[str, str], labels: dict[str, str]
) -> dict[str, Any]:
    profile = spec.profile
    return {
        "name": spec.unit,
        "image": images[spec.image_kind],
        "container_name": container_name(labels[LABEL_RUN], spec.unit),
        "command": list(spec.command),
        "environment": spec.env(labels[LABEL_RUN]),
        "labels": spec.labels(labels[LABEL_RUN], labels[LABEL_SPEC], ORCHESTRATOR),
        "volumes": [
            f"./{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts
        ],
        "cap_add": spec.cap_add,
        "mem_limit": f"{profile.memory_bytes // 2**20}m" if profile.memory_bytes else None,
        "cpus": f"{profile.nano_cpus / 1e9:g}" if profile.nano_cpus else None,
        "ports": [f"127.0.0.1:{h}:{c}" for c, h in spec.published.items()],
        "healthcheck": None,
        "depends_on": {},
        "restart": None,
    }


def render_compose(
    plan: Plan,
    images: Mapping[str, str],
    *,
    chain_id: int = 31337,
    accounts: int | None = None,
    scrape_seconds: float = 5.0,
    out: Path | None = None,
) -> str:
    """The compose file's text; with `out`, the whole project is written there
    (docker-compose.yaml, config/, out/, setup/deploy.py, prometheus/)."""
    from agents.chain.node import Anvil
    from orchestrator.scrapetargets import agent_targets, render_config

    run_id = plan.run_id
    labels = {LABEL_RUN: run_id, LABEL_SPEC: plan.spec_name, LABEL_ORCHESTRATOR: ORCHESTRATOR}
    services: list[dict[str, Any]] = []

    anvil = Anvil(
        binary="anvil",
        block_time=plan.block_time,
        chain_id=chain_id,
        accounts=max(accounts or 0, 2 + len(plan.by_role("solver"))),
    )
    chain = _service(
        ContainerSpec("chain", "chain", "chain", chain_command(anvil.command()), ""), images, labels
    )
    chain["healthcheck"] = chain_healthcheck()
    services.append(chain)

    deploy = _service(
        ContainerSpec(
            "deploy",
            "deploy",
            "agent",
            ("python", f"{SETUP_DIR}/deploy.py"),
            "",
        ),
        images,
        labels,
    )
    deploy["volumes"] = [f"./config:{CONFIG_DIR}:rw", f"./setup:{SETUP_DIR}:ro"]
    deploy["depends_on"] = {"chain": "service_healthy"}
    deploy["restart"] = "no"
    services.append(deploy)

    previous: list[str] = []
    for tier in plan.tiers():
        for agent in tier:
            host = plan.hosts.get(agent.name)
            unit = Unit(
                agent.name,
                agent.role,
                (
                    "python",
                    "-m",
                    "agents",
                    agent.role,
                    "--config",
                    f"{CONFIG_DIR}/{agent.name}.json",
                ),
                Path("/dev/null"),
            )
            spec = unit_spec(
                unit,
                "",
                config_dir=Path("config"),
                out_dir=Path("out") / agent.name,
                profile=host.profile if host else PROFILES["none"],
                netem=host.netem if host else None,
            )
            service = _service(spec, images, labels)
            service["healthcheck"] = agent_healthcheck(agent.name)
            service["depends_on"] = {"deploy": "service_completed_successfully"} | {
                name: "service_healthy" for name in previous
            }
            services.append(service)
        previous = [a.name for a in tier]

    prometheus = _service(
        ContainerSpec(
            "prometheus",
            "prometheus",
            "prometheus",
            (
                "prometheus",
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                f"--web.listen-address=0.0.0.0:{PROMETHEUS_PORT}",
            ),
            "",
            published={PROMETHEUS_PORT: PROMETHEUS_PORT},
        ),
        images,
        labels,
    )
    prometheus["volumes"] = ["./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"]
    services.append(prometheus)

    text = (
        _environment()
        .get_template("compose.yaml.j2")
        .render(
            run_id=run_id,
            spec_name=plan.spec_name,
            network_labels=labels,
            services=services,
            prometheus_port=PROMETHEUS_PORT,
        )
    )
    if out is not None:
        targets = agent_targets(plan, lambda name: f"{name}:{METRICS_PORT}")
        _write_project(
            out,
            plan,
            text,
            render_config(targets, interval_seconds=scrape_seconds, run_id=run_id),
            chain_id,
        )
    return text


def _write_project(out: Path, plan: Plan, compose: str, prometheus_yml: str, chain_id: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "docker-compose.yaml").write_text(compose)
    placement = docker_placement(plan, out, None)
    chain = ChainInfo(contract_address=UNDEPLOYED, chain_id=chain_id, epoch=0)
    (out / "config").mkdir(exist_ok=True)
    for agent in plan.agents:
        (out / "out" / agent.name).mkdir(parents=True, exist_ok=True)
        config = agent_config(plan, placement, chain, agent)
        (out / "config" / f"{agent.name}.json").write_text(to_json(config))
    (out / "setup").mkdir(exist_ok=True)
    params = {
        "rpc_url": placement.rpc_url,
        "config_dir": CONFIG_DIR,
        "chain_timeout_seconds": CHAIN_TIMEOUT_SECONDS,
        "dso_key": dev_key(DSO_ACCOUNT),
        "feeders": to_plain(plan.feeders),
        "market": to_plain(plan.market),
        "wallclock_margin_seconds": WALLCLOCK_MARGIN_SECONDS + 2 * len(plan.agents),
    }
    (out / "setup" / "deploy.json").write_text(json.dumps(params, indent=1) + "\n")
    deploy = _environment().get_template("deploy.py.j2").render(run_id=plan.run_id)
    (out / "setup" / "deploy.py").write_text(deploy)
    (out / "prometheus").mkdir(exist_ok=True)
    (out / "prometheus" / "prometheus.yml").write_text(prometheus_yml)
