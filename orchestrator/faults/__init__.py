"""Faults and adversaries as experiment inputs (spec section `faults:`).

config.py: the section's schema and frozen dataclasses; checks.py: the spec
checks (targets, spans, backend support); timeline.py: pure expansion of the
entries into timed steps and rendered agent settings; injector.py: applies
the steps during a run; results.py: faults.jsonl, the summary block and the
comparison with a baseline run. See README.md.
"""
