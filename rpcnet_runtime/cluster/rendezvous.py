"""Rendezvous (highest-random-weight) hashing: one stable order of workers per key.

Every worker gets a score for a key, ``blake2b(key, worker id)`` read as a 64-bit integer, and
the order for the key is the workers by descending score (ties, which need a 64-bit collision,
by id). Properties the cluster channel relies on:

* the same key and the same set of workers give the same order in every process and on every
  run (a real hash, never Python's salted ``hash()``), so all attempts of one logical call, and
  the retries of a client that restarted, go back to the key's home worker, whose dedupe store
  then answers instead of running the work twice;
* removing a worker only moves the keys whose home it was, and each of those moves to its own
  second choice, so the load of a failed worker spreads over all the others; adding a worker
  only takes the keys it now wins.

Fields are length-prefixed before hashing, so no two (key, id) pairs hash the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["home_for_key", "order_for_key", "rendezvous_score"]

_PERSON = b"rpcnet-hrw-v1"


def _field(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def rendezvous_score(key: str, worker_id: str) -> int:
    """The weight of `worker_id` for `key`: a 64-bit integer, identical across processes."""
    digest = hashlib.blake2b(
        _field(key) + _field(worker_id), digest_size=8, person=_PERSON
    ).digest()
    return int.from_bytes(digest, "big")


def order_for_key(key: str, worker_ids: Iterable[str]) -> list[str]:
    """`worker_ids` (duplicates dropped) ordered for `key`: home worker first."""
    unique = set(worker_ids)
    return sorted(unique, key=lambda wid: (-rendezvous_score(key, wid), wid))


def home_for_key(key: str, worker_ids: Iterable[str]) -> str | None:
    """The first worker of `order_for_key`, without sorting; None when there are no workers."""
    best: tuple[int, str] | None = None
    for wid in worker_ids:
        score = rendezvous_score(key, wid)
        if best is None or score > best[0] or (score == best[0] and wid < best[1]):
            best = (score, wid)
    return best[1] if best is not None else None
