"""The optional C extension; everything else is in pyproject.toml.

``asyncproducer._speedups`` encodes a batch's records in C. ``optional=True``: where it
cannot be compiled (no compiler, no Python headers) the install still succeeds and
``asyncproducer.protocol.encoding`` uses its pure-Python encoder (``SPEEDUPS`` is False).
It is built against the Limited API of Python 3.11, so one ``abi3`` binary serves 3.11+.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "asyncproducer._speedups",
            ["asyncproducer/_speedups.c"],
            optional=True,
            py_limited_api=True,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
