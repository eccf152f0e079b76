"""The persistent session store (issue 15): established sessions and CoAP
observations saved so that a restarted server restores them and its peers
carry on with no handshake. :class:`SessionStore` is the interface,
:class:`SqliteSessionStore` the default, :class:`StateSaver` the periodic,
incremental saving with reserved sequence numbers."""

from dtlsfast.store.protocol import MemorySessionStore, ResourceStore, SessionStore, StoreBatch
from dtlsfast.store.records import ObservationRecord, SessionRecord
from dtlsfast.store.saver import StateSaver
from dtlsfast.store.sqlite import SqliteSessionStore

__all__ = [
    "MemorySessionStore",
    "ObservationRecord",
    "ResourceStore",
    "SessionRecord",
    "SessionStore",
    "SqliteSessionStore",
    "StateSaver",
    "StoreBatch",
]
