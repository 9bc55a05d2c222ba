"""Memory and speed of the agents' ABI encoding, signing and log decoding. Prints JSON.

    .venv/bin/python bench/encoding.py [--prosumers 1,34,102] [--seconds 0.5]

- `import_rss_mb`: RSS of a fresh interpreter after importing what a prosumer host
  process imports (`python -m agents prosumer`), and the libraries alone.
- `host`: for N prosumers, a fresh process imports the prosumer host and signs one
  day of its transactions (96 intervals, TX_PER_INTERVAL postOffer calls per prosumer
  and interval from a fresh anonymous key, keys kept for KEYS_KEPT intervals as the
  host keeps addresses until it deposits): peak RSS (VmHWM) per host and per
  prosumer, and the CPU seconds it took. 10x the paper (1,020 prosumers, ~480,000
  transactions a day) is ~5 transactions per prosumer and interval.
- `per_second`: the agents' own path through their public functions (key to
  address, calldata of postOffer and of a 1,000-word submitSolution, signing, an
  OfferPosted log decoded by the recorder's and by the lean client's decoder), and
  library variants of legacy (EIP-155) signing: eth-account's
  `Account.sign_transaction` with eth-keys' coincurve and pure-Python backends, and
  the `rlp` encoder with eth-keys or coincurve signing the hash.
Rates are per CPU second of the process (best of three runs of `--seconds` each): the
machine is shared, and wall time would measure the neighbours.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TX_PER_INTERVAL = 5
KEYS_KEPT = 16
INTERVALS = 96
GAS = 400_000

IMPORTS = {
    "python": "pass",
    "prosumer_host": "import agents.__main__, agents.prosumer",
    "coincurve+pycryptodome": "import coincurve, Crypto.Hash.keccak",
    "eth_abi": "import eth_abi",
    "eth_utils": "import eth_utils",
    "eth_account": "import eth_account",
    "eth_abi+eth_account+rlp": "import eth_abi, eth_account, rlp",
}

_RSS_PROBE = """
{stmt}
import sys
status = open('/proc/self/status').read().split('\\n')
kb = {{l.split(':')[0]: int(l.split()[1]) for l in status if l.startswith(('VmRSS', 'VmHWM'))}}
print(kb['VmRSS'])
"""

_HOST_DAY = """
import collections, time
import agents.__main__, agents.prosumer
from agents.chain.client import MarketClient, load_abi
from agents.common.rpc import Contract, JsonRpc, Signer
from agents.prosumer.plan import anon_secret
n = {n}
client = MarketClient(JsonRpc('http://127.0.0.1:9'), Contract('{contract}', load_abi()), {chain})
kept = collections.deque(maxlen={kept})
started = time.process_time()
for t in range({intervals}):
    signers = [Signer(anon_secret(7, p, t), {chain}) for p in range(n)]
    raws = [
        s.sign(client.address, client.post_offer(0, 500 + k, t, t + 2, 100).data, {gas})
        for s in signers
        for k in range({per})
    ]
    kept.append(signers)
seconds = time.process_time() - started
status = open('/proc/self/status').read().split('\\n')
hwm = [int(l.split()[1]) for l in status if l.startswith('VmHWM')][0]
print(hwm, seconds)
"""


def _python(code: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return proc.stdout.strip()


def import_rss() -> dict[str, float]:
    return {
        name: round(int(_python(_RSS_PROBE.format(stmt=stmt))) / 1024, 1)
        for name, stmt in IMPORTS.items()
    }


def host_day(n: int) -> dict[str, Any]:
    code = _HOST_DAY.format(
        n=n,
        contract=CONTRACT,
        chain=CHAIN_ID,
        kept=KEYS_KEPT,
        intervals=INTERVALS,
        per=TX_PER_INTERVAL,
        gas=GAS,
    )
    hwm_kb, seconds = _python(code).split()
    peak = int(hwm_kb) / 1024
    txs = n * INTERVALS * TX_PER_INTERVAL
    return {
        "prosumers": n,
        "transactions": txs,
        "peak_rss_mb": round(peak, 1),
        "peak_rss_mb_per_prosumer": round(peak / n, 2),
        "cpu_seconds": round(float(seconds), 2),
        "transactions_per_cpu_second": round(txs / float(seconds)),
    }


def rate(fn: Callable[[], object], seconds: float) -> int:
    """Calls of `fn` per CPU second of this process (the machine is shared: wall time
    would measure the neighbours): the best of three runs of about `seconds` each."""
    best = 0.0
    for _ in range(3):
        count, started = 0, time.process_time()
        deadline = started + seconds
        while True:
            for _ in range(50):
                fn()
            count += 50
            now = time.process_time()
            if now > deadline:
                break
        best = max(best, count / (now - started))
    return round(best)


def agents_rates(seconds: float) -> dict[str, int]:
    """The agents' own path, through the functions the agents call."""
    from eth_abi import encode

    from agents.chain import events
    from agents.chain.client import MarketClient, load_abi
    from agents.common.rpc import Contract, JsonRpc, Signer

    secret = bytes.fromhex("11" * 32)
    contract = Contract(CONTRACT, load_abi())
    client = MarketClient(JsonRpc("http://127.0.0.1:9"), contract, CHAIN_ID)
    signer = Signer(secret, CHAIN_ID)
    data = client.post_offer(0, 500, 3, 5, 100).data
    words = list(range(1 << 200, (1 << 200) + 1000))
    log = _offer_posted_log(encode)
    return {
        "key_to_address": rate(lambda: Signer(secret, CHAIN_ID), seconds),
        "encode_post_offer": rate(lambda: client.post_offer(0, 500, 3, 5, 100), seconds),
        "encode_submit_solution_1000_words": rate(
            lambda: contract.encode("submitSolution", words), seconds
        ),
        "sign": rate(lambda: signer.sign(CONTRACT, data, GAS), seconds),
        "decode_offer_posted_recorder": rate(lambda: events.decode_log(log), seconds),
        "decode_offer_posted_lean_client": rate(lambda: contract.decode_log(log), seconds),
    }


def _offer_posted_log(encode: Callable[..., bytes]) -> dict[str, Any]:
    from agents.chain.events import OfferPosted, topic_of

    def word(value: int | str) -> str:
        raw = bytes.fromhex(value[2:]) if isinstance(value, str) else value.to_bytes(32, "big")
        return "0x" + raw.rjust(32, b"\0").hex()

    data = encode(["uint8", "uint64", "uint16", "uint16", "uint64"], [1, 500, 3, 5, 100])
    return {
        "address": CONTRACT,
        "topics": ["0x" + topic_of(OfferPosted).hex(), word(12), word(7), word("0x" + "ab" * 20)],
        "data": "0x" + data.hex(),
        "blockNumber": "0x10",
        "transactionHash": "0x" + "00" * 32,
        "logIndex": "0x0",
    }


def library_rates(seconds: float) -> dict[str, int]:
    """Legacy (EIP-155) signing of the same transaction by library paths."""
    import coincurve
    import rlp
    from eth_account import Account
    from eth_keys import keys
    from eth_keys.backends import CoinCurveECCBackend, NativeECCBackend
    from eth_utils import keccak, to_checksum_address

    secret = bytes.fromhex("11" * 32)
    to = bytes.fromhex(CONTRACT[2:])
    data = bytes(4 + 5 * 32)
    tx = {
        "nonce": 5,
        "gasPrice": 0,
        "gas": GAS,
        "to": to_checksum_address(to),
        "value": 0,
        "data": data,
        "chainId": CHAIN_ID,
    }
    fast = Account.from_key(keys.PrivateKey(secret, backend=CoinCurveECCBackend()))
    slow = Account.from_key(keys.PrivateKey(secret, backend=NativeECCBackend()))
    eth_key = keys.PrivateKey(secret, backend=CoinCurveECCBackend())
    cc_key = coincurve.PrivateKey(secret)
    fields = [5, 0, GAS, to, 0, data]

    def rlp_eth_keys() -> bytes:
        sig = eth_key.sign_msg_hash(keccak(rlp.encode([*fields, CHAIN_ID, 0, 0])))
        return bytes(rlp.encode([*fields, sig.v + 35 + 2 * CHAIN_ID, sig.r, sig.s]))

    def rlp_coincurve() -> bytes:
        sig = cc_key.sign_recoverable(keccak(rlp.encode([*fields, CHAIN_ID, 0, 0])), hasher=None)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
        return bytes(rlp.encode([*fields, sig[64] + 35 + 2 * CHAIN_ID, r, s]))

    assert rlp_eth_keys() == rlp_coincurve() == bytes(fast.sign_transaction(tx).raw_transaction)
    return {
        "eth_account_sign_transaction_coincurve": rate(lambda: fast.sign_transaction(tx), seconds),
        "eth_account_sign_transaction_native": rate(lambda: slow.sign_transaction(tx), seconds),
        "rlp_and_eth_keys_coincurve": rate(rlp_eth_keys, seconds),
        "rlp_and_coincurve": rate(rlp_coincurve, seconds),
        "eth_account_from_key": rate(lambda: Account.from_key(secret), seconds),
    }


def versions() -> dict[str, str]:
    names = ("eth-abi", "eth-account", "eth-keys", "eth-utils", "rlp", "coincurve")
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prosumers", default="1,34,102", help="comma-separated host sizes")
    parser.add_argument("--seconds", type=float, default=0.5, help="per throughput run")
    args = parser.parse_args(argv)
    from eth_keys.backends import get_backend

    report: dict[str, Any] = {
        "versions": versions(),
        "eth_keys_default_backend": type(get_backend()).__name__,
        "import_rss_mb": import_rss(),
        "host": [host_day(int(n)) for n in args.prosumers.split(",")],
        "per_second": {
            "agents": agents_rates(args.seconds),
            "libraries": library_rates(args.seconds),
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
