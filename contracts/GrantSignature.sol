// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title EIP-712 signatures of the DSO's grants (Market.postSignedOffer, returnGrant).
/// @notice Domain: name "te-testbed market", version "1", the chain id at deployment and the
/// market's address. Message: Grant(address anon, uint32 feeder, uint64 sellEnergy,
/// uint16 sellStart, uint16 sellEnd, uint64 buyEnergy, uint16 buyStart, uint16 buyEnd,
/// uint256 money), anon being the address that uses it. The grant word packs feeder 0..31 |
/// SELL permission 32..127 | BUY permission 128..223, a permission being energy 0..63 |
/// start 64..79 | end 80..95 of it (the layout of Market's account word); agents.chain.encoding
/// signs the same message with eth-account.
library GrantSignature {
    bytes32 internal constant GRANT_TYPEHASH = keccak256(
        "Grant(address anon,uint32 feeder,uint64 sellEnergy,uint16 sellStart,uint16 sellEnd,"
        "uint64 buyEnergy,uint16 buyStart,uint16 buyEnd,uint256 money)"
    );

    function domainSeparator(address market) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("te-testbed market"),
                keccak256("1"),
                block.chainid,
                market
            )
        );
    }

    /// The address that signed `grant` and `money` for `anon` ((r, vs): EIP-2098 compact
    /// signature); 0 for an invalid signature.
    function signer(bytes32 domain, address anon, uint256 grant, uint256 money, bytes32 r, bytes32 vs)
        internal
        pure
        returns (address)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                anon,
                uint32(grant),
                uint64(grant >> 32),
                uint16(grant >> 96),
                uint16(grant >> 112),
                uint64(grant >> 128),
                uint16(grant >> 192),
                uint16(grant >> 208),
                money
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domain, structHash));
        uint8 v = uint8(uint256(vs) >> 255) + 27;
        return ecrecover(digest, v, r, bytes32(uint256(vs) & ((1 << 255) - 1)));
    }
}
