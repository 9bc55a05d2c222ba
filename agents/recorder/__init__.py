"""Recorder agent: rebuilds offers, solutions and finalized trades from chain events."""
