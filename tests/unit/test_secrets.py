"""Only hashes of passwords and tokens are stored; checking them must still work."""

from cadenza.domain.secrets import (
    TOKEN_PREFIX,
    hash_password,
    hash_token,
    new_api_token,
    verify_password,
)


def test_password_hash_verifies_only_the_password_and_is_salted():
    stored = hash_password("correct horse")
    assert "correct horse" not in stored and stored.startswith("scrypt$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horse!", stored)
    assert hash_password("correct horse") != stored  # a fresh salt each time
    assert not verify_password("anything", None) and not verify_password("x", "md5$abc")


def test_tokens_are_random_prefixed_and_hashed_stably():
    tokens = {new_api_token() for _ in range(1000)}
    assert len(tokens) == 1000 and all(t.startswith(TOKEN_PREFIX) for t in tokens)
    token = next(iter(tokens))
    assert hash_token(token) == hash_token(token) and token not in hash_token(token)
    assert len(hash_token(token)) == 64


def test_a_hash_names_its_parameters_and_older_ones_still_verify_and_ask_for_a_rehash():
    import base64
    import hashlib

    from cadenza.domain.secrets import needs_rehash

    stored = hash_password("pw-1", cost=5)
    assert stored.startswith("scrypt$ln=5,r=8,p=3$") and verify_password("pw-1", stored)
    assert not needs_rehash(stored, cost=5) and needs_rehash(stored, cost=6)
    salt = b"0123456789abcdef"  # the format before parameters were written: ln=14, p=1
    digest = hashlib.scrypt(b"old-pw", salt=salt, n=2**14, r=8, p=1)
    legacy = f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert verify_password("old-pw", legacy) and not verify_password("old-pw!", legacy)
    assert needs_rehash(legacy, cost=14)


def test_damaged_or_hostile_hashes_never_verify_nor_raise():
    for stored in ("scrypt$ln=40,r=8,p=3$AA==$AA==", "scrypt$ln=x$AA==$AA==", "scrypt$$$$$",
                   "scrypt$ln=5,r=8$AA==$AA==", "scrypt$not-base64!$x"):  # fmt: skip
        assert not verify_password("pw", stored)
