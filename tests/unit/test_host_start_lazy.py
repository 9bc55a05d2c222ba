"""A prosumer host gets ready without its codec and signing libraries (coincurve,
pycryptodome's Keccak) and loads them when it first encodes or signs; it never loads
eth-abi, eth-utils, eth-keys, rlp (and pydantic under eth-utils: ~0.1 CPU-s,
bench/hoststart.py) for what it does; the lazily built contract tables equal those
eth-utils computes from the ABI."""

from __future__ import annotations

import json
import subprocess
import sys

from eth_abi import encode as eth_abi_encode
from eth_utils import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)

from agents.chain.artifact import abi as market_abi
from agents.common.rpc import Contract

ETHEREUM_LIBRARIES = (
    "eth_abi",
    "eth_utils",
    "eth_keys",
    "eth_typing",
    "eth_hash",
    "eth_account",
    "rlp",
    "pydantic",
    "parsimonious",
    "web3",
)
HEAVY = (*ETHEREUM_LIBRARIES, "coincurve", "Crypto")
ADDRESS = "0x" + "ab" * 20

# What a host does from exec to ready (agents.__main__ and agents.prosumer.run): import
# its modules, connect the market client (its contract tables), build its state; then
# what it does first at a tick (or, in wallclock mode, before it reports ready: load the
# codec): encode a postOffer, sign it, decode its log and a signed grant.
PROBE = f"""
import json, sys
from pathlib import Path
import agents.__main__, agents.prosumer
from agents.chain.client import MarketClient, load_abi
from agents.common.rpc import Contract, JsonRpc
client = MarketClient(JsonRpc("http://127.0.0.1:1"), Contract("{ADDRESS}", load_abi()), 31337)
heavy = {HEAVY!r}
def loaded():
    return sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))
ready = loaded()
client.load_codec()
codec = loaded()
call = client.post_offer(1, 500, 4, 6, 20)
from agents.common.rpc import Signer
from agents.prosumer.plan import anon_secret
signer = Signer(anon_secret(7, 101, 0, 0, b"k"), 31337)
raw = signer.sign("{ADDRESS}", call.data, 400000)
topic = client.contract.event_topics["OfferPosted"]
word = (7).to_bytes(32, "big")
log = {{"topics": ["0x" + topic.hex(), "0x" + word.hex(), "0x" + word.hex(), "0x" + word.hex()],
       "data": "0x" + (word * 5).hex()}}
assert client.contract.decode_log(log)[0] == "OfferPosted"
from agents.chain.encoding import SignedGrant
SignedGrant.from_hex((bytes(12) + bytes(20) + word * 4).hex())
out = {{"ready": ready, "codec": codec, "tick": loaded(), "data": call.data.hex()}}
print(json.dumps({{**out, "raw": raw.hex()}}))
"""


def test_host_is_ready_without_the_ethereum_libraries() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(out.stdout)
    assert result["ready"] == []
    # load_codec (a wallclock host, before ready) or the first tick's encoding and
    # signing load them, and give the usual bytes
    assert result["codec"] == ["Crypto", "coincurve"]
    assert result["tick"] == result["codec"]  # none of ETHEREUM_LIBRARIES
    fn = next(i for i in market_abi() if i.get("type") == "function" and i["name"] == "postOffer")
    expected = function_abi_to_4byte_selector(fn) + eth_abi_encode(
        get_abi_input_types(fn), [1, 500, 4, 6, 20]
    )
    assert bytes.fromhex(result["data"]) == expected
    assert len(result["raw"]) > 2 * len(expected)


def test_lazy_contract_tables_equal_eth_utils() -> None:
    items = market_abi()
    contract = Contract(ADDRESS, items)
    functions = [i for i in items if i.get("type") == "function"]
    events = [i for i in items if i.get("type") == "event"]
    assert functions and events
    assert set(contract.functions) == {f["name"] for f in functions}
    for f in functions:
        table = contract.functions[f["name"]]
        assert table.selector == function_abi_to_4byte_selector(f)
        assert table.inputs == tuple(get_abi_input_types(f))
        assert table.outputs == tuple(get_abi_output_types(f))
    for e in events:
        topic = event_abi_to_log_topic(e)
        assert contract.event_topics[e["name"]] == topic
        assert contract.events[topic].name == e["name"]
        assert contract.events[topic].indexed == tuple(bool(p.get("indexed")) for p in e["inputs"])
