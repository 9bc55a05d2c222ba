"""Reports of runs and sweeps: the paper's figures (figures.py) from a
bundle's events and dataset (data.py), and report.md/report.html (report.py)."""
