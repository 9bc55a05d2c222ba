// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {UnknownOffer} from "./SolutionVerifier.sol";

/// @title Types, events, errors, storage, views and deposits of Market.sol (its comment says how they are
/// used); kept apart so that each file stays short.
abstract contract MarketBase {
    enum Kind {
        SELL,
        BUY
    }

    // ---------------------------------------------------------------- events
    event AssetAdded(
        address indexed anon, uint32 indexed feeder, Kind kind, uint64 energy, uint16 start, uint16 end
    );
    event FinancialAdded(address indexed anon, uint256 amount);
    event OfferPosted(
        uint32 indexed offerId,
        uint32 indexed feeder,
        Kind kind,
        uint64 energy,
        uint16 start,
        uint16 end,
        uint64 price,
        address indexed poster
    );
    event SolutionAccepted(
        uint32 indexed candidateId, address indexed submitter, uint256 objective, uint256 tradeCount, uint256[] trades
    );
    event TradeFinalized(uint16 interval, uint32 indexed seller, uint32 indexed buyer, uint64 energy, uint64 price);
    event IntervalFinalized(uint16 indexed interval, uint32 candidateId, uint256 tradeCount, uint256 energy);
    event EnergyDeposited(address indexed anon, Kind kind, uint64 energy, uint16 start, uint16 end);
    event FinancialDeposited(address indexed anon, uint256 amount);
    event OfferClosed(uint32 indexed offerId, uint64 energyDeposited, uint256 refund);

    // ------------------------------------------------- errors: roles and assets
    error NotDso();
    error BadParameters();
    error UnknownFeeder(uint32 feeder);
    error FeederMismatch(address anon, uint32 linked, uint32 requested);
    error NotLinked(address anon);
    error ZeroAmount();
    error AmountTooLarge();
    error BadRange(uint16 start, uint16 end);
    error RangeFinalized(uint16 end, uint16 nextFinalize);
    error PermissionRangeMismatch(Kind kind, uint16 start, uint16 end, uint16 heldStart, uint16 heldEnd);
    error OutsidePermission(Kind kind, uint16 start, uint16 end, uint16 heldStart, uint16 heldEnd);
    error InsufficientEnergyAsset(Kind kind, uint64 requested, uint64 available);
    error InsufficientBalance(uint256 requested, uint256 available);
    error NotOfferOwner(uint32 offerId);
    error OfferStillOpen(uint32 offerId, uint16 end, uint16 nextFinalize);
    error OfferAlreadyClosed(uint32 offerId);
    error TooManyOffers();
    error OfferTooSmall(uint64 energy, uint64 minimum);
    error TooManyOpenOffers(address anon, uint16 limit);
    error MalformedGrant(uint256 index);
    error InvalidGrantSignature();
    error AlreadyLinked(address anon);
    // --------------------------------------------------------- errors: clock
    error NotStarted();
    error MarketClosed();
    error IntervalNotEnded(uint16 interval, uint256 endsAt);
    error CandidateMismatch();
    error NotBetter(uint256 objective, uint256 candidateObjective);
    error DeadlinePassed(uint16 interval, uint256 finalizableAt);

    // ------------------------------------------------------------ bit layouts
    uint256 internal constant M16 = 0xffff;
    uint256 internal constant M32 = 0xffffffff;
    uint256 internal constant M64 = 0xffffffffffffffff;
    // offer word: remaining 0..63 | price 64..127 | start 128..143 | end 144..159 |
    //             feeder index 160..175 | kind 176..183 | closed 184 | money in _overflow 185 |
    //             money settled and not yet credited 192..255 (Market._keep)
    // owner word: owner 0..159, for an offer that is not its owner's first (the first is
    //             named by its owner's account word: one slot less per one-offer address)
    // account word: feeder index + 1 0..15 | SELL permission 16..111 | BUY permission 112..207,
    //               open offers 208..223, id of its first offer 224..255,
    //               a permission being energy 0..63 | start 64..79 | end 80..95 (relative)
    // feeder word: id 0..31 | cExt 32..95 | cInt 96..159
    // state word: nextFinalize 0..15 | head interval 16..31 | candidate id 32..63 |
    //             accepted block 64..127 | remaining objective 128..255

    uint256[] internal _feeders;
    mapping(uint32 => uint256) internal _feederIndex1;
    mapping(address => uint256) internal _accounts;
    // balance + 1 once an address was credited (0: never, or everything deposited by
    // closeOffers); settlement writes none (the money stays in the offers until closed).
    mapping(address => uint256) internal _balances;
    uint256[] internal _offers; // index = offer id; index 0 is a placeholder
    // offer id => owner word (not for an owner's first offer); a mapping, not an array
    mapping(uint256 => uint256) internal _ownerWords;
    bytes32 internal _headHash;
    uint256 internal _state;
    // chunked finalize of interval nextFinalize: Wh settled so far << 32 | trades settled so far
    uint256 internal _cursor;
    // offer id => settled money beyond the 64 bits of its offer word, until it is closed
    mapping(uint256 => uint256) internal _overflow;

    // ================================================================== views
    function offerCount() external view returns (uint256) {
        return _offers.length - 1;
    }

    /// @notice An offer's state; its owner and the energy it was posted with are in its
    /// OfferPosted event (poster, energy).
    function offer(uint32 offerId)
        external
        view
        returns (uint32 feeder, Kind kind, uint64 remaining, uint16 start, uint16 end, uint64 price, bool closed)
    {
        if (offerId == 0 || offerId >= _offers.length) revert UnknownOffer(offerId);
        uint256 o = _offers[offerId];
        return (
            _feederId((o >> 160) & M16),
            Kind((o >> 176) & 0xff),
            uint64(o),
            uint16(o >> 128),
            uint16(o >> 144),
            uint64(o >> 64),
            (o >> 184) & 1 != 0
        );
    }

    function account(address anon)
        external
        view
        returns (bool linked, uint32 feeder, uint64 sellEnergy, uint16 sellStart, uint16 sellEnd, uint64 buyEnergy,
            uint16 buyStart, uint16 buyEnd, uint256 balance)
    {
        uint256 acc = _accounts[anon];
        linked = acc & M16 != 0;
        feeder = linked ? _feederId((acc & M16) - 1) : 0;
        sellEnergy = uint64(acc >> 16);
        sellStart = uint16(acc >> 80);
        sellEnd = uint16(acc >> 96);
        buyEnergy = uint64(acc >> 112);
        buyStart = uint16(acc >> 176);
        buyEnd = uint16(acc >> 192);
        balance = _balance(anon);
    }

    function balanceOf(address anon) external view returns (uint256) {
        return _balance(anon);
    }

    function feeders() external view returns (uint32[] memory ids, uint64[] memory cExt, uint64[] memory cInt) {
        uint256 n = _feeders.length;
        ids = new uint32[](n);
        cExt = new uint64[](n);
        cInt = new uint64[](n);
        for (uint256 i = 0; i < n; i++) {
            uint256 f = _feeders[i];
            (ids[i], cExt[i], cInt[i]) = (uint32(f), uint64(f >> 32), uint64(f >> 96));
        }
    }

    // ============================================================== deposits
    /// Deposits an address's unused permissions, free balance and `money` (its slot cleared).
    function _depositAll(address owner, uint256 acc, uint256 money) internal {
        uint256 kept = acc;
        for (uint256 k = 0; k < 2; k++) {
            uint256 shift = _permShift(Kind(k));
            uint256 perm = acc >> shift;
            if (uint64(perm) != 0) {
                emit EnergyDeposited(owner, Kind(k), uint64(perm), uint16(perm >> 64), uint16(perm >> 80));
                kept &= ~(M64 << shift);
            }
        }
        if (kept != acc) _accounts[owner] = kept;
        uint256 stored = _balances[owner];
        if (stored > 1) money += stored - 1;
        if (money != 0) emit FinancialDeposited(owner, money);
        if (stored != 0) _balances[owner] = 0;
    }

    /// @notice Deposits `energy` Wh of the sender's unused permission of `kind` back to the DSO.
    function depositEnergy(Kind kind, uint64 energy) external {
        if (energy == 0) revert ZeroAmount();
        uint256 acc = _accounts[msg.sender];
        uint256 shift = _permShift(kind);
        uint256 perm = acc >> shift;
        uint64 held = uint64(perm);
        if (energy > held) revert InsufficientEnergyAsset(kind, energy, held);
        _accounts[msg.sender] = acc - (uint256(energy) << shift);
        emit EnergyDeposited(msg.sender, kind, energy, uint16(perm >> 64), uint16(perm >> 80));
    }

    /// @notice Deposits `amount` of the sender's free financial balance back to the DSO.
    function depositFinancial(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 balance = _balance(msg.sender);
        if (amount > balance) revert InsufficientBalance(amount, balance);
        _balances[msg.sender] = balance - amount + 1;
        emit FinancialDeposited(msg.sender, amount);
    }

    // ============================================================== internals
    function _balance(address anon) internal view returns (uint256) {
        uint256 stored = _balances[anon];
        return stored == 0 ? 0 : stored - 1;
    }

    function _permShift(Kind kind) internal pure returns (uint256) {
        return kind == Kind.SELL ? 16 : 112;
    }

    function _feederId(uint256 index) internal view returns (uint32) {
        return uint32(_feeders[index]);
    }
}
