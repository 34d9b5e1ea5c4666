"""Compilation of the metrics' inner loops with numba.

The loops compiled here sit between two BLAS products (the nearest centre of each point, the counts of a
similarity tile): in numpy each took several passes over an array that one compiled pass reads once.
"""

from __future__ import annotations

from numba import njit


def compiled(function):
    """``function`` compiled by numba, releasing the GIL; its machine code cached where numba finds a writable
    place (beside this module, else the user's cache folder or ``NUMBA_CACHE_DIR``), and compiled afresh in
    each process where it finds none (a read-only install for a user without a writable home)."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(nogil=True)(function)
