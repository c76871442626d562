"""The import contract: docs/internals.md's layer table, checked against the code.

Every module of the package belongs to one layer; a module may import only from the
layers its own layer lists. A lower layer importing a higher one (say, the pure engine
importing the network, or the fake cluster's broker side importing the producer) fails
here, naming the import. Imports inside functions count too: the contract is about what
a module depends on, not when it loads it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "asyncproducer"

# layer -> its modules (exact names, or a prefix ending in ".")
LAYERS: dict[str, tuple[str, ...]] = {
    "base": (
        "errors",
        "_error_codes",
        "_value",
        "_types",
        "_backoff",
        "_cluster",
        "_native",
        "_speedups",  # the C extension: mechanism, no imports of ours
        "_futures",
        "_host",
        "_metrics",
        "_producer_metrics",
    ),
    "protocol": ("protocol", "protocol."),
    "settings": (
        "config",
        "_config_keys",
        "_config_security",
        "_properties",
        "oauth",
        "aws",
        "serializers",
        "interceptors",
        "partitioners",
        "_plugins",
        "_config_docs",
        "_config_reference",
    ),
    "network": (
        "_transport",
        "_write_queue",
        "_tls",
        "_connection",
        "_pool",
        "_canonical_names",
        "_metadata",
        "_sasl",
        "_memory",
    ),
    "engine": (
        "_compression_worker",
        "_batch",
        "_idempotence",
        "_outcome",
        "_accumulator",
        "_sticky_switch",
        "_transactions",
        "_group_offsets",
    ),
    "sender": ("_sender", "_coordinator", "_transactional"),
    "facade": (
        "producer",
        "_lifecycle",
        "_send_path",
        "_staging",
        "_send_batch",
        "_transaction_api",
        "_metrics_wiring",
        "_awaited_serializers",
    ),
    "fake broker": ("testing.fake.",),
    "tools": (
        "",
        "__main__",
        "cli",
        "_cli_demo",
        "_cli_produce",
        "testing",
        "testing.",
        "integrations",
        "integrations.",
    ),
}
MAY_IMPORT: dict[str, set[str]] = {
    "base": {"base"},
    "protocol": {"base", "protocol"},
    "settings": {"base", "protocol", "settings"},
    "network": {"base", "protocol", "settings", "network"},
    # Pure logic: no sockets, no tasks (the clock is passed in).
    "engine": {"base", "protocol", "settings", "engine"},
    "sender": {"base", "protocol", "settings", "network", "engine", "sender"},
    "facade": {"base", "protocol", "settings", "network", "engine", "sender", "facade"},
    # The fake cluster's broker side speaks the protocol only: a client bug it imported
    # could not show up against it. (Its certificates come from testing.certs.)
    "fake broker": {"base", "protocol", "fake broker", "certificates"},
    "tools": set(LAYERS) | {"certificates"},
}
CERTIFICATES = "testing.certs"


def layer_of(module: str) -> str:
    if module == CERTIFICATES:
        return "certificates"
    matches = [
        (len(name), layer)
        for layer, names in LAYERS.items()
        for name in names
        if module == name or (name.endswith(".") and module.startswith(name))
    ]
    if not matches:
        raise AssertionError(f"asyncproducer.{module} is in no layer: add it to LAYERS")
    return max(matches)[1]  # the most specific name wins ("testing.fake." over "testing.")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, source: str | None = None) -> set[str]:
    """The package modules ``path`` imports (or ``source``, read as if it were that
    file), relative to the package."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join(["asyncproducer", *base, *([node.module] if node.module else [])])
            else:
                stem = node.module or ""
            # "from asyncproducer import _speedups" imports a module; "from asyncproducer
            # import Producer", a name of the package.
            submodules = [f"{stem}.{alias.name}" for alias in node.names]
            names = [n for n in submodules if _is_module(_relative(n))] or [stem]
        else:
            continue
        for name in names:
            if name == "asyncproducer" or name.startswith("asyncproducer."):
                found.add(_relative(name))
    return {name for name in found if _is_module(name)} - {module}


def _relative(name: str) -> str:
    return name.removeprefix("asyncproducer").removeprefix(".")


def _is_module(name: str) -> bool:
    """A module or package of ours (the C extension counts by its stub)."""
    if not name:
        return True
    where = PACKAGE.joinpath(*name.split("."))
    return where.is_dir() or any(where.with_suffix(s).exists() for s in (".py", ".pyi"))


MODULES = sorted(PACKAGE.rglob("*.py"))


def wrong_imports(path: Path, source: str | None = None) -> list[str]:
    """The imports of ``path`` (or of ``source`` put in its place) from layers above its."""
    layer = layer_of(module_name(path))
    return sorted(
        f"{name} ({layer_of(name)})"
        for name in imports_of(path, source)
        if layer_of(name) not in MAY_IMPORT[layer]
    )


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_each_module_imports_only_from_the_layers_below_it(path: Path) -> None:
    module = module_name(path)
    wrong = wrong_imports(path)
    assert not wrong, f"asyncproducer.{module} ({layer_of(module)}) imports {', '.join(wrong)}"


@pytest.mark.parametrize(
    "line",
    [
        "from asyncproducer._connection import Connection",
        "from ._connection import Connection",
        "import asyncproducer._sender",
        "from asyncproducer import producer",
    ],
)
def test_the_contract_sees_a_wrong_import(line: str) -> None:
    """The check itself can fail: the engine's outcome rules, given one import of the
    network or the sender above them (absolute, relative, or of a module), are caught."""
    path = PACKAGE / "_outcome.py"
    source = path.read_text()
    assert wrong_imports(path, source) == []
    assert wrong_imports(path, f"{line}\n{source}") != []
