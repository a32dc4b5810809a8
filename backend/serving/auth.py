"""Key auth for /score and /info, as Azure's endpoints have it: `Authorization: Bearer <key>`, where
the key is the deployment's primary or secondary key.

The keys live in a small JSON file ({"primary": ..., "secondary": ...}) that the server re-reads
whenever it changes, so a key is rotated without a restart. A missing or unreadable file lets no
one in; a file caught half-written keeps the keys read before.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time

from .answers import Unauthorized

log = logging.getLogger("modeldeck.serving")
KEY_NAMES = ("primary", "secondary")
RECHECK_SECONDS = 1.0  # read again this often even when stat() shows no change (coarse file times)
_WHERE_KEYS = ("`modeldeck deployments keys NAME` prints a deployment's; a built image's are in the keys file "
               "mounted into it (a Kubernetes export's: its Secret)")
NO_KEY = ("this deployment wants a key: send `Authorization: Bearer <key>` with its primary or secondary key ("
          + _WHERE_KEYS + ")")
WRONG_KEY = ("the Authorization header does not carry one of this deployment's keys (`Bearer <key>`; a regenerated "
             "key replaces the old one at once): " + _WHERE_KEYS)


class KeyFile:
    """The keys in `path`, checked with one stat() per request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._read_at = 0.0
        self._keys: tuple[bytes, ...] = ()

    def _current(self) -> tuple[bytes, ...]:
        try:
            stat = os.stat(self.path)
        except OSError:
            self._seen, self._keys = None, ()
            return self._keys
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        now = time.monotonic()
        if seen != self._seen or now - self._read_at > RECHECK_SECONDS:
            try:
                with open(self.path, "rb") as handle:
                    data = json.load(handle)
                keys = tuple(str(data[name]).encode() for name in KEY_NAMES if data.get(name))
            except (OSError, ValueError, TypeError, AttributeError):
                return self._keys  # being replaced: keep the keys read before, look again next time
            if keys != self._keys:
                log.info("keys read from %s", self.path)
            self._seen, self._read_at, self._keys = seen, now, keys
        return self._keys

    def allows(self, authorization: str | None) -> bool:
        """True when the Authorization header carries one of the keys."""
        if not authorization:
            return False
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        given = key.strip().encode()
        # compare_digest on every key, so the time taken does not tell which one nearly matched
        return any([hmac.compare_digest(given, known) for known in self._current()])

    def admit(self, authorization: str | None) -> None:
        """Lets a request with one of the keys through.

        Raises:
            Unauthorized: no Authorization header (NO_KEY), or not one of the keys (WRONG_KEY).
        """
        if not self.allows(authorization):
            raise Unauthorized(WRONG_KEY if authorization else NO_KEY)
