"""Compilation of the metrics' inner loops with numba, on first use.

The loops compiled here sit between two BLAS products (the nearest centre of each point, the counts of a
similarity tile): in numpy each took several passes over an array that one compiled pass reads once.
numba (and the scipy it loads) is imported when a loop first runs, not when its module is: training loads
``modgap.metrics.similarity`` for its logged R@1 and starts without it. A compiled loop calls no other
compiled function (numba resolves such calls when it compiles, and these are compiled lazily).
"""

from __future__ import annotations

import functools
import threading


class compiled:  # noqa: N801 - used as a decorator
    """``function`` compiled by numba on its first call, releasing the GIL; its machine code cached where numba
    finds a writable place (beside the module, else the user's cache folder or ``NUMBA_CACHE_DIR``), and
    compiled afresh in each process where it finds none (a read-only install for a user without a writable
    home)."""

    def __init__(self, function) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.kernel = None
        self.lock = threading.Lock()  # the first calls may come from several threads of one pass

    def __call__(self, *arguments):
        if self.kernel is None:
            with self.lock:
                if self.kernel is None:
                    self.kernel = _compile(self.function)
        return self.kernel(*arguments)


def _compile(function):
    from numba import njit

    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(nogil=True)(function)
