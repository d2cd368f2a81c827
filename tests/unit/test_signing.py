"""Signed URLs: a signature binds method, artifact, tenant, expiry (and an upload's size); any
change to any part is `invalid_signature`, a past expiry is `url_expired`, HEAD passes as GET."""

from __future__ import annotations

import pytest

from artifacta_box import errors
from artifacta_box.security.signing import UrlSigner, canonical_method

SECRET = b"s" * 48
ART = "art_AAAAAAAAAAAAAAAA"
OTHER_ART = "art_AAAAAAAAAAAAAAAB"
TENANT = 7
NOW = 1_800_000_000
EXP = NOW + 3600


@pytest.fixture
def signer() -> UrlSigner:
    return UrlSigner(SECRET)


def sig(signer: UrlSigner, method="GET", artifact=ART, tenant=TENANT, expires=EXP, extra="") -> str:
    return signer.sign(method, artifact, tenant, expires, extra)


def test_a_fresh_signature_verifies(signer):
    signer.verify("GET", ART, TENANT, str(EXP), sig(signer), NOW)
    signer.verify("GET", ART, TENANT, EXP, sig(signer), NOW)  # int expiry too


def test_head_is_verified_as_get_but_no_other_method_is(signer):
    s = sig(signer, "GET")
    signer.verify("HEAD", ART, TENANT, str(EXP), s, NOW)
    signer.verify("head", ART, TENANT, str(EXP), s, NOW)
    for method in ("PUT", "POST", "DELETE", "PATCH", "OPTIONS"):
        with pytest.raises(errors.InvalidSignature):
            signer.verify(method, ART, TENANT, str(EXP), s, NOW)
    # and an upload (PUT) signature never serves a download
    put = sig(signer, "PUT", extra="100")
    with pytest.raises(errors.InvalidSignature):
        signer.verify("GET", ART, TENANT, str(EXP), put, NOW, extra="100")
    assert canonical_method("HEAD") == "GET" and canonical_method("put") == "PUT"


@pytest.mark.parametrize(
    "change",
    [
        {"artifact": OTHER_ART},
        {"artifact": ART.lower()},
        {"tenant": TENANT + 1},
        {"expires": str(EXP + 1)},
        {"expires": str(EXP - 1)},
        {"extra": "101"},
    ],
    ids=["artifact", "artifact-case", "tenant", "expiry+1", "expiry-1", "size"],
)
def test_changing_any_bound_value_is_invalid(signer, change):
    s = signer.sign("PUT", ART, TENANT, EXP, "100")
    args = {"artifact": ART, "tenant": TENANT, "expires": str(EXP), "extra": "100", **change}
    with pytest.raises(errors.InvalidSignature):
        signer.verify("PUT", args["artifact"], args["tenant"], args["expires"], s, NOW,
                      extra=args["extra"])


@pytest.mark.parametrize(
    "expires",
    [f"0{EXP}", f"+{EXP}", f" {EXP}", f"{EXP} ", f"{EXP:_}", f"{EXP}.0", "", "-1", "0x1", None,
     "1" * 13, "١٨٠٠٠٠٣٦٠٠"],
    ids=["leading-zero", "plus", "lead-space", "trail-space", "underscore", "decimal", "empty",
         "negative", "hex", "missing", "too-long", "arabic-digits"],
)
def test_a_non_canonical_expiry_is_invalid_even_when_it_means_the_same_number(signer, expires):
    with pytest.raises(errors.InvalidSignature):
        signer.verify("GET", ART, TENANT, expires, sig(signer), NOW)


def test_changing_the_signature_is_invalid(signer):
    s = sig(signer)
    flipped = s[:-1] + ("A" if s[-1] != "A" else "B")
    for bad in (flipped, s[:-1], s + "A", s.upper(), "", None, "é" * 43, s[:10],
                s.replace(s[0], "+", 1), "=" + s[1:]):
        with pytest.raises(errors.InvalidSignature):
            signer.verify("GET", ART, TENANT, str(EXP), bad, NOW)


def test_another_secret_is_invalid(signer):
    foreign = UrlSigner(b"t" * 48).sign("GET", ART, TENANT, EXP)
    with pytest.raises(errors.InvalidSignature):
        signer.verify("GET", ART, TENANT, str(EXP), foreign, NOW)


def test_expiry_is_checked_after_the_signature(signer):
    s = sig(signer)
    signer.verify("GET", ART, TENANT, str(EXP), s, EXP - 1)
    with pytest.raises(errors.UrlExpired):
        signer.verify("GET", ART, TENANT, str(EXP), s, EXP)
    with pytest.raises(errors.UrlExpired):
        signer.verify("GET", ART, TENANT, str(EXP), s, EXP + 10**6)
    # pushing an expired URL's expiry forward is tampering, not a renewal
    with pytest.raises(errors.InvalidSignature):
        signer.verify("GET", ART, TENANT, str(EXP + 10**6), s, EXP + 1)


def test_mint_caps_the_lifetime(signer):
    expires_in, expires, s = signer.mint("GET", ART, TENANT, NOW + 0.9, 3600, 600)
    assert expires_in == 600 and expires == NOW + 600
    signer.verify("GET", ART, TENANT, str(expires), s, NOW)
    expires_in, expires, _ = signer.mint("GET", ART, TENANT, NOW, 3600, 7 * 86400)
    assert (expires_in, expires) == (3600, NOW + 3600)


def test_verify_refuses_an_expiry_beyond_the_configured_cap(signer):
    far = NOW + 30 * 86400
    s = sig(signer, expires=far)
    signer.verify("GET", ART, TENANT, str(far), s, NOW)  # no cap given: valid
    with pytest.raises(errors.UrlExpired):
        signer.verify("GET", ART, TENANT, str(far), s, NOW, max_lifetime=7 * 86400)


def test_signatures_issued_by_earlier_versions_still_verify():
    # Pinned: what the box minted before the MAC was computed from precomputed HMAC states
    # (hmac.new under itsdangerous's derived key). Outstanding URLs must keep working.
    signer = UrlSigner(SECRET)
    assert signer.sign("GET", ART, TENANT, EXP, "key_x") == \
        "wzTqv6Opieb4rX_UTfFT4QogS-2s-2w40Fd6AjDvaMg"
    signer.verify("HEAD", ART, TENANT, str(EXP), "wzTqv6Opieb4rX_UTfFT4QogS-2s-2w40Fd6AjDvaMg",
                  NOW, extra="key_x")
    assert UrlSigner(b"L" * 100).sign("PUT", ART, TENANT, EXP, "4096") == \
        "FC1Vv7kEk7vO6nAPuxtGQvVAwltHv2V-j68rtuMlhIw"
