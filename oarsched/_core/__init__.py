"""The compiled core: bitsets, the hierarchy matcher and the slot set.

These modules are Cython extensions built by ``pip install .``; there is no
pure-Python fallback, so a missing build fails loudly here.
"""
try:
    from . import bitset, hierarchy, slotset  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "oarsched's compiled core (oarsched/_core/*.pyx) is not built: "
        "install the package with `pip install .` (or `pip install -e .` in a checkout; "
        "a C compiler and the Python headers are needed)."
    ) from exc
