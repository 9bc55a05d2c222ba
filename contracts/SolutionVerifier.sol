// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Infeasible solutions (the market.verify ViolationKind in brackets) and malformed encodings.
error MalformedTrade(uint256 index);
error UnsortedTrades(uint256 index);
error DuplicateTrade(uint32 seller, uint32 buyer, uint16 interval); // [DUPLICATE]
error UnknownOffer(uint32 offerId); // [UNKNOWN_OFFER]
error NotMatchableKind(uint32 seller, uint32 buyer); // [NOT_MATCHABLE_KIND]
error NonPositiveEnergy(uint32 seller, uint32 buyer, uint16 interval); // [NONPOSITIVE]
error FinalizedInterval(uint32 seller, uint32 buyer, uint16 interval, uint16 nextFinalize); // [FINALIZED_INTERVAL]
error NotMatchableInterval(uint32 offerId, uint16 interval); // [NOT_MATCHABLE_INTERVAL]
error NotMatchablePrice(uint32 seller, uint32 buyer); // [NOT_MATCHABLE_PRICE]
error PriceOutOfRange(uint32 seller, uint32 buyer, uint16 interval, uint64 price); // [PRICE]
error SellEnergyExceeded(uint32 offerId, uint256 traded, uint64 available); // [SELL_ENERGY]
error BuyEnergyExceeded(uint32 offerId, uint256 traded, uint64 available); // [BUY_ENERGY]
error FeederExtOut(uint32 feeder, uint16 interval, uint256 netOut, uint64 cExt); // [FEEDER_EXT_OUT]
error FeederExtIn(uint32 feeder, uint16 interval, uint256 netIn, uint64 cExt); // [FEEDER_EXT_IN]
error FeederIntConsumption(uint32 feeder, uint16 interval, uint256 consumption, uint64 cInt); // [FEEDER_INT_CONSUMPTION]
error FeederIntProduction(uint32 feeder, uint16 interval, uint256 production, uint64 cInt); // [FEEDER_INT_PRODUCTION]

/// @title On-chain verification of a solution of the energy trading problem (paper 4.2-4.3, 5.2).
/// @notice Used by Market.sol; see its comment for the word layout of a trade and the hash chain.
library SolutionVerifier {
    // offer word (Market.sol): remaining 0..63 | price 64..127 | start 128..143 | end 144..159 |
    // feeder index 160..175 | kind 176..183 (SELL = 0, BUY = 1) | ...
    // feeder word: id 0..31 | cExt 32..95 | cInt 96..159
    uint256 private constant SELL = 0;
    uint256 private constant BUY = 1;
    uint256 private constant M16 = 0xffff;

    /// Verifies `trades` (see the contract comment) against offers' remaining energy with first
    /// free interval `freeFrom`; reverts with the first violation found. Returns the objective
    /// and the per-offer table's memory, which chain() reuses as scratch.
    function verify(
        uint256[] calldata trades,
        uint256 freeFrom,
        uint256[] storage offers,
        uint256[] storage feeders
    ) internal view returns (uint256 objective, uint256 table, uint256 cap) {
        cap = 4;
        while (cap < 4 * trades.length) cap <<= 1;
        table = _alloc(cap);
        uint256[4] memory info;
        // The loop's loop-invariant inputs, in memory: on the stack they would not fit.
        uint256[8] memory ctx;
        (ctx[0], ctx[1], ctx[2]) = (table, cap - 1, freeFrom);
        assembly ("memory-safe") {
            mstore(0, offers.slot)
            mstore(add(ctx, 96), keccak256(0, 32))
            mstore(0, feeders.slot)
            mstore(add(ctx, 128), keccak256(0, 32))
        }
        (ctx[5], ctx[6], ctx[7]) = (offers.length - 1, _alloc(feeders.length), _alloc(feeders.length));
        uint256 code;
        (code, objective) = _scan(trades, ctx, info);
        if (code == BAD_TRADE) _diagnose(trades, info[0], freeFrom, offers);
        if (code != 0) _failFeeder(code, info);
    }

    uint256 private constant BAD_TRADE = 1;
    uint256 private constant EXT_OUT = 2;
    uint256 private constant EXT_IN = 3;
    uint256 private constant INT_CONSUMPTION = 4;

    /// The verification loop, in assembly because it runs once per trade (budget: 5,000 gas per
    /// trade, of which the cold read of a buy offer takes 2,100). Every per-trade rule is
    /// evaluated branch-free into one flag; a trade that breaks any of them stops the loop and
    /// _diagnose names the rule. Per-offer energy sums live in an open-addressing table in memory
    /// (`mask` + 1 >= 4n slots, so at most half full; entry = offer id << 192 | sum, 0 = empty).
    /// Per-feeder production << 128 | consumption is kept for the current interval only (trades
    /// are grouped by interval) and checked when the interval ends. Returns 0, BAD_TRADE (index in
    /// info[0]) or a feeder code (feeder, interval, amount, limit in info). Sums of uint64 terms
    /// cannot wrap or carry into the upper half: there are at most calldata-size many.
    /// ctx: table, mask, freeFrom, offers' and feeders' storage bases, highest offer id,
    /// per-feeder sums (memory), feeders touched in the current interval (memory).
    function _scan(uint256[] calldata trades, uint256[8] memory ctx, uint256[4] memory info)
        private
        view
        returns (uint256 code, uint256 objective)
    {
        assembly ("memory-safe") {
            function tableAdd(tbl, msk, id, e) -> s {
                for { let h := and(id, msk) } 1 { h := and(add(h, 1), msk) } {
                    let q := add(tbl, shl(5, h))
                    let v := mload(q)
                    if iszero(v) {
                        s := e
                        mstore(q, or(shl(192, id), s))
                        break
                    }
                    if eq(shr(192, v), id) {
                        s := add(and(v, sub(shl(192, 1), 1)), e)
                        mstore(q, or(shl(192, id), s))
                        break
                    }
                }
            }
            // (5)-(8) for the feeders touched in interval t; clears their sums.
            function checkFeeders(sm, tch, nt, fBase, t, inf) -> c {
                for { let j := 0 } lt(j, nt) { j := add(j, 1) } {
                    let f := mload(add(tch, shl(5, j)))
                    let q := add(sm, shl(5, f))
                    let v := mload(q)
                    mstore(q, 0)
                    let s := shr(128, v)
                    let b := and(v, sub(shl(128, 1), 1))
                    let lim := sload(add(fBase, f))
                    let cExt := and(shr(32, lim), 0xffffffffffffffff)
                    let cInt := and(shr(96, lim), 0xffffffffffffffff)
                    // Nested ifs, not `switch` with `break`: a Yul `break` leaves the enclosing
                    // for loop, which skipped recording the error's arguments below.
                    let amount := sub(s, b)
                    let limit := cExt
                    c := mul(gt(s, add(b, cExt)), 2) // (5): EXT_OUT
                    if iszero(c) {
                        amount := sub(b, s)
                        c := mul(gt(b, add(s, cExt)), 3) // (6): EXT_IN
                        if iszero(c) {
                            limit := cInt
                            amount := b
                            c := mul(gt(b, cInt), 4) // (7): INT_CONSUMPTION
                            if iszero(c) {
                                amount := s
                                c := mul(gt(s, cInt), 5) // (8): INT_PRODUCTION
                            }
                        }
                    }
                    if c {
                        mstore(inf, and(lim, 0xffffffff))
                        mstore(add(inf, 32), t)
                        mstore(add(inf, 64), amount)
                        mstore(add(inf, 96), limit)
                        leave
                    }
                }
            }
            let first := trades.offset
            let end := add(first, shl(5, trades.length))
            let m16 := 0xffff
            let m64 := 0xffffffffffffffff
            let nTouched := 0
            let interval := 0
            let prevKey := 0
            for { let p := first } lt(p, end) { p := add(p, 32) } {
                let w := calldataload(p)
                let key := shr(128, w)
                let t := shr(64, key)
                if iszero(eq(t, interval)) {
                    if gt(p, first) {
                        code := checkFeeders(
                            mload(add(ctx, 192)), mload(add(ctx, 224)), nTouched, mload(add(ctx, 128)), interval, info
                        )
                        if code { break }
                    }
                    nTouched := 0
                    interval := t
                }
                let seller := and(shr(32, key), 0xffffffff)
                let buyer := and(key, 0xffffffff)
                let so := sload(add(mload(add(ctx, 96)), seller))
                let bo := sload(add(mload(add(ctx, 96)), buyer))
                let e := and(shr(64, w), m64)
                // malformed, not after the previous key (a valid first key is > 0), unknown ids,
                // kinds (SELL = 0, BUY = 1), energy 0, finalized interval, outside either range,
                // price outside [Rs, Rb] (which also covers Rs > Rb)
                let bad := or(shr(208, w), iszero(gt(key, prevKey)))
                {
                    let maxId := mload(add(ctx, 160))
                    bad := or(bad, or(iszero(lt(sub(seller, 1), maxId)), iszero(lt(sub(buyer, 1), maxId))))
                }
                bad := or(bad, or(and(shr(176, so), 0xff), xor(and(shr(176, bo), 0xff), 1)))
                bad := or(bad, or(iszero(e), lt(t, mload(add(ctx, 64)))))
                bad := or(bad, or(lt(t, and(shr(128, so), m16)), gt(t, and(shr(144, so), m16))))
                bad := or(bad, or(lt(t, and(shr(128, bo), m16)), gt(t, and(shr(144, bo), m16))))
                {
                    let price := and(w, m64)
                    bad := or(bad, or(lt(price, and(shr(64, so), m64)), gt(price, and(shr(64, bo), m64))))
                }
                bad := or(bad, gt(tableAdd(mload(ctx), mload(add(ctx, 32)), seller, e), and(so, m64)))
                bad := or(bad, gt(tableAdd(mload(ctx), mload(add(ctx, 32)), buyer, e), and(bo, m64)))
                if bad {
                    code := 1
                    mstore(info, shr(5, sub(p, first)))
                    break
                }
                prevKey := key
                {
                    let sums := mload(add(ctx, 192))
                    let q := add(sums, shl(5, and(shr(160, so), m16)))
                    let v := mload(q)
                    if iszero(v) {
                        mstore(add(mload(add(ctx, 224)), shl(5, nTouched)), and(shr(160, so), m16))
                        nTouched := add(nTouched, 1)
                    }
                    mstore(q, add(v, shl(128, e)))
                    q := add(sums, shl(5, and(shr(160, bo), m16)))
                    v := mload(q)
                    if iszero(v) {
                        mstore(add(mload(add(ctx, 224)), shl(5, nTouched)), and(shr(160, bo), m16))
                        nTouched := add(nTouched, 1)
                    }
                    mstore(q, add(v, e))
                }
                objective := add(objective, e)
            }
            if and(iszero(code), gt(trades.length, 0)) {
                code := checkFeeders(
                    mload(add(ctx, 192)), mload(add(ctx, 224)), nTouched, mload(add(ctx, 128)), interval, info
                )
            }
        }
    }

    /// Names the rule trade `i` breaks (all trades before it passed). Only runs on failure.
    function _diagnose(uint256[] calldata trades, uint256 i, uint256 freeFrom, uint256[] storage offers)
        private
        view
    {
        uint256 w = trades[i];
        if (w >> 208 != 0) revert MalformedTrade(i);
        uint256 key = w >> 128;
        if (i != 0) {
            uint256 prev = trades[i - 1] >> 128;
            if (key == prev) revert DuplicateTrade(uint32(key >> 32), uint32(key), uint16(key >> 64));
            if (key < prev) revert UnsortedTrades(i);
        }
        (uint32 seller, uint32 buyer, uint16 t) = (uint32(key >> 32), uint32(key), uint16(key >> 64));
        if (seller == 0 || seller >= offers.length) revert UnknownOffer(seller);
        if (buyer == 0 || buyer >= offers.length) revert UnknownOffer(buyer);
        (uint256 so, uint256 bo) = (offers[seller], offers[buyer]);
        if ((so >> 176) & 0xff != SELL || (bo >> 176) & 0xff != BUY) {
            revert NotMatchableKind(seller, buyer);
        }
        if (uint64(w >> 64) == 0) revert NonPositiveEnergy(seller, buyer, t);
        if (t < freeFrom) revert FinalizedInterval(seller, buyer, t, uint16(freeFrom));
        if (t < uint16(so >> 128) || t > uint16(so >> 144)) revert NotMatchableInterval(seller, t);
        if (t < uint16(bo >> 128) || t > uint16(bo >> 144)) revert NotMatchableInterval(buyer, t);
        (uint64 rs, uint64 rb, uint64 price) = (uint64(so >> 64), uint64(bo >> 64), uint64(w));
        if (rs > rb) revert NotMatchablePrice(seller, buyer);
        if (price < rs || price > rb) revert PriceOutOfRange(seller, buyer, t, price);
        uint256 sold;
        uint256 bought;
        for (uint256 j = 0; j <= i; j++) {
            uint256 x = trades[j];
            if (uint32(x >> 160) == seller) sold += uint64(x >> 64);
            if (uint32(x >> 128) == buyer) bought += uint64(x >> 64);
        }
        if (sold > uint64(so)) revert SellEnergyExceeded(seller, sold, uint64(so));
        if (bought > uint64(bo)) revert BuyEnergyExceeded(buyer, bought, uint64(bo));
        assert(false); // unreachable: _scan flagged a rule checked above
    }

    /// Reverts with the custom error of a feeder code of _scan.
    function _failFeeder(uint256 code, uint256[4] memory x) private pure {
        (uint32 feeder, uint16 t, uint256 amount, uint64 limit) = (uint32(x[0]), uint16(x[1]), x[2], uint64(x[3]));
        if (code == EXT_OUT) revert FeederExtOut(feeder, t, amount, limit);
        if (code == EXT_IN) revert FeederExtIn(feeder, t, amount, limit);
        if (code == INT_CONSUMPTION) revert FeederIntConsumption(feeder, t, amount, limit);
        revert FeederIntProduction(feeder, t, amount, limit);
    }

    /// Zeroed memory of `words` words (not an ABI array: no length word).
    function _alloc(uint256 words) private pure returns (uint256 p) {
        assembly ("memory-safe") {
            p := mload(0x40)
            let size := shl(5, words)
            calldatacopy(p, calldatasize(), size)
            mstore(0x40, add(p, size))
        }
    }

    /// Head of the hash chain over the interval segments of sorted `trades`, built back to front
    /// in `scratch` (at least n + 2 words; the verifier's table has 4n >= n + 2 for n >= 1).
    function chain(uint256[] calldata trades, uint256 scratch, uint256 scratchWords)
        internal
        pure
        returns (bytes32 h, uint256 headInterval)
    {
        uint256 end = trades.length;
        assert(end == 0 || scratchWords >= end + 2);
        while (end != 0) {
            uint256 interval = (trades[end - 1] >> 192) & M16;
            uint256 start = end - 1;
            while (start != 0 && (trades[start - 1] >> 192) & M16 == interval) start--;
            assembly ("memory-safe") {
                let len := shl(5, sub(end, start))
                calldatacopy(scratch, add(trades.offset, shl(5, start)), len)
                mstore(add(scratch, len), headInterval)
                mstore(add(scratch, add(len, 32)), h)
                h := keccak256(scratch, add(len, 64))
            }
            headInterval = interval;
            end = start;
        }
    }

    /// Sum of the energy fields (bits 64..127) of `trades`: the objective the verification would
    /// return if it passed, read in ~30 gas per trade (submitSolution's cheap pre-check).
    function energySum(uint256[] calldata trades) internal pure returns (uint256 sum) {
        assembly ("memory-safe") {
            let m64 := 0xffffffffffffffff
            let end := add(trades.offset, shl(5, trades.length))
            for { let p := trades.offset } lt(p, end) { p := add(p, 32) } {
                sum := add(sum, and(shr(64, calldataload(p)), m64))
            }
        }
    }

    function segmentHash(uint256[] calldata segment, uint256 nextInterval, bytes32 nextHash)
        internal
        pure
        returns (bytes32 h)
    {
        uint256 p = _alloc(segment.length + 2);
        assembly ("memory-safe") {
            let len := shl(5, segment.length)
            calldatacopy(p, segment.offset, len)
            mstore(add(p, len), nextInterval)
            mstore(add(p, add(len, 32)), nextHash)
            h := keccak256(p, add(len, 64))
        }
    }
}
