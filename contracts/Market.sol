// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SolutionVerifier, UnknownOffer} from "./SolutionVerifier.sol";
import {MarketBase} from "./MarketBase.sol";
import {GrantSignature} from "./GrantSignature.sol";

/// @title The transactive energy market of Eisele et al. 2020 (sections 4.2-4.3, 5.2, 6.3-6.4).
/// @notice Units: energy in Wh per interval, prices in micro-units per kWh, money = Wh * price.
/// contracts/README.md describes time (clock interval k ends at epoch + (k - startInterval + 1)
/// * intervalSeconds; then finalize() fixes delivery interval k + tClear), the trade words of a
/// solution (interval 192..207 | seller 160..191 | buyer 128..159 | energy 64..127 | price
/// 0..63, strictly increasing) and the candidate, kept as a hash chain over its interval
/// segments (node_j = keccak256(words of segment j ++ interval of segment j+1 ++ node_j+1)) whose
/// words are published in SolutionAccepted; finalize() takes a segment and its next link.
contract Market is MarketBase {
    address public immutable dso;
    uint64 public immutable intervalSeconds;
    uint64 public immutable epoch;
    uint16 public immutable startInterval;
    uint16 public immutable tClear;
    uint16 public immutable lastInterval;
    uint64 public immutable minOfferEnergy;
    uint16 public immutable maxOpenOffers;
    uint32 public immutable settleChunk;
    uint64 public immutable minImprovement;
    /// EIP-712 domain of the DSO's signed grants (GrantSignature.sol).
    bytes32 public immutable domainSeparator;

    modifier onlyDso() {
        if (msg.sender != dso) revert NotDso();
        _;
    }

    /// @param feederIds feeder ids; cExt[i] and cInt[i] (Wh per interval) belong to feederIds[i].
    /// @param minOfferEnergy_ smallest energy (Wh) of an offer; maxOpenOffers_ most offers one
    /// address may have posted and not closed; settleChunk_ most trades one finalize() settles
    /// (an interval with more is settled by several calls, see finalize); minImprovement_ Wh by
    /// which a solution must beat a candidate (checked before the verification).
    constructor(
        uint32[] memory feederIds,
        uint64[] memory cExt,
        uint64[] memory cInt,
        uint64 intervalSeconds_,
        uint64 epoch_,
        uint16 startInterval_,
        uint16 tClear_,
        uint16 lastInterval_,
        uint64 minOfferEnergy_,
        uint16 maxOpenOffers_,
        uint32 settleChunk_,
        uint64 minImprovement_
    ) {
        uint256 n = feederIds.length;
        if (
            n == 0 || n > M16 || cExt.length != n || cInt.length != n || intervalSeconds_ == 0 || tClear_ == 0
                || uint256(startInterval_) + tClear_ > lastInterval_ || lastInterval_ == M16
                || minOfferEnergy_ == 0 || maxOpenOffers_ == 0 || settleChunk_ == 0
                || minImprovement_ == 0
        ) revert BadParameters(); // lastInterval < 2^16 - 1: nextFinalize (16 bits) reaches it + 1
        for (uint256 i = 0; i < n; i++) {
            if (_feederIndex1[feederIds[i]] != 0) revert BadParameters();
            _feederIndex1[feederIds[i]] = i + 1;
            _feeders.push(uint256(feederIds[i]) | (uint256(cExt[i]) << 32) | (uint256(cInt[i]) << 96));
        }
        dso = msg.sender;
        intervalSeconds = intervalSeconds_;
        epoch = epoch_;
        startInterval = startInterval_;
        tClear = tClear_;
        lastInterval = lastInterval_;
        minOfferEnergy = minOfferEnergy_;
        maxOpenOffers = maxOpenOffers_;
        settleChunk = settleChunk_;
        minImprovement = minImprovement_;
        domainSeparator = GrantSignature.domainSeparator(address(this));
        _offers.push(0);
        _state = uint256(startInterval_) + tClear_;
    }

    // ============================================================ DSO: assets
    /// @notice Links `anon` to `feeder` (first call) and gives it permission to sell or buy
    /// `energy` Wh within delivery intervals [start, end]. A held permission of the same kind with
    /// energy left must have the same range; an exhausted one is replaced.
    function addEnergy(address anon, uint32 feeder, Kind kind, uint64 energy, uint16 start, uint16 end)
        external
        onlyDso
    {
        _addEnergy(anon, feeder, kind, energy, start, end);
    }

    /// @notice Credits `amount` money units to `anon` (to pay for buy offers).
    function addFinancialBalance(address anon, uint256 amount) external onlyDso {
        _addFinancial(anon, amount);
    }

    /// @notice The DSO's batch: many addEnergy and addFinancialBalance calls in one transaction
    /// (one 21k base for all). Two words per grant: `anon` 0..159 | feeder 160..191 |
    /// what 192..199 (0 SELL, 1 BUY: addEnergy; 2: addFinancialBalance, feeder/start/end zero) |
    /// start 200..215 | end 216..231 (bits 232..255 zero), then the energy (Wh, < 2^64) or money.
    /// Each grant is checked as its own call would be; any refusal reverts the whole batch.
    function issue(uint256[] calldata grants) external onlyDso {
        if (grants.length % 2 != 0) revert MalformedGrant(grants.length / 2);
        for (uint256 i = 0; i < grants.length; i += 2) {
            uint256 g = grants[i];
            uint256 amount = grants[i + 1];
            uint256 what = (g >> 192) & 0xff;
            address anon = address(uint160(g));
            if (what == 2 && (g >> 160) & M32 == 0 && g >> 200 == 0) {
                _addFinancial(anon, amount);
            } else if (what < 2 && g >> 232 == 0 && amount <= M64) {
                _addEnergy(
                    anon, uint32(g >> 160), Kind(what), uint64(amount), uint16(g >> 200), uint16(g >> 216)
                );
            } else {
                revert MalformedGrant(i / 2);
            }
        }
    }

    function _addEnergy(address anon, uint32 feeder, Kind kind, uint64 energy, uint16 start, uint16 end)
        private
    {
        if (energy == 0) revert ZeroAmount();
        if (start > end || start < firstDeliveryInterval() || end > lastInterval) revert BadRange(start, end);
        uint16 next = uint16(_state & M16);
        if (end < next) revert RangeFinalized(end, next);
        uint256 index1 = _feederIndex1[feeder];
        if (index1 == 0) revert UnknownFeeder(feeder);
        uint256 acc = _accounts[anon];
        uint256 linked = acc & M16;
        if (linked == 0) acc |= index1;
        else if (linked != index1) revert FeederMismatch(anon, _feederId(linked - 1), feeder);
        uint256 shift = _permShift(kind);
        uint256 perm = (acc >> shift) & ((1 << 96) - 1);
        uint256 held = perm & M64;
        if (held != 0 && (((perm >> 64) & M16) != start || ((perm >> 80) & M16) != end)) {
            revert PermissionRangeMismatch(kind, start, end, uint16(perm >> 64), uint16(perm >> 80));
        }
        uint256 total = held + energy;
        if (total > M64) revert AmountTooLarge();
        perm = total | (uint256(start) << 64) | (uint256(end) << 80);
        _accounts[anon] = (acc & ~(((1 << 96) - 1) << shift)) | (perm << shift);
        emit AssetAdded(anon, feeder, kind, energy, start, end);
    }

    function _addFinancial(address anon, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        _credit(anon, amount);
        emit FinancialAdded(anon, amount);
    }

    // ========================================================= prosumers: offers
    /// @notice Posts a selling or buying offer from an anonymous address, reserving the energy
    /// permission it needs and, for a buy offer, energy * price money units.
    function postOffer(Kind kind, uint64 energy, uint16 start, uint16 end, uint64 price)
        public
        returns (uint32 offerId)
    {
        if (energy == 0) revert ZeroAmount();
        if (energy < minOfferEnergy) revert OfferTooSmall(energy, minOfferEnergy);
        if (start > end) revert BadRange(start, end);
        uint16 next = uint16(_state & M16);
        if (end < next) revert RangeFinalized(end, next);
        uint256 acc = _accounts[msg.sender];
        uint256 index1 = acc & M16;
        if (index1 == 0) revert NotLinked(msg.sender);
        if ((acc >> 208) & M16 >= maxOpenOffers) revert TooManyOpenOffers(msg.sender, maxOpenOffers);
        uint256 shift = _permShift(kind);
        uint256 perm = acc >> shift;
        uint64 held = uint64(perm);
        uint16 heldStart = uint16(perm >> 64);
        uint16 heldEnd = uint16(perm >> 80);
        if (start < heldStart || end > heldEnd) revert OutsidePermission(kind, start, end, heldStart, heldEnd);
        if (energy > held) revert InsufficientEnergyAsset(kind, energy, held);
        uint256 id = _offers.length;
        acc = acc - (uint256(energy) << shift) + (1 << 208);
        if (acc >> 224 == 0 && id <= M32) acc |= id << 224; // its first offer: no owner word
        else _ownerWords[id] = uint160(msg.sender);
        _accounts[msg.sender] = acc;
        uint256 bonus;
        assembly {
            bonus := tload(0)
        }
        uint256 cost = kind == Kind.BUY ? uint256(energy) * price : 0;
        if (cost != bonus) {
            uint256 balance = _balance(msg.sender) + bonus;
            if (cost > balance) revert InsufficientBalance(cost, balance);
            _balances[msg.sender] = balance - cost + 1;
        }
        if (id > M32) revert TooManyOffers();
        offerId = uint32(id);
        _offers.push(
            uint256(energy) | (uint256(price) << 64) | (uint256(start) << 128) | (uint256(end) << 144)
                | ((index1 - 1) << 160) | (uint256(kind) << 176)
        );
        emit OfferPosted(offerId, _feederId(index1 - 1), kind, energy, start, end, price, msg.sender);
    }

    /// @notice postOffer from an address not linked yet, with the grant the DSO signed for it off
    /// chain (GrantSignature.sol: the grant word and `money`, (r, vs) its signature for the
    /// sender, so nobody else can use it) instead of its addEnergy/addFinancialBalance
    /// transactions. The grant is applied as issue() would (AssetAdded, FinancialAdded) and links
    /// the address for good, so it is used once (then AlreadyLinked). The granted money pays a
    /// buy offer's reservation first (passed to postOffer in transient slot 0): an exact grant
    /// writes no balance slot.
    function postSignedOffer(
        Kind kind,
        uint64 energy,
        uint16 start,
        uint16 end,
        uint64 price,
        uint256 grant,
        uint256 money,
        bytes32 r,
        bytes32 vs
    ) external returns (uint32 offerId) {
        _accounts[msg.sender] = _applyGrant(grant, money, r, vs, true);
        assembly {
            tstore(0, money)
        }
        offerId = postOffer(kind, energy, start, end, price);
        assembly {
            tstore(0, 0)
        }
    }

    /// @notice Gives an unused signed grant back to the DSO (EnergyDeposited,
    /// FinancialDeposited), e.g. when its offer was refused: the address is linked, so the
    /// grant cannot be used afterwards.
    function returnGrant(uint256 grant, uint256 money, bytes32 r, bytes32 vs) external {
        uint256 acc = _applyGrant(grant, money, r, vs, false);
        _accounts[msg.sender] = acc;
        _depositAll(msg.sender, acc, money);
    }

    /// The sender's account word with the signed grant applied (not stored). Checks, in this
    /// order: MalformedGrant(0), InvalidGrantSignature, AlreadyLinked, UnknownFeeder, then per
    /// granted permission BadRange and RangeFinalized (with `checkRanges`), ZeroAmount if
    /// nothing is granted.
    function _applyGrant(uint256 grant, uint256 money, bytes32 r, bytes32 vs, bool checkRanges)
        private
        returns (uint256 acc)
    {
        if (grant >> 224 != 0) revert MalformedGrant(0);
        address signer = GrantSignature.signer(domainSeparator, msg.sender, grant, money, r, vs);
        if (signer != dso) revert InvalidGrantSignature();
        acc = _accounts[msg.sender];
        if (acc & M16 != 0) revert AlreadyLinked(msg.sender);
        uint32 feeder = uint32(grant);
        uint256 index1 = _feederIndex1[feeder];
        if (index1 == 0) revert UnknownFeeder(feeder);
        acc |= index1;
        uint16 next = uint16(_state & M16);
        bool granted = money != 0;
        for (uint256 k = 0; k < 2; k++) {
            uint256 perm = (grant >> (32 + 96 * k)) & ((1 << 96) - 1);
            uint64 energy = uint64(perm);
            if (energy == 0) continue;
            (uint16 start, uint16 end) = (uint16(perm >> 64), uint16(perm >> 80));
            if (checkRanges) {
                if (start > end || start < firstDeliveryInterval() || end > lastInterval) {
                    revert BadRange(start, end);
                }
                if (end < next) revert RangeFinalized(end, next);
            }
            acc |= perm << _permShift(Kind(k));
            granted = true;
            emit AssetAdded(msg.sender, feeder, Kind(k), energy, start, end);
        }
        if (!granted) revert ZeroAmount();
        if (money != 0) emit FinancialAdded(msg.sender, money);
    }

    /// @notice After every interval of an offer is finalized, deposits its untraded energy back to
    /// the DSO (EnergyDeposited) and credits the money its settled trades left in it (a seller's
    /// energy * price, a buyer's energy * (its price - the trade price)) and, for a buy offer,
    /// what it reserved for its untraded energy. An owner left with no open offer deposits
    /// everything it holds, as with closeOffers.
    function closeOffer(uint32 offerId) external {
        if (offerId == 0 || offerId >= _offers.length) revert UnknownOffer(offerId);
        if (!_owns(msg.sender, offerId)) revert NotOfferOwner(offerId);
        uint256 o = _offers[offerId];
        if ((o >> 184) & 1 != 0) revert OfferAlreadyClosed(offerId);
        _deposit(msg.sender, _close(offerId, o, msg.sender));
    }

    /// @notice closeOffer for many offers at once, by anyone (the clock after each interval): one
    /// transaction, not one per offer. Each entry is offer id << 160 | its owner (OfferPosted's
    /// poster; NotOfferOwner if not). Offers already closed are skipped. An owner left with no
    /// open offer also deposits back its unused permissions and its free balance, as its
    /// depositEnergy and depositFinancial would (the DSO credits the prosumer behind it).
    function closeOffers(uint256[] calldata offers) external {
        uint256 count = _offers.length;
        for (uint256 i = 0; i < offers.length; i++) {
            uint256 id = offers[i] >> 160;
            address owner = address(uint160(offers[i]));
            if (id == 0 || id >= count) revert UnknownOffer(uint32(id));
            uint256 o = _offers[id];
            if ((o >> 184) & 1 != 0) continue;
            if (!_owns(owner, id)) revert NotOfferOwner(uint32(id));
            _deposit(owner, _close(id, o, owner));
        }
    }

    /// `money` of a closed offer to its owner: deposited with everything it holds if it has no
    /// open offer left (no balance slot written), else credited.
    function _deposit(address owner, uint256 money) private {
        uint256 acc = _accounts[owner];
        if ((acc >> 208) & M16 == 0) _depositAll(owner, acc, money);
        else if (money != 0) _credit(owner, money);
    }

    /// Whether `who` posted offer `id` (named by its account word or by the offer's owner word).
    function _owns(address who, uint256 id) private view returns (bool) {
        if (_accounts[who] >> 224 == id) return true;
        uint256 w = _ownerWords[id];
        return w != 0 && address(uint160(w)) == who;
    }

    /// Closes an ended offer of `owner`: returns the money to credit it (OfferClosed.refund).
    function _close(uint256 offerId, uint256 o, address owner) private returns (uint256 money) {
        uint16 next = uint16(_state & M16);
        uint16 end = uint16(o >> 144);
        if (end >= next) revert OfferStillOpen(uint32(offerId), end, next);
        uint64 left = uint64(o);
        Kind kind = Kind((o >> 176) & 0xff);
        money = (o >> 192) + (kind == Kind.BUY ? uint256(left) * uint64(o >> 64) : 0);
        if ((o >> 185) & 1 != 0) {
            money += _overflow[offerId];
            delete _overflow[offerId];
        }
        _offers[offerId] = (o & ~M64 & ~(M64 << 192) & ~(uint256(1) << 185)) | (uint256(1) << 184);
        _accounts[owner] -= 1 << 208; // one open offer fewer (it counted since postOffer)
        if (left != 0) emit EnergyDeposited(owner, kind, left, uint16(o >> 128), end);
        emit OfferClosed(uint32(offerId), left, money);
    }

    // ============================================================== solutions
    /// @notice Verifies a solution against the current state (offers' remaining energy, first
    /// free interval nextFinalize) and returns its objective (total Wh); reverts if infeasible.
    function checkSolution(uint256[] calldata trades) external view returns (uint256 objective) {
        (objective,,) = SolutionVerifier.verify(trades, _state & M16, _offers, _feeders);
    }

    /// @notice Verifies a solution and makes it the candidate if its objective beats what is left
    /// of the current candidate (its trades in intervals not finalized yet). Refused while the
    /// T_clear deadline of nextFinalize has passed (DeadlinePassed): the intervals it fixes are
    /// finalized first, so no solution changes an interval after its deadline. While a candidate
    /// has trades left, an objective below its remaining one + minImprovement reverts NotBetter
    /// before the verification: a copy of a pending solution costs ~30 gas per trade, not ~4k.
    function submitSolution(uint256[] calldata trades) external returns (uint32 candidateId) {
        uint256 st = _state;
        {
            uint256 d = st & M16;
            uint256 due = _clockEnd(d - tClear);
            if (d <= lastInterval && block.timestamp >= due) revert DeadlinePassed(uint16(d), due);
        }
        uint256 remaining = st >> 128;
        if (remaining != 0) {
            uint256 sum = SolutionVerifier.energySum(trades); // = the objective if it verifies
            if (sum < remaining + minImprovement) revert NotBetter(sum, remaining);
        }
        (uint256 objective, uint256 scratch, uint256 scratchWords) =
            SolutionVerifier.verify(trades, st & M16, _offers, _feeders);
        if (objective <= remaining) revert NotBetter(objective, remaining);
        if (objective > type(uint128).max) revert AmountTooLarge();
        (bytes32 head, uint256 headInterval) = SolutionVerifier.chain(trades, scratch, scratchWords);
        candidateId = uint32(((st >> 32) & M32) + 1);
        _headHash = head;
        _state = (st & M16) | (headInterval << 16) | (uint256(candidateId) << 32) | (uint256(uint64(block.number)) << 64)
            | (objective << 128);
        emit SolutionAccepted(candidateId, msg.sender, objective, trades.length, trades);
    }

    // =========================================================== finalization
    /// @notice Finalizes delivery interval nextFinalize once clock interval nextFinalize - tClear
    /// has ended: settles the candidate's trades of that interval. `segment` is the candidate's
    /// words of that interval (empty if it has none), `nextInterval`/`nextHash` the following link
    /// of the hash chain (zero if none); agents.chain computes them from SolutionAccepted.
    /// One call settles at most settleChunk trades; a longer segment is settled by repeated calls
    /// with the same arguments (anyone may make them: a stored cursor says where to go on), and
    /// the last one moves nextFinalize on and emits IntervalFinalized. No candidate can change
    /// meanwhile (submitSolution refuses while the deadline of nextFinalize has passed).
    function finalize(uint256[] calldata segment, uint16 nextInterval, bytes32 nextHash) external {
        uint256 st = _state;
        uint256 d = st & M16;
        if (d > lastInterval) revert MarketClosed();
        uint256 endsAt = _clockEnd(d - tClear);
        if (block.timestamp < endsAt) revert IntervalNotEnded(uint16(d), endsAt);
        uint256 count = segment.length;
        uint256 total;
        if ((st >> 16) & M16 == d) {
            if (SolutionVerifier.segmentHash(segment, nextInterval, nextHash) != _headHash) {
                revert CandidateMismatch();
            }
            uint256 cursor = _cursor;
            uint256 from = cursor & M32;
            uint256 to = from + settleChunk < count ? from + settleChunk : count;
            uint256 settled = _settle(segment, from, to);
            st -= settled << 128; // the candidate's remaining objective
            total = (cursor >> 32) + settled;
            if (to < count) {
                // TradeFinalized per settled trade, IntervalFinalized with the last chunk
                (_cursor, _state) = ((total << 32) | to, st);
                return;
            }
            if (cursor != 0) _cursor = 0;
            _headHash = nextHash;
            st = (st & ~(M16 << 16)) | (uint256(nextInterval) << 16);
        } else if (count != 0) {
            revert CandidateMismatch();
        }
        _state = (st & ~M16) | (d + 1);
        emit IntervalFinalized(uint16(d), uint32(st >> 32), count, total);
    }

    // ================================================================== views
    function firstDeliveryInterval() public view returns (uint16) {
        return startInterval + tClear;
    }

    function nextFinalize() external view returns (uint16) {
        return uint16(_state & M16);
    }

    /// @notice The clock interval running now.
    function currentInterval() external view returns (uint256) {
        if (block.timestamp < epoch) revert NotStarted();
        return startInterval + (block.timestamp - epoch) / intervalSeconds;
    }

    /// @notice Chain time from which finalize() may finalize the next delivery interval.
    function finalizableAt() external view returns (uint256) {
        return _clockEnd((_state & M16) - tClear);
    }

    function candidate()
        external
        view
        returns (uint32 candidateId, uint256 remainingObjective, uint16 headInterval, bytes32 headHash,
            uint64 acceptedBlock)
    {
        uint256 st = _state;
        return (uint32(st >> 32), st >> 128, uint16(st >> 16), _headHash, uint64(st >> 64));
    }

    function _clockEnd(uint256 clockInterval) private view returns (uint256) {
        return uint256(epoch) + (clockInterval - startInterval + 1) * intervalSeconds;
    }

    /// Settles trades [from, to) of a finalized segment: offers' remaining energy decreases, the
    /// seller's offer keeps energy * price for its owner and the buyer's energy * (its price -
    /// price), what it reserved above the trade price; closing the offers credits both.
    function _settle(uint256[] calldata segment, uint256 from, uint256 to) private returns (uint256 total) {
        for (uint256 i = from; i < to; i++) {
            uint256 w = segment[i];
            uint256 seller = (w >> 160) & M32;
            uint256 buyer = (w >> 128) & M32;
            uint256 energy = (w >> 64) & M64;
            uint256 price = w & M64;
            uint256 so = _offers[seller];
            uint256 bo = _offers[buyer];
            // remaining -= energy; the money stays in the offer until it is closed
            so = (so & ~M64) | ((so & M64) - energy);
            bo = (bo & ~M64) | ((bo & M64) - energy);
            _offers[seller] = _keep(so, seller, energy * price);
            _offers[buyer] = _keep(bo, buyer, energy * (((bo >> 64) & M64) - price));
            total += energy;
            emit TradeFinalized(uint16(w >> 192), uint32(seller), uint32(buyer), uint64(energy), uint64(price));
        }
    }

    /// Offer word `o` with `money` added to the money it keeps until closed (bits 192..255): the
    /// slot settlement writes anyway, no owner or balance slot per trade. Money that would not
    /// fit goes to _overflow (bit 185 set), credited when the offer is closed.
    function _keep(uint256 o, uint256 id, uint256 money) private returns (uint256) {
        uint256 sum = (o >> 192) + money;
        if (sum >> 64 == 0) return (o & ~(M64 << 192)) | (sum << 192);
        _overflow[id] += money;
        return o | (uint256(1) << 185);
    }

    function _credit(address anon, uint256 amount) private {
        uint256 stored = _balances[anon];
        _balances[anon] = (stored == 0 ? 1 : stored) + amount;
    }
}
