"""Shards: rendezvous hashing of condition ids, K/N specs and StatefulSet pod names."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from polymarket_agents.agents import MAX_SHARDS, Shard, shard_owner
from polymarket_agents.core.async_utils import ConfigurationError

IDS = [f"0x{n:064x}" for n in range(3_000)]


def test_every_market_has_exactly_one_owner_and_the_split_is_even() -> None:
    """The shards of a layout partition the markets, each taking about its share."""
    shards = [Shard(k, 3) for k in range(3)]
    owners = [[s for s in shards if s.owns(cid)] for cid in IDS]
    assert all(len(found) == 1 for found in owners)
    counts = Counter(found[0].index for found in owners)
    assert all(abs(n - 1_000) < 120 for n in counts.values()), counts


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_adding_a_shard_moves_only_the_markets_it_takes(count: int) -> None:
    """Going from N to N + 1 shards moves markets only to the new shard, about 1/(N+1)."""
    before = {cid: shard_owner(cid, count) for cid in IDS}
    after = {cid: shard_owner(cid, count + 1) for cid in IDS}
    moved = [cid for cid in IDS if before[cid] != after[cid]]
    assert all(after[cid] == count for cid in moved)
    assert abs(len(moved) / len(IDS) - 1 / (count + 1)) < 0.04


def test_owners_are_the_same_in_every_process() -> None:
    """The hash is not Python's salted hash(): another interpreter agrees."""
    code = (
        "from polymarket_agents.agents import shard_owner\n"
        "print([shard_owner(f'0x{n:064x}', 5) for n in range(50)])"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == str([shard_owner(cid, 5) for cid in IDS[:50]])


def test_select_keeps_order_and_only_own_markets() -> None:
    """select() filters any objects with a condition id, keeping their order."""

    class M:
        def __init__(self, condition_id: str) -> None:
            self.condition_id = condition_id

    markets = [M(cid) for cid in IDS[:300]]
    parts = [Shard(k, 4).select(markets) for k in range(4)]
    assert sorted(m.condition_id for part in parts for m in part) == sorted(IDS[:300])
    assert all(part == sorted(part, key=markets.index) for part in parts)


@pytest.mark.parametrize(
    ("spec", "expected"), [("0/3", Shard(0, 3)), (" 2 / 3 ", Shard(2, 3)), ("0/1", Shard(0, 1))]
)
def test_specs_parse(spec: str, expected: Shard) -> None:
    """K/N text names shard K of N, counted from 0."""
    assert Shard.parse(spec) == expected
    assert str(expected) == spec.replace(" ", "")


@pytest.mark.parametrize("spec", ["3/3", "1", "-1/3", "a/b", "0/0", f"0/{MAX_SHARDS + 1}", ""])
def test_bad_specs_are_refused_with_the_form_to_use(spec: str) -> None:
    """An invalid shard is a configuration error that says what was expected."""
    with pytest.raises(ConfigurationError, match=r"K/N|shard (index|count)"):
        Shard.parse(spec)


def test_pod_ordinals_map_to_shards_with_standbys() -> None:
    """agents-k and agents-(k + N) serve shard k: a holder and its standby."""
    assert [Shard.from_pod_name(f"agents-{i}", 3).index for i in range(6)] == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ConfigurationError, match="ordinal"):
        Shard.from_pod_name("agents", 3)


def test_the_environment_gives_the_shard() -> None:
    """An explicit K/N wins; otherwise POD_NAME (or HOSTNAME) with a count; else none."""
    env = {"POD_NAME": "agents-4", "HOSTNAME": "agents-5"}
    assert Shard.from_environment(env, spec="1/2", count=3) == Shard(1, 2)
    assert Shard.from_environment(env, count=3) == Shard(1, 3)
    assert Shard.from_environment({"HOSTNAME": "agents-5"}, count=3) == Shard(2, 3)
    assert Shard.from_environment(env) is None


def test_lock_keys_differ_between_layouts() -> None:
    """Shard 0 of 3 and shard 0 of 4 hold different markets, so different locks."""
    keys = {Shard(k, n).lock_key for n in range(1, 20) for k in range(n)}
    assert len(keys) == sum(range(1, 20))
