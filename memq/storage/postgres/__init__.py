"""The PostgreSQL backend (``MEMQ_DATABASE_URL``): several daemons share one database.

This face imports nothing, so ``memq.config`` can check and show the URL (``url``) without
the driver. The modules are used by name: ``url`` (checking and showing the setting),
``connection`` (pools and connections, errors as ``StorageError``; needs the ``postgres``
extra), ``schema`` (numbered migrations under an advisory lock).
"""

from __future__ import annotations

__all__: list[str] = []
