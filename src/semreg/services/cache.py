"""A small LRU of immutable bytes bounded by their total size. Imports: domain, stdlib."""

from __future__ import annotations

from collections import OrderedDict

from semreg.domain.digest import Digest


class ByteCache:
    """Bytes by digest, least recently used first out once ``capacity`` bytes are held."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Digest, bytes] = OrderedDict()
        self._size = 0

    def get(self, digest: Digest) -> bytes | None:
        found = self._items.get(digest)
        if found is not None:
            self._items.move_to_end(digest)
        return found

    def put(self, digest: Digest, data: bytes) -> None:
        if digest in self._items or len(data) > self.capacity // 8:
            return
        self._items[digest] = data
        self._size += len(data)
        while self._size > self.capacity:
            _, evicted = self._items.popitem(last=False)
            self._size -= len(evicted)
