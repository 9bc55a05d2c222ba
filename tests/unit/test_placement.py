"""orchestrator/placement.py: the one function that turns a backend's addresses
into endpoints, and the bundle's layout it places files in."""

from __future__ import annotations

from pathlib import Path

from orchestrator.placement import Address, Addresses, AgentAddress, placement
from orchestrator.results.bundle import Bundle


def test_addresses_become_endpoints_urls_and_bundle_files() -> None:
    addresses = Addresses(
        chain=Address("chain", 8545),
        chain_local=Address("10.1.0.2", 8545),
        dso=Address("dso", 5555),
        clock_pub=Address("clock", 5556),
        clock_pull=Address("clock", 5557),
        agents={
            "dso": AgentAddress(Address("0.0.0.0", 9100), "10.1.0.5", "/c/dso.json", "/out"),
        },
    )
    placed = placement(addresses, Path("/b"))
    assert (placed.rpc_url, placed.rpc_url_local) == ("http://chain:8545", "http://10.1.0.2:8545")
    assert placed.chain_port == 8545
    assert placed.dso_endpoint == "tcp://dso:5555"
    assert (placed.clock_pub_endpoint, placed.clock_pull_endpoint) == (
        "tcp://clock:5556",
        "tcp://clock:5557",
    )
    assert placed.chain_log == Path("/b/logs/chain.log")
    dso = placed.agents["dso"]
    assert (dso.metrics_host, dso.metrics_port) == ("0.0.0.0", 9100)
    assert dso.metrics_url == "http://10.1.0.5:9100/metrics"
    assert (dso.config_path, dso.out_dir) == ("/c/dso.json", "/out")  # the agent's view
    assert dso.config_file == Path("/b/config/dso.json")
    assert dso.log_file == Path("/b/logs/dso.log")


def test_bundle_layout(tmp_path: Path) -> None:
    bundle = Bundle.create(tmp_path, "smoke", "r1")
    assert bundle.path == (tmp_path / "smoke" / "r1").resolve()
    assert all((bundle.path / d).is_dir() for d in ("config", "events", "logs"))
    assert bundle.out_dir("recorder", "recorder") == bundle.events
    assert bundle.out_dir("prosumers-01", "prosumer") == bundle.path / "agents" / "prosumers-01"
    assert bundle.config_file("dso") == bundle.config_dir / "dso.json"
    assert bundle.make_dirs() == bundle  # idempotent: backends call it again
