"""Authentication: API keys, passwords, sign-in throttling, and the Docker token service.

Tokens are HS256 JWTs (PyJWT) bound to one service (``aud``), short-lived, carrying the Docker
``access`` claim plus a reference to the principal that obtained them (``pri``), so a token can
act as that principal on /api. Passwords are hashed with argon2id (argon2-cffi); API keys carry
256 random bits and are stored as SHA-256, which is safe for such keys and indexable.
Imports: domain, metadata.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from semreg.domain.errors import TooManyRequests, Unauthorized
from semreg.domain.names import is_feed_name
from semreg.domain.permissions import Principal, PrincipalKind, anonymous
from semreg.domain.scopes import REGISTRY, REPOSITORY, Access, parse_access_claim
from semreg.metadata import principals as store
from semreg.metadata import repo
from semreg.metadata.engine import Database
from semreg.metadata.hot import Unsure

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "semreg_"
ISSUER: Final = "semreg"
ALGORITHM: Final = "HS256"
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both paths cost the same (made on
    first use: hashing takes a few hundred milliseconds, which every process start paid)."""
    return _hasher.hash(secrets.token_hex(16))


_PROOF_KEY: Final = secrets.token_bytes(32)
_PRINCIPAL_CACHE_SIZE: Final = 4096
_TOKEN_CACHE_SIZE: Final = 10_000
_LEEWAY_SECONDS: Final = 5
_VERIFIED_CACHE_SIZE: Final = 4096


def _proof(user: store.UserRow, password: str) -> str:
    """A process-keyed digest standing for "this password matched this stored hash"."""
    message = f"{user.id}|{user.nonce}|{user.password_hash}|{password}".encode()
    return hmac.new(_PROOF_KEY, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthConfig:
    token_secret: bytes
    token_ttl: timedelta = timedelta(minutes=5)
    failure_limit: int = 10
    failure_window: timedelta = timedelta(minutes=5)
    failure_delay: float = 0.25
    principal_cache: timedelta = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: datetime
    access: tuple[Access, ...]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    access: tuple[Access, ...]
    principal_kind: PrincipalKind
    principal_id: int | None
    principal_nonce: str = ""


def hash_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_key_text() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _principal_for_key(row: store.ApiKeyRow, user: Principal | None) -> Principal:
    if row.type == "personal" and user is not None:
        return Principal(
            PrincipalKind.KEY,
            row.id,
            user.name,
            user.system_apis,
            user.feed_permissions,
            nonce=row.nonce,
        )
    name = f"key:{row.display_name or row.id}"
    if row.type == "feed" and row.feed is not None:
        return Principal(
            PrincipalKind.KEY,
            row.id,
            name,
            feed_permissions={row.feed: row.permissions},
            nonce=row.nonce,
        )
    return Principal(PrincipalKind.KEY, row.id, name, row.system_apis, nonce=row.nonce)


class TokenService:
    """Who a credential belongs to, and the tokens that stand for it."""

    def __init__(self, db: Database, config: AuthConfig) -> None:
        self.db = db
        self.config = config
        # Principals behind tokens, for ``principal_cache``: (kind, id, nonce) -> (until, found).
        # Per process and short-lived, so a revocation reaches every replica within that time.
        self._principals: dict[
            tuple[PrincipalKind, int | None, str], tuple[float, Principal | None]
        ] = {}
        # Proofs of passwords verified in this process (argon2 is slow on purpose); keyed by the
        # stored hash too, so a changed password or a re-created user never matches.
        self._verified: dict[str, bool] = {}
        # Tokens whose signature and claims were checked, by (token, service): a token never
        # changes, so only its lifetime needs checking again. Forged ones are never kept.
        self._tokens: dict[tuple[str, str], tuple[float, VerifiedToken]] = {}

    async def _with_anonymous_feeds(self, principal: Principal) -> Principal:
        async with self.db.read() as conn:
            feeds = await repo.list_anonymous_feeds(conn)
        return principal.with_anonymous_feeds(feeds)

    async def anonymous(self) -> Principal:
        """The anonymous caller, with the feeds that allow anonymous view now."""
        if self.db.hot is not None:
            feeds = await self.db.hot.anonymous_feeds()
            if not isinstance(feeds, Unsure):
                return anonymous().with_anonymous_feeds(feeds)
        return await self._with_anonymous_feeds(anonymous())

    async def _user_principal(self, user: store.UserRow) -> Principal:
        async with self.db.read() as conn:
            permissions = await store.user_feed_permissions(conn, user.id)
        return Principal(
            PrincipalKind.USER, user.id, user.name, user.system_apis, permissions, nonce=user.nonce
        )

    async def principal_for_key(self, text: str) -> Principal | None:
        """The principal of an API key, or None for an unknown or expired key."""
        async with self.db.read() as conn:
            row = await store.find_api_key(conn, hash_key(text))
            user = None
            if row is not None and row.user_id is not None:
                user = await store.find_user_by_id(conn, row.user_id)
        if row is None or (row.expires_at is not None and row.expires_at <= datetime.now(UTC)):
            return None
        user_principal = await self._user_principal(user) if user is not None else None
        return await self._with_anonymous_feeds(_principal_for_key(row, user_principal))

    async def principal_for_ref(
        self, kind: PrincipalKind, principal_id: int | None, nonce: str = ""
    ) -> Principal | None:
        """The current principal behind a token; None when the key or user is gone, expired,
        or is another one now (a re-created principal has another nonce).

        Answers are kept for ``principal_cache`` (a few seconds): that bounds how long a
        revocation takes to reach a token on every process (``docs/auth.md``).
        """
        key = (kind, principal_id, nonce)
        now = time.monotonic()
        cached = self._principals.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._load_principal(kind, principal_id, nonce)
        self._principals[key] = (now + self.config.principal_cache.total_seconds(), found)
        while len(self._principals) > _PRINCIPAL_CACHE_SIZE:
            self._principals.pop(next(iter(self._principals)))
        return found

    async def _load_principal(
        self, kind: PrincipalKind, principal_id: int | None, nonce: str
    ) -> Principal | None:
        if kind is PrincipalKind.ANONYMOUS or principal_id is None:
            return await self.anonymous() if kind is PrincipalKind.ANONYMOUS else None
        async with self.db.read() as conn:
            if kind is PrincipalKind.USER:
                user = await store.find_user_by_id(conn, principal_id)
                key = None
            else:
                key = await store.find_api_key_by_id(conn, principal_id)
                user = (
                    await store.find_user_by_id(conn, key.user_id) if key and key.user_id else None
                )
        if kind is PrincipalKind.USER:
            if user is None or not secrets.compare_digest(user.nonce, nonce):
                return None
            return await self._with_anonymous_feeds(await self._user_principal(user))
        if key is None or not secrets.compare_digest(key.nonce, nonce):
            return None
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            return None
        user_principal = await self._user_principal(user) if user is not None else None
        return await self._with_anonymous_feeds(_principal_for_key(key, user_principal))

    async def authenticate(self, username: str, secret: str, client: str) -> Principal:
        """Check a user name and password, or ``api`` (any name) and an API key.

        Raises:
            TooManyRequests: too many recent password failures for this client and account.
            Unauthorized: the credentials are wrong.
        """
        if secret.startswith(KEY_PREFIX) or username == "api" or username.startswith(KEY_PREFIX):
            # Keys carry 256 random bits: guessing is hopeless, so failures are only slowed, never
            # counted (counting per address would let anyone lock key users out of a shared one).
            # A key typed as the user name is taken as a key, and never echoed or stored.
            text = secret if not username.startswith(KEY_PREFIX) else username
            principal = await self.principal_for_key(text)
            if principal is None:
                await asyncio.sleep(self.config.failure_delay)
                raise Unauthorized("invalid API key")
            return principal
        # What a client typed as a user name may be a secret: only its hash is stored.
        subject = hashlib.sha256(f"{client}|{username}".encode()).hexdigest()
        user = None
        if is_feed_name(username):  # other text (a NUL, a secret) never reaches SQL
            async with self.db.read() as conn:
                user = await store.find_user(conn, username)
        if user is not None and self._verified.get(_proof(user, secret)):
            return await self._with_anonymous_feeds(await self._user_principal(user))
        # Counted before the password is checked, atomically: parallel guesses all count.
        async with self.db.write() as conn:
            attempts = await store.count_failure(conn, subject, self.config.failure_window)
        if attempts > self.config.failure_limit:
            raise TooManyRequests(
                "too many failed sign-ins; wait a few minutes before trying again",
                {"retryAfter": int(self.config.failure_window.total_seconds())},
            )
        principal = await self._check_password(user, secret)
        if principal is None:
            await asyncio.sleep(self.config.failure_delay)
            raise Unauthorized("invalid user name or password")
        async with self.db.write() as conn:
            await store.clear_failures(conn, subject)
        return principal

    async def _check_password(self, user: store.UserRow | None, password: str) -> Principal | None:
        encoded = user.password_hash if user is not None else _dummy_hash()
        try:
            ok: bool = await asyncio.to_thread(_hasher.verify, encoded, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or user is None:
            return None
        self._verified[_proof(user, password)] = True
        while len(self._verified) > _VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        return await self._with_anonymous_feeds(await self._user_principal(user))

    # --- tokens ----------------------------------------------------------------------------

    def grant(self, principal: Principal, requested: Sequence[Access]) -> tuple[Access, ...]:
        """The part of ``requested`` that ``principal`` may have (a partial grant is no error)."""
        granted = []
        for access in requested:
            if access.type == REPOSITORY:
                feed = access.name.split("/", 1)[0]
                actions = principal.allowed_actions(feed, access.actions)
            elif access.type == REGISTRY and access.name == "catalog":
                actions = [] if principal.is_anonymous else list(access.actions)
            else:
                actions = []
            granted.append(Access(access.type, access.name, tuple(actions)))
        return tuple(granted)

    def issue(self, principal: Principal, requested: Sequence[Access], service: str) -> IssuedToken:
        now = datetime.now(UTC).replace(microsecond=0)
        access = self.grant(principal, requested)
        claims = {
            "iss": ISSUER,
            "sub": principal.name,
            "aud": service,
            "iat": now,
            "nbf": now,
            "exp": now + self.config.token_ttl,
            "jti": uuid.uuid4().hex,
            "access": [a.as_claim() for a in access],
            "pri": {"kind": str(principal.kind), "id": principal.id, "nonce": principal.nonce},
        }
        token = jwt.encode(claims, self.config.token_secret, algorithm=ALGORITHM)
        return IssuedToken(token, int(self.config.token_ttl.total_seconds()), now, access)

    def verify(self, token: str, service: str) -> VerifiedToken:
        """Check a token's signature, algorithm, issuer, audience and lifetime.

        Raises:
            Unauthorized: the token is not valid for this service now.
        """
        cached = self._tokens.get((token, service))
        if cached is not None:
            if time.time() < cached[0]:
                return cached[1]
            del self._tokens[(token, service)]
        verified, expires = self._decode(token, service)
        if len(self._tokens) >= _TOKEN_CACHE_SIZE:
            self._tokens.pop(next(iter(self._tokens)))
        self._tokens[(token, service)] = (expires, verified)
        return verified

    def _decode(self, token: str, service: str) -> tuple[VerifiedToken, float]:
        try:
            claims = jwt.decode(
                token,
                self.config.token_secret,
                algorithms=[ALGORITHM],
                audience=service,
                issuer=ISSUER,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "nbf", "aud", "iss", "sub"]},
            )
            pri = claims.get("pri") or {}
            kind = PrincipalKind(pri.get("kind", "anonymous"))
            principal_id = pri.get("id")
            nonce = pri.get("nonce", "")
        except (jwt.InvalidTokenError, ValueError, AttributeError) as exc:
            raise Unauthorized(f"invalid token: {_reason(exc)}") from exc
        if principal_id is not None and (
            type(principal_id) is not int or not isinstance(nonce, str) or len(nonce) > 64
        ):
            raise Unauthorized("invalid token: malformed principal")
        verified = VerifiedToken(
            str(claims["sub"]),
            tuple(parse_access_claim(claims.get("access"))),
            kind,
            principal_id,
            nonce,
        )
        # PyJWT required "exp" and accepted it with this leeway; the cache keeps to the same.
        return verified, float(claims["exp"]) + _LEEWAY_SECONDS


def _reason(exc: Exception) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "issued for another service"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    return "malformed"
