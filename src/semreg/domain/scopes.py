"""Docker token scopes: ``repository:<feed>/<repo>:pull,push``. Pure: stdlib only.

A token's ``access`` claim is a list of grants; ``Grant.allows`` decides a request. Parsing is
lenient where the Docker token specification is (unknown resource types are ignored) and strict
about names (they must be valid repository names).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from semreg.domain.errors import NameInvalid, RequestInvalid
from semreg.domain.names import parse_name

REPOSITORY: Final = "repository"
REGISTRY: Final = "registry"
CATALOG: Final = "catalog"
KNOWN_ACTIONS: Final = ("pull", "push", "delete")


@dataclass(frozen=True, slots=True)
class Access:
    """One requested or granted resource with its actions."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def as_claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scope(text: str) -> list[Access]:
    """Parse one ``scope`` parameter (space-separated scopes allowed).

    Raises:
        RequestInvalid: a scope is malformed or names an invalid repository.
    """
    out = []
    for item in text.split():
        parts = item.split(":")
        if len(parts) < 3:
            raise RequestInvalid(
                f"invalid scope {item[:200]!r}: expected <type>:<name>:<actions>",
                {"scope": item[:200]},
            )
        kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
        if kind == REPOSITORY:
            try:
                parse_name(name)
            except NameInvalid as exc:
                raise RequestInvalid(
                    f"invalid scope: {exc.message}", {"scope": item[:200]}
                ) from exc
            wanted = KNOWN_ACTIONS if actions == "*" else tuple(a for a in actions.split(",") if a)
        else:
            wanted = tuple(a for a in actions.split(",") if a)
        out.append(Access(kind, name, tuple(dict.fromkeys(wanted))))
    return out


def parse_access_claim(claim: object) -> list[Access]:
    """The ``access`` claim of a verified token; malformed entries grant nothing."""
    if not isinstance(claim, list):
        return []
    out = []
    for entry in claim:
        if not isinstance(entry, Mapping):
            continue
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if isinstance(kind, str) and isinstance(name, str) and isinstance(actions, list):
            out.append(Access(kind, name, tuple(a for a in actions if isinstance(a, str))))
    return out


def allows(grants: Sequence[Access], kind: str, name: str, action: str) -> bool:
    """True when one of ``grants`` covers ``action`` on the resource."""
    return any(
        g.type == kind and g.name == name and (action in g.actions or "*" in g.actions)
        for g in grants
    )


def format_scope(kind: str, name: str, actions: Iterable[str]) -> str:
    return f"{kind}:{name}:{','.join(actions)}"
