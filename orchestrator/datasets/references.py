"""A spec's references into its dataset, checked before the dataset is read.

The transax directory must exist and hold traces; every selected feeder and
prosumer must be in the dataset. Ids come from the file names (transax) or are
computed (synthetic): nothing is generated or parsed, so this is fast. Each
problem starts with `where(dotted path)`, the spec's `file:line:col: path`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.datasets.synthetic import synthetic_prosumer_ids
from orchestrator.datasets.transax import transax_prosumer_ids
from orchestrator.errors import DatasetError

BASE = "microgrid.dataset"
Where = Callable[[str], str]


def check_references(
    kind: str,
    *,
    path: str | None,
    scale: int,
    feeders: Sequence[int] | None,
    prosumers: Sequence[int] | None,
    where: Where,
) -> None:
    """Raise DatasetError naming every missing directory, feeder or prosumer."""
    if kind == "transax":
        directory = Path(path or "")
        found = transax_prosumer_ids(directory)
        if not found:
            what = "no such directory" if found is None else "no prosumer_<ID>.csv files in"
            raise DatasetError(f"{where(BASE + '.path')}: {what} {directory}")
        ids, name = found, str(directory)
    else:
        ids, name = synthetic_prosumer_ids(scale), f"the synthetic microgrid (scale {scale})"
    problems = missing_ids(ids, name, feeders, prosumers, where)
    if problems:
        raise DatasetError("\n".join(problems))


def missing_ids(
    ids: Sequence[int],
    name: str,
    feeders: Sequence[int] | None,
    prosumers: Sequence[int] | None,
    where: Where,
) -> list[str]:
    known = set(ids)
    present = sorted({i // 100 for i in ids})
    problems = [
        f"{where(f'{BASE}.feeders[{i}]')}: feeder {f} is not in {name} (feeders {span(present)})"
        for i, f in enumerate(feeders or ())
        if f not in present
    ]
    for i, prosumer in enumerate(prosumers or ()):
        if prosumer in known:
            continue
        feeder = prosumer // 100
        in_feeder = sorted(p for p in known if p // 100 == feeder)
        why = (
            f"ids are feeder * 100 + n; feeder {feeder} has {span(in_feeder)}"
            if in_feeder
            else f"ids are feeder * 100 + n; no feeder {feeder}, feeders {span(present)}"
        )
        at = where(f"{BASE}.prosumers[{i}]")
        problems.append(f"{at}: prosumer {prosumer} is not in {name} ({why})")
    return problems


def span(ids: Sequence[int]) -> str:
    """101..109 for a contiguous run, else the list (long lists shortened)."""
    ids = list(ids)
    if len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}..{ids[-1]}"
    shown = ", ".join(map(str, ids[:12]))
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > 12 else "")
