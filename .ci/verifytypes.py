"""The public API's type completeness: ``pyright --verifytypes asyncproducer``, failing
below a floor (default 95 %).

    .venv/bin/python .ci/verifytypes.py [--min 0.95]

pyright reads the package from this checkout (``PYTHONPATH``: it cannot follow the import
hook of a setuptools editable install) and resolves its dependencies with the interpreter
running this script, so run it with the project's venv: a dependency that is missing
there (an integration's framework) makes the types built on it unknown. Prints the score
and every public symbol whose type is unknown or ambiguous.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "asyncproducer"
PYRIGHT = ["-m", "pyright", "--outputjson", "--ignoreexternal", "--verifytypes", PACKAGE]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min", type=float, default=0.95, help="the floor (default 0.95)")
    args = parser.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # pyright asks `python` on PATH for its search paths: this interpreter's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    run = subprocess.run(
        [sys.executable, *PYRIGHT],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(run.stdout, run.stderr, sep="\n", file=sys.stderr)
        print("verifytypes: pyright gave no report", file=sys.stderr)
        return 2
    completeness = report["typeCompleteness"]
    for diagnostic in report.get("generalDiagnostics", []):
        print(f"{diagnostic['severity']}: {diagnostic['message']}")
    if Path(completeness.get("packageRootDirectory") or "/") != REPO / PACKAGE:
        print(f"verifytypes: pyright did not analyse {REPO / PACKAGE}", file=sys.stderr)
        return 2
    for symbol in completeness["symbols"]:
        if symbol["isExported"] and not (
            symbol["isTypeKnown"] and not symbol.get("isTypeAmbiguous")
        ):
            print(f"{symbol['category']} {symbol['name']}")
            for diagnostic in symbol["diagnostics"]:
                if diagnostic["severity"] == "error":
                    print("    " + diagnostic["message"].replace("\n", "\n    "))
    counts = completeness["exportedSymbolCounts"]
    score = float(completeness["completenessScore"])
    print(
        f"{PACKAGE}: type completeness {score:.1%} of {sum(counts.values())} exported "
        f"symbols ({counts['withAmbiguousType']} ambiguous, {counts['withUnknownType']} "
        f"unknown); floor {args.min:.0%}"
    )
    return 0 if score >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
