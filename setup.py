"""The optional C extension; everything else is in pyproject.toml.

``asyncproducer._speedups`` is send()'s per-record mechanism in C: a batch's records
encoded as they are appended, murmur2, and the appender that takes a plain record from
``send()`` / ``send_batch()`` straight into its partition's open batch on inputs Python
decided. ``optional=True``: where it cannot be compiled (no compiler, no Python headers)
the install still succeeds and the same work runs in Python, with the same results
(``asyncproducer.protocol.batch_records.SPEEDUPS`` is False).
It is built against the Limited API of Python 3.11, so one ``abi3`` binary serves 3.11+.

Its sources are one file per concern, beside the module, sharing ``_speedups.h`` (what
each file holds: the header's first comment). Flat files rather than a ``_speedups/``
directory: that directory would be a namespace package of the extension's own name, which
``import asyncproducer._speedups`` finds where the extension did not build, instead of the
ImportError that selects the pure-Python path.
"""

from setuptools import Extension, setup

SPEEDUPS = "asyncproducer/_speedups"

setup(
    ext_modules=[
        Extension(
            "asyncproducer._speedups",
            [
                f"{SPEEDUPS}_module.c",
                f"{SPEEDUPS}_records.c",
                f"{SPEEDUPS}_murmur2.c",
                f"{SPEEDUPS}_crc32c.c",
                f"{SPEEDUPS}_appender.c",
                f"{SPEEDUPS}_send_call.c",
                f"{SPEEDUPS}_untracked.c",
                f"{SPEEDUPS}_future.c",
            ],
            # Rebuilt when the header changes; setuptools also puts it in the sdist.
            depends=[f"{SPEEDUPS}.h"],
            optional=True,
            py_limited_api=True,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
