"""Shared agent framework. Small on purpose; import the submodules directly
(agents.chain builds on it; nothing here imports agents.chain):

- `agents.common.config`: `load_config(path) -> AgentConfig` (frozen dataclasses
  per role: DsoConfig, ProsumerHostConfig, SolverConfig, ClockConfig,
  RecorderConfig; `MarketParams` with interval/time helpers; unknown keys in `.raw`).
- `agents.common.protocol`: message dataclasses (Tick, Solve, Finalized, Done,
  Posted, Solved, Settled, Bootstrap, BootstrapInfo, WithdrawAssets, AssetsAdded,
  FailedWithdrawal, WithdrawBatch, BatchResult, ErrorReply), `encode`/`decode`,
  and the pure `Dispatcher`.
- `agents.common.transport`: zmq sockets with timeouts (Publisher, Subscriber,
  Collector, Reporter, Responder, Router, Requester).
- `agents.common.rpc`: lean JSON-RPC client (batches, keep-alive), `Contract`
  (ABI encode/decode of calls and logs), `Signer` (local key + nonce),
  `send_and_wait` (batched sends, receipts per new block, anvil stall recovery).
- `agents.common.abi`: minimal ABI codec, keccak, EIP-155 signing (no eth_abi /
  eth_account import: ~30 MB less RSS).
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
