"""Shared agent framework. Small on purpose; import the submodules directly:

- `agents.common.config`: `load_config(path) -> AgentConfig` (frozen dataclasses
  per role: DsoConfig, ProsumerHostConfig, SolverConfig, ClockConfig,
  RecorderConfig; `MarketParams` with interval/time helpers; unknown keys in `.raw`).
- `agents.common.protocol`: message dataclasses (Tick, Solve, Finalized, Done,
  Posted, Solved, Settled, Bootstrap, BootstrapInfo, WithdrawAssets, AssetsAdded,
  FailedWithdrawal, WithdrawBatch, BatchResult, ErrorReply), `encode`/`decode`,
  and the pure `Dispatcher`.
- `agents.common.transport`: zmq sockets with timeouts (Publisher, Subscriber,
  Collector, Reporter, Responder, Requester).
- `agents.common.metrics`: every Prometheus metric of the run, `start_metrics`,
  `mark_ready`, `record_transaction`.
- `agents.common.logsetup`: `setup_logging(role, name, level)`.
- `agents.common.shutdown`: `install_shutdown() -> Shutdown` (SIGTERM/SIGINT).
- `agents.common.errors`: `AgentError` and subclasses.

A role module (`agents.dso`, `agents.prosumer`, `agents.solver`, `agents.clock`,
`agents.recorder`) exposes `run(config, shutdown) -> int`; `python -m agents
<role> --config file.json` loads the config, sets up logging and metrics, and
calls it. The role marks itself ready with `metrics.mark_ready()`.
"""
