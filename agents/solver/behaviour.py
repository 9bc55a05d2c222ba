"""Solver behaviours: what a solver does with the solution it computed.

A behaviour is a small strategy object: given the problem, the solver's own optimal
result and the contract candidate's remaining objective, it decides what (if anything)
to submit. "honest" is the paper's solver (section 5.2.2): submit the optimum iff it
beats the candidate. The adversarial ones (issue 8; the paper's claim in 5.2.1 is that
the contract stops them):

- "infeasible" {"kind": a ViolationKind value the contract checks, or "any"}: a solution
  breaking exactly that constraint with an objective that beats the candidate's (by the
  minimum improvement: else the contract's pre-check answers NotBetter first)
  (agents.solver.adversary); "any" cycles through every kind, one per round;
- "inferior" {"no_candidate": "worse" | "empty"}: a feasible solution no better than the
  candidate (NotBetter); with no candidate, one strictly worse than the optimum (may be
  accepted, then beaten by an honest solver) or, with "empty", the empty one (NotBetter);
- "late" {"delay_seconds"}: the honest decision, submitted after the delay;
- "flood" {"count"}: `count` submissions per round, the optimum then worse ones.

`Schedule` picks the behaviour of a clock interval from the config's
`behaviour_schedule` spans (the solver's `behaviour` outside them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.common.adversaries import ONCHAIN_VIOLATIONS, BehaviourSpan, behaviour_options
from agents.common.errors import ConfigError
from agents.solver import adversary
from market import rules
from market.rules import ViolationKind
from market.solve import SolveResult
from market.types import Problem, Solution

# market.verify kind -> the contract's custom error, and the error of a feasible solution
# that does not beat the candidate (the catalogue of market rules)
ERROR_OF_KIND: Mapping[ViolationKind, str] = rules.ERROR_OF_KIND
NOT_BETTER = rules.NOT_BETTER.name


@dataclass(frozen=True)
class Decision:
    """Submit `solution` then each of `more` (after `delay_seconds`), or skip when
    `solution` is None. `expect`: the revert the behaviour aims at (None: acceptance);
    `adversarial`: the agent records what happens in behaviour.jsonl."""

    solution: Solution | None
    reason: str
    delay_seconds: float = 0.0
    more: tuple[Solution, ...] = ()
    expect: str | None = None
    adversarial: bool = False

    @property
    def submit(self) -> bool:
        return self.solution is not None

    @property
    def solutions(self) -> tuple[Solution, ...]:
        return () if self.solution is None else (self.solution, *self.more)


class Behaviour(Protocol):
    name: str

    def decide(
        self,
        problem: Problem,
        result: SolveResult,
        candidate_objective: int,
        min_improvement: int = 1,
    ) -> Decision:
        """`candidate_objective`: Wh of the contract candidate's trades in the
        intervals that are still free (>= problem.free_from); `min_improvement`: the
        market's min_improvement_wh (market.rules.beats_candidate)."""
        ...


class Honest:
    """Submit the optimal integer solution iff it beats the candidate's remaining
    objective by the market's minimum improvement (strictly greater with the default
    1 Wh; the contract refuses anything less, so it would only burn gas)."""

    name = "honest"

    def decide(
        self,
        problem: Problem,
        result: SolveResult,
        candidate_objective: int,
        min_improvement: int = 1,
    ) -> Decision:
        ours = result.solution.objective
        if rules.beats_candidate(ours, candidate_objective, min_improvement):
            return Decision(result.solution, f"objective {ours} > candidate {candidate_objective}")
        return Decision(
            None,
            f"objective {ours} does not beat candidate {candidate_objective} "
            f"by {min_improvement} Wh",
        )


class Infeasible:
    """A solution breaking one constraint; kind "any" takes the next kind each round
    (skipping kinds this problem cannot produce)."""

    name = "infeasible"

    def __init__(self, kind: str = "any") -> None:
        self.kind = kind
        self._next = 0

    def _kinds(self) -> list[ViolationKind]:
        if self.kind != "any":
            return [ViolationKind(self.kind)]
        n = len(ONCHAIN_VIOLATIONS)
        return [ONCHAIN_VIOLATIONS[(self._next + i) % n] for i in range(n)]

    def decide(
        self,
        problem: Problem,
        result: SolveResult,
        candidate_objective: int,
        min_improvement: int = 1,
    ) -> Decision:
        for kind in self._kinds():
            built = adversary.infeasible(
                problem, result.solution, candidate_objective, kind, min_improvement
            )
            if built is None:
                continue
            if self.kind == "any":
                self._next = (ONCHAIN_VIOLATIONS.index(kind) + 1) % len(ONCHAIN_VIOLATIONS)
            return Decision(
                built.solution, built.detail, expect=ERROR_OF_KIND[kind], adversarial=True
            )
        return Decision(
            None,
            f"no {self.kind} infeasible solution can be built from this problem",
            adversarial=True,
        )


class Inferior:
    """A feasible solution no better than the candidate; `no_candidate` says what to
    submit when there is none ("worse": below the optimum, may be accepted; "empty")."""

    name = "inferior"

    def __init__(self, no_candidate: str = "worse") -> None:
        self.no_candidate = no_candidate

    def decide(
        self,
        problem: Problem,
        result: SolveResult,
        candidate_objective: int,
        min_improvement: int = 1,
    ) -> Decision:
        solution = adversary.inferior(
            problem, result.solution, candidate_objective, self.no_candidate
        )
        beats = rules.beats_candidate(solution.objective, candidate_objective, min_improvement)
        expect = None if beats else NOT_BETTER
        return Decision(
            solution,
            f"objective {solution.objective} (optimum {result.solution.objective}, "
            f"candidate {candidate_objective})",
            expect=expect,
            adversarial=True,
        )


class Late:
    """The honest decision, submitted `delay_seconds` after the solve."""

    name = "late"

    def __init__(self, delay_seconds: float = 5.0) -> None:
        self.delay_seconds = delay_seconds

    def decide(
        self,
        problem: Problem,
        result: SolveResult,
        candidate_objective: int,
        min_improvement: int = 1,
    ) -> Decision:
        honest = Honest().decide(problem, result, candidate_objective, min_improvement)
        return Decision(
            honest.solution,
            f"{honest.reason}, {self.delay_seconds:g} s late",
            delay_seconds=self.delay_seconds if honest.submit else 0.0,
            adversarial=True,
        )


class Flood:
    """`count` submissions per round: the optimum, then feasible scaled-down copies."""

    name = "flood"

    def __init__(self, count: int = 5) -> None:
        self.count = count

    def decide(
        self,
        problem: Problem,
        result: SolveResult,
        candidate_objective: int,
        min_improvement: int = 1,
    ) -> Decision:
        first, *more = adversary.flood_variants(problem, result.solution, self.count)
        objectives = [first.objective, *(s.objective for s in more)]
        return Decision(
            first,
            f"{self.count} submissions, objectives {objectives}",
            more=tuple(more),
            expect=NOT_BETTER if more else None,
            adversarial=True,
        )


BEHAVIOURS: dict[str, Callable[..., Behaviour]] = {
    "honest": Honest,
    "infeasible": Infeasible,
    "inferior": Inferior,
    "late": Late,
    "flood": Flood,
}


def make_behaviour(name: str, options: Mapping[str, Any] | None = None) -> Behaviour:
    """The behaviour `name` with `options` (checked as the config loader checks them)."""
    if name not in BEHAVIOURS:
        known = ", ".join(sorted(BEHAVIOURS))
        raise ConfigError(f"behaviour: unknown solver behaviour {name!r} (known: {known})")
    return BEHAVIOURS[name](**behaviour_options(name, dict(options or {})))


def label(name: str, options: Mapping[str, Any]) -> str:
    """A behaviour and its options as one short string, e.g. "flood(count=3)"."""
    inner = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{name}({inner})" if inner else name


@dataclass(frozen=True)
class Active:
    """The behaviour in effect at an interval and where it comes from."""

    behaviour: Behaviour
    label: str
    span: int | None  # index into the schedule, None = the default behaviour


class Schedule:
    """The solver's default behaviour plus the spans of `behaviour_schedule`
    (clock intervals from_interval <= t < until_interval). One strategy object per span,
    made once: state such as the "any" cycle carries over from round to round."""

    def __init__(self, default: str, spans: Sequence[BehaviourSpan] = ()) -> None:
        self.spans = tuple(spans)
        self.default = Active(make_behaviour(default), default, None)
        self._active = [
            Active(make_behaviour(s.behaviour, s.options), label(s.behaviour, s.options), i)
            for i, s in enumerate(self.spans)
        ]

    @classmethod
    def fixed(cls, behaviour: Behaviour) -> Schedule:
        """One behaviour at every interval (an object made by the caller)."""
        schedule = cls("honest")
        schedule.default = Active(behaviour, behaviour.name, None)
        return schedule

    def at(self, interval: int | None) -> Active:
        if interval is not None:
            for span, active in zip(self.spans, self._active, strict=True):
                if span.covers(interval):
                    return active
        return self.default
