"""Observability of a run: a real Prometheus scraping every agent, its TSDB
snapshot in the bundle, and `testbed metrics` to explore it afterwards.

- scrape targets and prometheus.yml are rendered from the plan by
  orchestrator.scrapetargets (pure, below the backends as well: every backend renders
  its config through it, with its own addresses).
- server.py: the Prometheus binary: command line, readiness, HTTP API
  (queries, target discovery, snapshots).
- exporter.py: the orchestrator's own metrics (the dataset's production and
  consumption of finalized intervals), so dashboards compare them with trades.
- collect.py: what a run does (start with the agents, snapshot at the end).
- explore.py: a Prometheus on a bundle's snapshot (`testbed metrics`).
- dashboard.py: the Grafana dashboard (dashboards/testbed-run.json) as code.
"""
