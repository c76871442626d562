"""MkDocs hook: adds configuration.md, rendered from the code at build time.

The page is asyncproducer._config_reference.render(): every key of ProducerConfig with its
Java name, default, unit, allowed values and meaning. It is never written to docs/, so it
cannot go stale; tests/unit/test_config_reference.py checks the renderer.
"""

from __future__ import annotations

import importlib
from typing import Any

from mkdocs.structure.files import File, Files

PAGE = "configuration.md"
# Reloaded for each build, so that `mkdocs serve` (which watches asyncproducer/) shows an
# edit to a key's default or meaning without a restart. In dependency order.
_SOURCES = (
    "asyncproducer._config_keys",
    "asyncproducer.config",
    "asyncproducer._config_docs",
    "asyncproducer._config_reference",
)


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    modules = [importlib.reload(importlib.import_module(name)) for name in _SOURCES]
    files.append(File.generated(config, PAGE, content=modules[-1].render()))
    return files
