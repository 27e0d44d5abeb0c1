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
