"""Engines and sessions. The caller owns the transaction: services never commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: URL | str, **kwargs) -> Engine:
    options = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20, "connect_args": {"connect_timeout": 5}}
    options.update(kwargs)
    return create_engine(url, **options)


# One session factory per engine: a sessionmaker makes a Session subclass of its own, whose event set-up costs more
# than a short unit of work's statements.
_FACTORIES: WeakKeyDictionary[Engine, sessionmaker[Session]] = WeakKeyDictionary()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit when the block ends cleanly, roll back on any error."""
    factory = _FACTORIES.get(engine)
    if factory is None:
        factory = _FACTORIES[engine] = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
