"""Sweeps: a spec's `sweep:` section expanded into points (points.py), each
point run on the testbed or replayed (runner.py), and the sweep table with
the paper's Figure 9 (table.py)."""
