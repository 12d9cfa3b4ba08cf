"""Verified tokens are kept per process only while they are valid: the cache never outlives
a token's ``exp`` (plus the leeway PyJWT allows), and a forged token is never kept."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo

import jwt
import jwt.api_jwt
import pytest

from semreg.domain.errors import Unauthorized
from semreg.domain.permissions import Principal, PrincipalKind
from semreg.domain.scopes import parse_scope
from semreg.services.tokens import AuthConfig, TokenService

SECRET = b"x" * 32
SERVICE = "registry.test:5000"


def service(ttl_seconds: int = 60) -> TokenService:
    config = AuthConfig(token_secret=SECRET, token_ttl=timedelta(seconds=ttl_seconds))
    return TokenService(None, config)  # type: ignore[arg-type]  # verify() reads no database


def admin() -> Principal:
    return Principal(PrincipalKind.KEY, 7, "key:admin", frozenset({"*"}), nonce="n" * 32)


def test_a_cached_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = service(ttl_seconds=60)
    issued = tokens.issue(admin(), parse_scope("repository:feed/app:pull"), SERVICE)
    assert tokens.verify(issued.token, SERVICE).principal_id == 7
    assert tokens.verify(issued.token, SERVICE).principal_id == 7  # from the cache
    # 66 s later, past exp plus PyJWT's 5 s leeway, by both clocks (the cache's and PyJWT's):
    # refused although it is cached.
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 66)

    class Later(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Later:  # type: ignore[override]
            return cls.fromtimestamp(now + 66, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(issued.token, SERVICE)


def test_a_token_is_cached_per_service_and_a_forged_one_never(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = service()
    issued = tokens.issue(admin(), parse_scope("repository:feed/app:pull"), SERVICE)
    tokens.verify(issued.token, SERVICE)
    with pytest.raises(Unauthorized, match="another service"):
        tokens.verify(issued.token, "elsewhere:5000")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    forged = jwt.encode(claims, b"y" * 32, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="bad signature"):
            tokens.verify(forged, SERVICE)
