"""Solver agent: solves the extended problem from chain events and submits better solutions."""
