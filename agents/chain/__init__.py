"""The chain module shared by agents and orchestrator: the market contract's artefact and
encoding, its revert reasons, an anvil node, deployment and typed wrappers.

Lean modules (no web3; safe for small agent hosts): `artifact`, `encoding`, `errors`,
`client` (`MarketClient`: the Market.sol calls of the dso, prosumer and clock: assets,
offers, close/deposit, finalize with the candidate's hash-chain segment).
web3-based modules, imported explicitly: `node` (anvil process and dev-chain RPCs),
`tx` (local signing with explicit nonces, receipts), `contract` (deploy + typed wrappers),
`events` (typed contract events).
"""
