"""Shards: which replica owns which market, by rendezvous (highest-random-weight) hashing.

Every replica lists the same markets and keeps those whose condition id maps to its shard.
Rendezvous hashing scores each (shard, market) pair with a hash and gives the market to
the shard with the highest score; no table or coordinator is needed, every replica
computes the same answer, and going from N to N + 1 shards moves only the markets the new
shard wins (about one in N + 1), never a market between two old shards.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from polymarket_agents.core.async_utils import ConfigurationError

__all__ = ["MAX_SHARDS", "Shard", "shard_owner"]

MAX_SHARDS = 1024
"""The most shards a deployment may have."""

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_ORDINAL = re.compile(r".*-(\d+)")


def _score(shard: int, key: str) -> int:
    # blake2b is in hashlib everywhere, fast for short keys, and stable across processes
    # and Python versions (unlike hash(), which is salted per process).
    digest = hashlib.blake2b(f"{shard}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_owner(key: str, count: int) -> int:
    """The shard, in ``0 .. count - 1``, that owns ``key`` (a market's condition id).

    Raises:
        ValueError: If ``count`` is not in ``1 .. MAX_SHARDS``.
    """
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shard count must be in 1..{MAX_SHARDS}, not {count!r}")
    if count == 1:
        return 0
    return max(range(count), key=lambda shard: _score(shard, key))


class _HasConditionId(Protocol):
    @property
    def condition_id(self) -> str: ...


_M = TypeVar("_M", bound=_HasConditionId)


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``: the markets this replica serves.

    Attributes:
        index: This shard, ``0 .. count - 1``.
        count: How many shards the markets are split into.

    Raises:
        ConfigurationError: If ``count`` is not in ``1 .. MAX_SHARDS`` or ``index`` is not
            below it.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigurationError(f"shard count must be in 1..{MAX_SHARDS}, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigurationError(
                f"shard index must be in 0..{self.count - 1} for {self.count} shards, "
                f"not {self.index}"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """A shard from ``"K/N"`` text: shard K of N, counted from 0.

        Raises:
            ConfigurationError: If ``spec`` is not ``K/N`` with ``0 <= K < N``.
        """
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise ConfigurationError(
                f"a shard is written K/N (shard K of N, from 0), like 0/3; not {spec!r}"
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def from_pod_name(cls, pod_name: str, count: int) -> Shard:
        """The shard of a StatefulSet pod: its ordinal (``agents-4`` is 4) modulo ``count``.

        With ``2 * count`` replicas, pods ``k`` and ``k + count`` serve the same shard: the
        one that takes the shard's lock first holds it, the other stands by.

        Raises:
            ConfigurationError: If the name does not end in ``-<ordinal>`` or ``count`` is
                out of range.
        """
        match = _ORDINAL.fullmatch(pod_name.strip())
        if match is None:
            raise ConfigurationError(
                f"cannot tell a StatefulSet ordinal from the pod name {pod_name!r}; "
                "expected a name like agents-2, or give the shard as K/N"
            )
        if not 1 <= count <= MAX_SHARDS:
            raise ConfigurationError(f"shard count must be in 1..{MAX_SHARDS}, not {count}")
        return cls(int(match.group(1)) % count, count)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], *, spec: str | None = None, count: int | None = None
    ) -> Shard | None:
        """The shard given by ``spec`` (``K/N``), else by ``POD_NAME`` and ``count``; or None.

        Raises:
            ConfigurationError: If the spec or the pod name is invalid.
        """
        if spec:
            return cls.parse(spec)
        if count is None:
            return None
        pod_name = environ.get("POD_NAME") or environ.get("HOSTNAME") or ""
        return cls.from_pod_name(pod_name, count)

    @property
    def lock_key(self) -> int:
        """A 32-bit key naming this shard among all shard layouts (for advisory locks)."""
        return self.count << 16 | self.index

    def owns(self, condition_id: str) -> bool:
        """Whether the market ``condition_id`` belongs to this shard."""
        return shard_owner(condition_id, self.count) == self.index

    def select(self, markets: Iterable[_M]) -> list[_M]:
        """The markets of ``markets`` that belong to this shard, in their order."""
        return [market for market in markets if self.owns(market.condition_id)]
