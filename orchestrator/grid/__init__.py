"""Grid physics under the market: an AC power flow (pandapower) of every interval's
finalized schedule and of the same interval without a local market.

- config.py: the `microgrid.grid` spec section (schema + dataclasses, stdlib only)
- model.py: the section resolved against a dataset into a network description
- network.py: the pandapower net, built once; one power flow per call
- schedule.py: what each prosumer injects per interval, market and no market
- flow.py: a window of power flows -> the `grid` block and grid.csv
- bundle.py: the post-run step (summary.json's `grid`, the bundle's grid/grid.csv)
- live.py: each finalized interval as it happens (the orchestrator's exporter)

Nothing here is imported by market/ or agents/; pandapower is imported only by
network.py, when a power flow is run.
"""
