"""The one exception root. Only the CLI catches it and turns it into a message
and an exit code."""

from __future__ import annotations


class TestbedError(Exception):
    """Base of every error the testbed reports to a user."""

    __test__ = False  # not a pytest test class
    exit_code = 1


class SpecError(TestbedError):
    """The spec is invalid: `problems` holds one line per problem,
    `file:line:col: dotted.path: message`."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DatasetError(TestbedError):
    """A dataset file is malformed; the message names file and line."""

    exit_code = 2
