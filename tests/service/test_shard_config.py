"""Settings of a replica: a PostgreSQL URL for --db, a password file, and its shard."""

from __future__ import annotations

from pathlib import Path

import pytest

from polymarket_agents.agents import Shard
from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.service import Redactor, ServiceConfig, load_config, shown_db_path

URL = "postgresql://agents:s3cret@db:5432/agents"


def test_a_postgresql_url_selects_postgresql_and_a_path_sqlite() -> None:
    """--db takes a file path (a Path) or a postgresql:// URL (kept as text)."""
    assert load_config({"db_path": URL}, {}).db_path == URL
    assert load_config({}, {"POLYMARKET_AGENTS_DB": "x/a.sqlite"}).db_path == Path("x/a.sqlite")


def test_shards_and_password_files_need_postgresql() -> None:
    """Replicas share one PostgreSQL database; with a SQLite file these settings are errors
    that say so."""
    with pytest.raises(ConfigurationError, match="shard: needs a PostgreSQL database"):
        load_config({"shard": "0/2"}, {})
    with pytest.raises(ConfigurationError, match="db_password_file: needs a PostgreSQL"):
        load_config({"db_password_file": "pw"}, {})
    with pytest.raises(ConfigurationError, match=r"--shard: shard index must be in 0\.\.2"):
        load_config({"shard": "3/3", "db_path": URL}, {})
    with pytest.raises(ConfigurationError, match="K/N"):
        load_config({"shard": "half", "db_path": URL}, {})


def test_the_shard_comes_from_flags_or_the_environment() -> None:
    """--shard K/N or POLYMARKET_AGENTS_SHARD; --shard-count for StatefulSet ordinals."""
    config = load_config({"shard": "1/3"}, {"POLYMARKET_AGENTS_DB": URL})
    assert config.shard == Shard(1, 3)
    env = {"POLYMARKET_AGENTS_DB": URL, "POLYMARKET_AGENTS_SHARD_COUNT": "3"}
    assert load_config({}, env).shard_count == 3
    with pytest.raises(ConfigurationError, match="shard_count"):
        ServiceConfig(db_path=URL, shard_count=0)


def test_the_database_password_never_shows() -> None:
    """/status and logs show the URL without its password."""
    config = ServiceConfig(db_path=URL)
    assert shown_db_path(URL) == "postgresql://agents:***@db:5432/agents"
    assert "s3cret" not in Redactor.for_config(config)(f"cannot reach {URL}: refused")
