"""Programs that run on testbed hosts: prosumer, dso, solver, clock, recorder.

Agents import `market` but never `orchestrator`: they read the config file the
orchestrator rendered for them.
"""
