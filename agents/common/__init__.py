"""Shared agent framework. Small on purpose; import the submodules directly
(agents.chain builds on it; nothing here imports agents.chain):

- `agents.common.config`: `load_config(path) -> AgentConfig` (frozen dataclasses
  per role: DsoConfig, ProsumerHostConfig, SolverConfig, ClockConfig,
  RecorderConfig), the only schema of what an agent is told.
- `agents.common.market`: `MarketConfig` (the spec's market section) and
  `MarketParams` (+ the chain's time base): market timing, defined once.
- `agents.common.typed`: `to_plain`/`to_json`, `from_plain`: dataclasses <-> JSON.
- `agents.common.protocol`: message dataclasses (Tick, Solve, Finalized, Done,
  Posted, Solved, Settled, Bootstrap, BootstrapInfo, WithdrawAssets, AssetsAdded,
  FailedWithdrawal, WithdrawBatch, BatchResult, ErrorReply), `encode`/`decode`,
  and the pure `Dispatcher`.
- `agents.common.transport`: zmq sockets with timeouts (Publisher, Subscriber,
  Collector, Reporter, Responder, Router, Requester).
- `agents.common.rpc`: lean JSON-RPC client (batches, keep-alive), `Contract`
  (ABI encode/decode of calls and logs), `Signer` (local key + nonce),
  `send_and_wait` (sends paced to the node: bounded batches and transactions
  in flight; receipts by hash; anvil stall recovery).
- `agents.common.abi`: the ABI codec (words: `agents.common.abiwords`; the rest:
  eth-abi), Keccak-256 (pycryptodome) and selectors, EIP-155 legacy signing (its own
  RLP + coincurve: ~5x eth-account's speed, bench/encoding.py).
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
