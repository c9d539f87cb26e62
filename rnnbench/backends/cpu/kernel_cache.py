"""Numba's cache, kept true to all of the backend's sources.

Numba keys a cached kernel on its own source file alone, while the cell kernels inline code from
their sibling modules (matmul's products, microkernel's tile, the activations): after an edit or
an upgrade that changed matmul.py but not lstm.py, lstm.py's kernels would load from the cache
with the old product compiled into them (seen here: a segfault). So a digest of every source of
the backend is kept beside the cache, and where it differs, every kernel's cache is flushed.
"""
import hashlib
from pathlib import Path

DIGEST_FILE = "rnnbench-cpu-sources.sha256"


def sources_digest() -> str:
    """SHA-256 over the backend's Python sources, by name and contents."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def drop_stale(kernels: list) -> bool:
    """Flush the caches of ``kernels`` (Numba dispatchers) where they were built from other
    sources than these (or from unknown ones), and record these; returns whether it flushed."""
    caches = [k._cache for k in kernels if k._cache.cache_path is not None]  # None: not cached
    digest = sources_digest()
    stamps = {Path(c.cache_path) / DIGEST_FILE for c in caches}
    stale = [p for p in stamps if not p.is_file() or p.read_text() != digest]
    if not stale:
        return False
    for c in caches:
        c.flush()
    for p in stale:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(digest)
        except OSError:  # a read-only cache: flushed again next time, never wrong
            pass
    return True
