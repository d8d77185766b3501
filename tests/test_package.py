"""`make package`: build/probe/ and build/gateway/ hold each function's code and only what it imports,
compiled by FC's Python.

One real build of both functions (pip may fetch cp310 manylinux wheels; pip's own cache makes repeats
quick) is checked by the functions below; each function is also shown to catch a small tree made to break it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
FC_PYTHON = "3.10"
CACHE_TAG = "cpython-" + FC_PYTHON.replace(".", "")
UNCHECKED_HASH = 0b01  # pyc flags: hash-based, check_source off (PEP 552)

# Only the local tools import these (pyproject's `local` extra and what it pulls in). Not aiohttp: the
# KMS / EAS SDKs' core (alibabacloud-tea, darabonba-core) imports it, so kms:/eas: need it on FC.
LOCAL_ONLY_DISTRIBUTIONS = frozenset(
    {"croniter", "python-dateutil", "tzdata", "trustme", "aiosmtpd"}
)
# The gateway extra and what uvicorn pulls in (h11 not: httpx's httpcore needs it in both): the gateway's
# code directory only, never the probe's.
GATEWAY_ONLY_DISTRIBUTIONS = frozenset({"uvicorn", "click", "alibabacloud-fc20230330",  # FC 3.0: POST /probe?async
                                        "prometheus-client"})  # GET /metrics
# Installed for cffi (cryptography's dependency), which needs its C-declaration parser only to build.
NEVER_IMPORTED_BUT_REQUIRED = frozenset({"pycparser"})
# httpx's transport stack (httpcore, anyio, sniffio, exceptiongroup on 3.10), loaded on its first request:
# only alert channels and the control plane send with httpx. The probe speaks HTTP through httptools
# (shared/probe/transport.py), the gateway too (shared/gateway/client.py); the gateway ships the
# base install all the same, for the probe code it will run (POST /probe, a round on demand).
UNIMPORTED_ON_PURPOSE = {
    "probe": frozenset({"httpcore", "h11", "anyio", "sniffio", "exceptiongroup"}),
    "gateway": frozenset({"httpcore", "h11", "anyio", "sniffio", "exceptiongroup"}),
}

# Imports of shipped code that the build cannot satisfy, on purpose: FC's runtime provides oss2 and fc2,
# and shared.fc.invoke's FC 3.0 SDK ships with the gateway (POST /probe?async=true) only: the probe never invokes.
UNRESOLVED_ON_PURPOSE = {
    "probe": frozenset({"oss2", "fc2", "fc2.client", "alibabacloud_fc20230330", "alibabacloud_fc20230330.client"}),
    "gateway": frozenset({"oss2", "fc2", "fc2.client"}),
}

# What a function does on its first call, run in its code directory: the probe's handler on a timer
# event as FC does (its HTTP stack loads only when used); the gateway's server as the entry point
# configures it (uvloop, httptools), on a free loopback port instead of FC's 0.0.0.0:9000, answering
# one GET /healthz. Both print the answer last.
FIRST_CALLS = {
    "probe": r"""
import index
print(index.handler(b'{"triggerName": "probe-timer", "payload": ""}', None))
""",
    "gateway": r"""
import index, urllib.request
from shared.config.load import load_config
from shared.gateway.app import create_app
from shared.gateway.server import start_in_thread
server = start_in_thread(create_app(load_config()), host="127.0.0.1", port=0)
try:
    with urllib.request.urlopen(server.url + "/healthz", timeout=30) as answer:
        print(json.dumps({"status": answer.status, "body": json.loads(answer.read())}))
finally:
    server.stop()
""",
}
# Run by the runtime's Python in a code directory, seeing it and the stdlib only: the function's first
# call, then import every module of shared/ and every import statement in it (lazy ones too). Prints the
# imports that failed and the shipped distributions that nothing imported.
FUNCTION_PATHS = r"""
import ast, importlib, importlib.metadata as md, json, pathlib, sys
root = pathlib.Path(sys.argv[1])
sys.path[:0] = [str(root), str(root / "python")]
exec(sys.argv[2])
names = set()
for path in sorted((root / "shared").rglob("*.py")):
    parts = path.relative_to(root).with_suffix("").parts
    names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
failed = {}
for name in sorted(names):
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
# A distribution's top-level names from its RECORD (3.10's packages_distributions() reads only top_level.txt).
loaded = {m.partition(".")[0] for m in list(sys.modules)}
unimported = []
for dist in md.distributions(path=[str(root / "python")]):
    tops = {f.parts[0] if len(f.parts) > 1 else f.name.partition(".")[0] for f in dist.files or []}
    if not tops & loaded:
        unimported.append(dist.metadata["Name"])
print(json.dumps({"failed": failed, "unimported": sorted(unimported)}))
"""
# The function's first call under `python -v`, which names the file each module's code came from.
FIRST_CALL = r"""
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
sys.path[:0] = [str(root), str(root / "python")]
exec(sys.argv[2])
"""
# Both functions read the same vpcprobe.yaml, gateway: section included.
CLOSED_PORT_CONFIG = """targets:
  - name: closed
    kind: eas
    endpoint: http://127.0.0.1:9
    service: svc
    credential: env:EAS_TOKEN
    probe: {retries: 0, timeout: 2s}
gateway:
  keys:
    - {name: app, key: env:GATEWAY_KEY}
"""


def _load_package_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_script", ROOT / "scripts" / "package.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


package = _load_package_script()


def canonical(name: str) -> str:
    return package.canonical(name)


@pytest.fixture(scope="module")
def fc_python() -> Path:
    try:
        return package.runtime_python(FC_PYTHON)
    except package.PackageError as exc:
        pytest.skip(f"FC's runtime Python is missing, so nothing can be built for it: {exc}")


@pytest.fixture(scope="module")
def build_dir(fc_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make package`'s build of every function, once."""
    build_dir = tmp_path_factory.mktemp("build")
    command = [sys.executable, str(ROOT / "scripts" / "package.py"), "--python-version", FC_PYTHON]
    command += ["--config", str(ROOT / "vpcprobe.example.yaml"), "--build-dir", str(build_dir)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in build_dir.iterdir()) == sorted(package.FUNCTIONS)  # no leftover deps dir
    return build_dir


@pytest.fixture(scope="module", params=sorted(package.FUNCTIONS))
def built(build_dir: Path, request: pytest.FixtureRequest) -> Path:
    """Each function's code directory in turn."""
    return build_dir / request.param


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One target on a closed loopback port: a real round, no network wait."""
    path = tmp_path_factory.mktemp("config") / "vpcprobe.yaml"
    path.write_text(CLOSED_PORT_CONFIG)
    return path


def run_in(
    python: Path, code: str, root: Path, config: Path, *flags: str, call: str = ""
) -> subprocess.CompletedProcess:
    """`code` in a fresh runtime interpreter that sees the code directory and the stdlib only (-I -S);
    `call` is its sys.argv[2] (the function's first call, for the scripts above)."""
    return subprocess.run(
        [str(python), "-I", "-S", *flags, "-c", code, str(root), call],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", ""), "VPCPROBE_CONFIG": str(config), "EAS_TOKEN": "t", "GATEWAY_KEY": "g"},
    )


# --- the checks -------------------------------------------------------------------------------


def local_tools_in(root: Path) -> list[str]:
    """Files of the local tools (shared/local, python -m shared) inside a code directory."""
    shared = root / "shared"
    found = [shared / "__main__.py", *(shared / "local").rglob("*")]
    return sorted(str(p.relative_to(root)) for p in found if p.is_file())


def distributions_in(root: Path) -> set[str]:
    return {canonical(p.name.split("-")[0]) for p in (root / "python").glob("*.dist-info")}


def unwanted_distributions_in(root: Path) -> list[str]:
    """Local-only distributions, ones FC's runtime provides, and in the probe the gateway's own."""
    unwanted = LOCAL_ONLY_DISTRIBUTIONS | package.RUNTIME_PROVIDED[FC_PYTHON]
    if root.name == "probe":
        unwanted |= GATEWAY_ONLY_DISTRIBUTIONS
    return sorted(distributions_in(root) & unwanted)


def pyc_problems(root: Path, magic: bytes) -> list[str]:
    """Every .py needs a pyc beside it from the runtime's Python (`magic`), hash-based and unchecked."""
    problems = []
    for source in sorted(root.rglob("*.py")):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{CACHE_TAG}.pyc"
        if not pyc.is_file():
            problems.append(f"{source.relative_to(root)}: no {pyc.name}")
            continue
        header = pyc.read_bytes()[:8]
        if header[:4] != magic:
            problems.append(f"{pyc.relative_to(root)}: magic {header[:4].hex()}, not python{FC_PYTHON}'s")
        elif int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            problems.append(f"{pyc.relative_to(root)}: flags {int.from_bytes(header[4:8], 'little'):#04b}")
    return problems


def function_path_problems(
    python: Path, root: Path, config: Path, call: str = FIRST_CALLS["probe"]
) -> tuple[dict[str, str], list[str]]:
    """(imports of shipped code that fail there, shipped distributions that no function path imports)."""
    proc = run_in(python, FUNCTION_PATHS, root, config, call=call)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    unresolved = UNRESOLVED_ON_PURPOSE["gateway" if call == FIRST_CALLS["gateway"] else "probe"]
    failed = {name: why for name, why in report["failed"].items() if name not in unresolved}
    unimported = [name for name in report["unimported"] if canonical(name) not in NEVER_IMPORTED_BUT_REQUIRED]
    return failed, unimported


def first_call(python: Path, root: Path, config: Path, call: str = FIRST_CALLS["probe"]) -> tuple[str, list[str]]:
    """(the first call's answer, the files of the code directory it compiled instead of loading their .pyc)."""
    proc = run_in(python, FIRST_CALL, root, config, "-v", call=call)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    prefix = "# code object from "
    origins = [line[len(prefix) :] for line in proc.stderr.splitlines() if line.startswith(prefix)]
    assert any(str(root) in origin for origin in origins), "python -v named no module of the build"
    compiled = [origin for origin in origins if str(root) in origin and not origin.endswith(".pyc'")]
    return proc.stdout.splitlines()[-1], compiled


def runtime_magic(python: Path) -> bytes:
    code = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    return bytes.fromhex(subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout)


# --- the build passes them ---------------------------------------------------------------------


def test_build_has_no_local_tools(built: Path) -> None:
    assert (ROOT / "shared" / "local").is_dir() and (built / "shared" / "fc").is_dir()
    assert local_tools_in(built) == []


def test_each_function_gets_its_entry_point_and_its_own_dependencies(build_dir: Path) -> None:
    for name, function in package.FUNCTIONS.items():
        assert (build_dir / name / "index.py").read_bytes() == (ROOT / function.entry).read_bytes()
    gateway, probe = build_dir / "gateway", build_dir / "probe"
    assert distributions_in(gateway) >= GATEWAY_ONLY_DISTRIBUTIONS
    assert "aiohttp" in distributions_in(gateway) and "aiohttp" in distributions_in(probe)
    assert distributions_in(probe) == distributions_in(gateway) - GATEWAY_ONLY_DISTRIBUTIONS
    # the probe reads a config's gateway: section, and has nothing else of the gateway
    assert sorted(p.name for p in (probe / "shared" / "gateway").glob("*.py")) == ["__init__.py", "settings.py"]
    shipped = {p.relative_to(gateway / "shared").as_posix() for p in (gateway / "shared").rglob("*.py")}
    assert {"gateway/server.py", "gateway/app.py", "gateway/settings.py", "fc/probe_function.py"} <= shipped


def test_gateway_entry_point_runs_the_server_only_as_a_script() -> None:
    """customRuntimeConfig runs /code/index.py as __main__; importing it (as these tests do) starts nothing."""
    source = (ROOT / "functions" / "gateway" / "index.py").read_text()
    assert "from shared.gateway.server import main" in source
    assert 'if __name__ == "__main__":\n    main()' in source


def test_build_has_no_local_only_or_runtime_provided_distributions(built: Path) -> None:
    assert unwanted_distributions_in(built) == []


def test_build_ships_unchecked_hash_pycs_from_the_runtime_python(built: Path, fc_python: Path) -> None:
    assert pyc_problems(built, runtime_magic(fc_python)) == []


def test_every_shipped_import_resolves_and_every_shipped_distribution_is_imported(
    built: Path, fc_python: Path, config: Path
) -> None:
    failed, unimported = function_path_problems(fc_python, built, config, FIRST_CALLS[built.name])
    assert failed == {}
    assert [name for name in unimported if canonical(name) not in UNIMPORTED_ON_PURPOSE[built.name]] == []


def test_cold_start_loads_pycs_and_runs_a_round(build_dir: Path, fc_python: Path, config: Path) -> None:
    """The handler's first call in a fresh runtime Python, as on FC: nothing of the build is compiled."""
    answer, compiled = first_call(fc_python, build_dir / "probe", config)
    assert compiled == []
    summary = json.loads(answer)
    assert summary["targets"] == 1 and summary["ok"] is False


def test_gateway_cold_start_loads_pycs_and_answers_healthz(build_dir: Path, fc_python: Path, config: Path) -> None:
    """The gateway's server starts in a fresh runtime Python as FC starts it and answers FC's health check."""
    answer, compiled = first_call(fc_python, build_dir / "gateway", config, FIRST_CALLS["gateway"])
    assert compiled == []
    assert json.loads(answer) == {"status": 200, "body": {"status": "ok"}}


# --- and each check catches what it is for ------------------------------------------------------


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_local_tools_check_catches_shared_local(tmp_path: Path) -> None:
    write(tmp_path / "shared" / "local" / "cli.py")
    write(tmp_path / "shared" / "__main__.py")
    assert local_tools_in(tmp_path) == ["shared/__main__.py", "shared/local/cli.py"]


def test_distribution_check_catches_local_only_and_runtime_provided(tmp_path: Path) -> None:
    for dist in ("croniter-2.0.1", "python_dateutil-2.9.0", "oss2-2.16.0", "httpx-0.28.1"):
        (tmp_path / "python" / f"{dist}.dist-info").mkdir(parents=True)
    assert unwanted_distributions_in(tmp_path) == ["croniter", "oss2", "python-dateutil"]


def test_pyc_check_catches_missing_foreign_and_checked_pycs(tmp_path: Path) -> None:
    magic = bytes.fromhex("6f0d0d0a")
    for name, flags in (("good", UNCHECKED_HASH), ("checked", 0b11), ("timestamped", 0)):
        write(tmp_path / f"{name}.py")
        pyc = tmp_path / "__pycache__" / f"{name}.{CACHE_TAG}.pyc"
        write(pyc).write_bytes(magic + flags.to_bytes(4, "little") + bytes(8))
    write(tmp_path / "foreign.py")
    write(tmp_path / "__pycache__" / f"foreign.{CACHE_TAG}.pyc").write_bytes(b"\0\0\r\n" + bytes(12))
    write(tmp_path / "bare.py")
    problems = pyc_problems(tmp_path, magic)
    assert [p.split(":")[0] for p in problems] == [
        "bare.py",
        f"__pycache__/checked.{CACHE_TAG}.pyc",
        f"__pycache__/foreign.{CACHE_TAG}.pyc",
        f"__pycache__/timestamped.{CACHE_TAG}.pyc",
    ]


def test_function_path_check_catches_missing_and_unimported_distributions(
    tmp_path: Path, fc_python: Path, config: Path
) -> None:
    write(tmp_path / "index.py", "def handler(event, context):\n    return '{}'\n")
    write(tmp_path / "shared" / "__init__.py")
    write(tmp_path / "shared" / "job.py", "def later():\n    import croniter\n")
    write(tmp_path / "python" / "dead" / "__init__.py")
    write(tmp_path / "python" / "dead-1.0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: dead\nVersion: 1.0\n")
    write(tmp_path / "python" / "dead-1.0.dist-info" / "RECORD", "dead/__init__.py,,\n")
    failed, unimported = function_path_problems(fc_python, tmp_path, config)
    assert list(failed) == ["croniter"]
    assert unimported == ["dead"]


def test_cold_start_check_catches_compiling(tmp_path: Path, fc_python: Path, config: Path) -> None:
    write(tmp_path / "index.py", "import helper\n\ndef handler(event, context):\n    return '{}'\n")
    write(tmp_path / "helper.py")
    subprocess.run([str(fc_python), "-m", "compileall", "-q", str(tmp_path / "index.py")], check=True)
    answer, compiled = first_call(fc_python, tmp_path, config)
    assert answer == "{}"
    assert [Path(p).name for p in compiled] == ["helper.py"]


def test_runtime_python_names_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(package.PackageError, match=r"python3\.10 not found .*pyenv install 3\.10"):
        package.runtime_python("3.10")


def test_package_refuses_an_install_older_than_pyproject() -> None:
    package.check_extras(["cloud", "gateway"])  # this checkout's install has both
    with pytest.raises(package.PackageError, match=r"no extra no-such-extra .*reinstall"):
        package.check_extras(["cloud", "no_such_extra"])
