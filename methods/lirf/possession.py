"""Proof of possession for a withdrawal: an Ed25519 signature by the deposit's owner.

At deposit the owner creates a key pair (the `cryptography` package; no cryptography of
our own). The private key stays on the owner's disk beside T_r; the public key goes to
the server with the deposit reply and is bound to the receipt (with T_r's SHA-256). To
withdraw, a node must sign a fresh server challenge:

    message = domain ‖ run id ‖ deposit id ‖ module SHA-256 ‖ requester node id ‖ challenge

each field length-prefixed, so no two field lists give the same bytes. The challenge
is 32 random bytes drawn for each request, so a signature seen once (a replay) fails
with the next challenge; the requester's node id is inside, so a signature cannot be
relayed by another node. A node without the private key cannot produce one, whatever
node id it has: a resumed simulation, whose nodes get new ids, still withdraws.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat,
                                                          PublicFormat)

DOMAIN = b"fedvault/lirf/withdraw/v1"
CHALLENGE_BYTES = 32
KEY_BYTES, SIGNATURE_BYTES = 32, 64


def new_key_pair() -> tuple[bytes, bytes]:
    """(private key, public key), both raw 32-byte Ed25519 encodings."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return raw_private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def withdrawal_message(run_id: str, deposit_id: str, module_sha256: str, requester_node_id: int,
                       challenge: bytes) -> bytes:
    fields = [DOMAIN, run_id.encode(), deposit_id.encode(), module_sha256.encode(),
              str(int(requester_node_id)).encode(), bytes(challenge)]
    return b"".join(len(f).to_bytes(4, "big") + f for f in fields)


def sign(private_key: bytes, message: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private_key).sign(message)


def verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is the holder's of `public_key` over `message` (False on any
    malformed key or signature: the inputs come from untrusted replies)."""
    if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
