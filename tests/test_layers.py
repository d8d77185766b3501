"""The import contracts in pyproject.toml ([tool.importlinter], run by `make test` as lint-imports) hold,
and each of them fails when the import it forbids appears."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# One forbidden import per contract, added to (or as) a module it binds; lazy ones count too.
VIOLATIONS = {
    "shared/fc/_violation.py": "def run():\n    from shared.local import cli\n",
    "shared/verdict/_violation.py": "import shared.fc.events\n",
    "shared/alerts/_violation.py": "from shared.probe import dns\n",
    "shared/probe/_violation.py": "import shared.state.store\n",
    "shared/state/_violation.py": "from shared.verdict import result\n",
    "shared/credentials/_violation.py": "import shared.probe.engine\n",
    "shared/config/urls.py": "from shared.alerts import policy\n",
    "shared/verdict/_gateway_violation.py": "from shared.gateway import errors\n",
    "shared/export/_violation.py": "def later():\n    from shared.alerts import step\n",
    "shared/history/_violation.py": "def later():\n    from shared.probe import engine\n",
}


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports with root's pyproject.toml (the one in its cwd) on root's `shared`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def contract_count() -> int:
    return (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")


def test_the_tree_keeps_every_contract() -> None:
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Contracts: {contract_count()} kept, 0 broken." in proc.stdout


def test_every_contract_breaks_on_the_import_it_forbids(tmp_path: Path) -> None:
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "shared", tmp_path / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    for path, code in VIOLATIONS.items():
        with (tmp_path / path).open("a") as module:
            module.write(code)
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(VIOLATIONS) == contract_count()
    assert f"Contracts: 0 kept, {contract_count()} broken." in proc.stdout
    for path in VIOLATIONS:  # each broken by its own violation, not by some other import
        module = path.removesuffix(".py").replace("/", ".")
        assert re.search(rf"^-\s+{re.escape(module)} -> ", proc.stdout, re.MULTILINE), module
