"""Fixtures for the state store tests: one PostgreSQL server per session, a fresh database per test,
and a store per backend (`store`, parametrised over sqlite and postgres)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from runtime.state import StateConfig, Store, open_store

from tests.support.postgres import PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    if not server.available:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: install the `postgresql` package "
                    "(.ci/run does)")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    return pg_server.database()


def make_store(backend: str, tmp_path: Path, dsn: str | None = None, **kwargs) -> Store:
    section = {"backend": backend, **({"dsn": "secret://state-dsn"} if backend == "postgres" else {})}
    section.update(kwargs.pop("section", {}))
    return open_store(StateConfig(section), cache_dir=tmp_path / "cache", resolve=lambda ref: dsn, **kwargs)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_factory(backend: str, tmp_path: Path, request) -> Iterator:
    """Stores on one database of the parametrised backend (several = several instances)."""
    dsn = request.getfixturevalue("pg_dsn") if backend == "postgres" else None
    made: list[Store] = []

    def make(**kwargs) -> Store:
        store = make_store(backend, tmp_path, dsn, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
