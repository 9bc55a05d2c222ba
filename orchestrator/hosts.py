"""Testbed hosts: the spec's `deployment.hosts` as plain data (pure, no I/O).

A host runs one prosumer host process (docker: one container). A spec entry
with `count: N` is a group of N identical hosts named `<name>-01..<name>-N`.
Profiles limit a host's CPU and memory the way the paper's boards were
limited; netem shapes its outgoing traffic.

Placement: prosumers listed on a host (or group) go there (spread evenly over
a group, in order); every other prosumer is spread evenly, in feeder order,
over the hosts without a list, at most `prosumers_per_host` each when the spec
sets it. Hosts left without prosumers run nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from orchestrator.errors import TestbedError


class HostsError(TestbedError):
    exit_code = 2


@dataclass(frozen=True, slots=True)
class Profile:
    """Resource limits of a testbed host's container."""

    name: str
    memory_bytes: int | None = None
    nano_cpus: int | None = None  # 1e9 = one core
    description: str = ""


PROFILES: dict[str, Profile] = {
    "none": Profile("none", description="no limits"),
    # BeagleBone Black: 512 MB RAM, one 1 GHz Cortex-A8 core, which runs Python
    # at roughly half the speed of one core of a current x86 server.
    "bbb": Profile(
        "bbb",
        memory_bytes=512 * 2**20,
        nano_cpus=500_000_000,
        description="BeagleBone Black: 512 MB, half a core",
    ),
}


@dataclass(frozen=True, slots=True)
class Netem:
    """Emulated link of a host (its outgoing traffic)."""

    delay_ms: float = 0
    jitter_ms: float = 0
    loss_percent: float = 0
    rate_kbit: int = 0  # 0: unlimited

    @property
    def active(self) -> bool:
        return bool(self.delay_ms or self.jitter_ms or self.loss_percent or self.rate_kbit)

    def env(self) -> dict[str, str]:
        """The images' entrypoint settings (images/common/entrypoint.sh)."""
        if not self.active:
            return {}
        return {
            "TESTBED_NETEM_DELAY_MS": f"{self.delay_ms:g}",
            "TESTBED_NETEM_JITTER_MS": f"{self.jitter_ms:g}",
            "TESTBED_NETEM_LOSS_PERCENT": f"{self.loss_percent:g}",
            "TESTBED_NETEM_RATE_KBIT": str(self.rate_kbit),
        }

    def describe(self) -> str:
        parts = []
        if self.delay_ms or self.jitter_ms:
            parts.append(
                f"delay {self.delay_ms:g} ms" + (f" ±{self.jitter_ms:g}" if self.jitter_ms else "")
            )
        if self.loss_percent:
            parts.append(f"loss {self.loss_percent:g} %")
        if self.rate_kbit:
            parts.append(f"rate {self.rate_kbit / 1000:g} Mbit/s")
        return ", ".join(parts) or "none"


@dataclass(frozen=True, slots=True)
class HostParams:
    """One testbed host (after expanding groups)."""

    name: str
    profile: Profile = PROFILES["none"]
    netem: Netem = field(default_factory=Netem)
    prosumers: tuple[int, ...] | None = None  # explicit placement


class _HostSpec(Protocol):
    """What expand_hosts reads from a spec host entry (spec.model.HostConfig)."""

    @property
    def name(self) -> str: ...
    @property
    def profile(self) -> str | None: ...
    @property
    def count(self) -> int | None: ...
    @property
    def prosumers(self) -> tuple[int, ...] | None: ...
    @property
    def netem(self) -> object | None: ...


def netem_of(config: object | None) -> Netem:
    """A spec `netem:` section (spec.model.NetemConfig) as a Netem."""
    if config is None:
        return Netem()
    rate = getattr(config, "rate_mbit", None)
    return Netem(
        delay_ms=float(getattr(config, "latency_ms", 0) or 0),
        jitter_ms=float(getattr(config, "jitter_ms", 0) or 0),
        loss_percent=float(getattr(config, "loss_percent", 0) or 0),
        rate_kbit=round(float(rate) * 1000) if rate else 0,
    )


def expand_hosts(hosts: Sequence[_HostSpec]) -> tuple[HostParams, ...]:
    """One HostParams per host; groups (count > 1) become numbered hosts."""
    out: list[HostParams] = []
    for entry in hosts:
        profile_name = entry.profile or "none"
        if profile_name not in PROFILES:
            raise HostsError(
                f"deployment.hosts: {entry.name}: unknown profile {profile_name!r} "
                f"(known: {', '.join(PROFILES)})"
            )
        profile, netem = PROFILES[profile_name], netem_of(entry.netem)
        count = entry.count or 1
        if count == 1:
            out.append(HostParams(entry.name, profile, netem, entry.prosumers))
            continue
        width = max(2, len(str(count)))
        shares: list[list[int] | None] = (
            list(_spread(list(entry.prosumers), count)) if entry.prosumers else [None] * count
        )
        for i, share in enumerate(shares):
            out.append(
                HostParams(
                    f"{entry.name}-{i + 1:0{width}d}",
                    profile,
                    netem,
                    tuple(share) if share is not None else None,
                )
            )
    names = [h.name for h in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise HostsError(f"deployment.hosts: duplicate host names {', '.join(duplicates)}")
    return tuple(out)


T = TypeVar("T")


def _spread(items: Sequence[T], n: int) -> list[list[T]]:
    """`items` in n consecutive groups whose sizes differ by at most one."""
    size, extra = divmod(len(items), n)
    groups, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return groups


class _Prosumer(Protocol):
    @property
    def id(self) -> int: ...


P = TypeVar("P", bound=_Prosumer)


def place_prosumers(
    prosumers: Sequence[P], hosts: Sequence[HostParams], per_host: int | None = None
) -> list[tuple[HostParams, tuple[P, ...]]]:
    """(host, its prosumers) for every host that gets at least one, in host order."""
    by_id = {p.id: p for p in prosumers}
    placed: dict[str, list[P]] = {h.name: [] for h in hosts}
    taken: dict[int, str] = {}
    for host in hosts:
        for pid in host.prosumers or ():
            if pid not in by_id:
                raise HostsError(
                    f"deployment.hosts: {host.name}: prosumer {pid} is not in the dataset"
                )
            if pid in taken:
                raise HostsError(
                    f"deployment.hosts: prosumer {pid} placed on both {taken[pid]} and {host.name}"
                )
            taken[pid] = host.name
            placed[host.name].append(by_id[pid])
    rest = [p for p in prosumers if p.id not in taken]
    open_hosts = [h for h in hosts if h.prosumers is None]
    if rest and not open_hosts:
        missing = ", ".join(str(p.id) for p in rest[:10])
        raise HostsError(
            f"deployment.hosts: no host left for prosumers {missing}"
            + (" ..." if len(rest) > 10 else "")
        )
    if per_host is not None:
        if per_host * len(open_hosts) < len(rest):
            raise HostsError(
                f"deployment.hosts: {len(rest)} prosumers do not fit on {len(open_hosts)} "
                f"hosts with prosumers_per_host {per_host}"
            )
        shares = [rest[i * per_host : (i + 1) * per_host] for i in range(len(open_hosts))]
    else:
        shares = _spread(rest, len(open_hosts)) if open_hosts else []
    for host, share in zip(open_hosts, shares, strict=True):
        placed[host.name].extend(share)
    return [(h, tuple(placed[h.name])) for h in hosts if placed[h.name]]
