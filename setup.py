"""Build the Cython core (oarsched/_core). All metadata lives in pyproject.toml."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

CORE_MODULES = ["bitset", "hierarchy", "slotset"]

extensions = [
    Extension(
        f"oarsched._core.{name}",
        [f"oarsched/_core/{name}.pyx"],
        include_dirs=[numpy.get_include(), "oarsched/_core"],  # popcount.h
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for name in CORE_MODULES
]

# The compiler directives are at the top of each .pyx.
setup(ext_modules=cythonize(extensions))
