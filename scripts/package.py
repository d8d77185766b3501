#!/usr/bin/env python3
"""Build the FC code directories that `s deploy` uploads: one build/<function>/ per function.

Run by `make package`. Each directory holds exactly what the function needs, so no .fcignore:

    build/<fn>/index.py         functions/<fn>/index.py (probe: the handler index.handler; gateway: the
                                web server, started by customRuntimeConfig's command)
    build/<fn>/shared/          the project's `shared` package, without caches, tests, or the local
                                tools (shared/local, shared/__main__.py: CLI, simulator, demo); of
                                shared/gateway the probe gets only the config section's reader
    build/<fn>/vpcprobe.yaml    the config (VPCPROBE_CONFIG=/code/vpcprobe.yaml in s.yaml)
    build/<fn>/python/          runtime dependencies (PYTHONPATH=/code/python in s.yaml)

Dependencies are installed for the FC runtime, not this machine, with pip's platform options
(no Docker, unlike `s build`): manylinux wheels for CPython <--python-version>. The list comes from
the installed vpcprobe's metadata: pyproject.toml [project].dependencies plus each function's extras
(FUNCTIONS): both take `cloud`, whose KMS / EAS SDKs resolve kms: and eas: credentials inside the
function (and whose CloudMonitor SDK serves the optional metrics export), and the gateway also `gateway`
(uvicorn, and the FC 3.0 SDK with which POST /probe?async=true invokes the probe function); never the `local`
extra, whose packages only the local tools import. aiohttp ships in the probe all the same: those
SDKs' core, alibabacloud-tea and darabonba-core, imports it at module level. Both functions install
from one wheel directory: the custom.debian10 runtime of the gateway runs CPython 3.10 like the
probe's python3.10 runtime, so the same cp310 wheels serve both. Packages that PyPI ships only
as source are built into wheels on this machine first; pure-Python ones (most Alibaba Cloud SDK
helpers) then install for any platform. pip evaluates environment markers for the
machine it runs on, not for --python-version, so a dependency only the runtime's Python needs
(aiohttp's `async-timeout; python_version < "3.11"` when this machine runs 3.11+) would be left
out: after installing, every package's requirements are re-read with the runtime's markers and
whatever is missing is added.

Every .py then gets a .pyc compiled by the runtime's own CPython (pyenv's or on PATH, the way
`make test-pythons` finds it), hash-based and unchecked: /code is read-only on FC, so without them
every cold start compiles everything it imports again, and unchecked ones are used without
even a stat of the source. The .py files stay beside them: tracebacks show their lines.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

try:  # `packaging` is pip's own dependency: installed, or at least vendored inside pip
    from packaging.requirements import InvalidRequirement, Requirement
except ImportError:  # pragma: no cover - depends on what the venv holds
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent
DIST = "vpcprobe"


@dataclass(frozen=True)
class Function:
    """One FC function's code directory: its entry point, its extras, what of shared/ it leaves out."""

    entry: str  # copied to build/<name>/index.py
    extras: tuple[str, ...]  # extras of vpcprobe installed beside the base dependencies
    # subpackage of shared/ -> the only files of it shipped (its other modules need another function's extras)
    only_in_shared: dict[str, frozenset[str]] = field(default_factory=dict)


# One entry per FC function (s.yaml's resources): build/<name>/.
FUNCTIONS: dict[str, Function] = {
    # Both functions read the one vpcprobe.yaml: config/load.py reads its `gateway:` section with
    # shared/gateway/settings.py. The rest of shared/gateway needs the gateway extra the probe lacks.
    "probe": Function("functions/probe/index.py", ("cloud",), {"gateway": frozenset({"__init__.py", "settings.py"})}),
    "gateway": Function("functions/gateway/index.py", ("cloud", "gateway")),
}

# What FC's built-in runtime already ships (FC docs): not installed again. Both are source-only on
# PyPI (oss2 needs crcmod's C code), so they could not be cross-installed for the runtime anyway.
RUNTIME_PROVIDED: dict[str, frozenset[str]] = {
    "3.10": frozenset({"aliyun-fc2", "oss2"}),
}
DEFAULT_PLATFORM = "manylinux2014_x86_64"
SKIP_IN_SHARED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "tests", "test_*.py", ".*")
# The local tools (pyproject's `local` extra) and `python -m shared`, which starts them: not for FC.
LOCAL_ONLY = frozenset({"local", "__main__.py"})


class PackageError(Exception):
    """A packaging problem with a message that says what to do."""


def canonical(name: str) -> str:
    """PEP 503 project name: 'Aliyun_FC2' and 'aliyun-fc2' are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements(dist: str = DIST) -> list[str]:
    """Requirement strings of the installed project, markers included (e.g. 'x>=1; extra == "cloud"')."""
    try:
        return list(importlib.metadata.requires(dist) or [])
    except importlib.metadata.PackageNotFoundError as exc:
        raise PackageError(
            f"{dist} is not installed in {sys.executable}; run `make package` "
            "(it sets up .venv) or `pip install -e .` first"
        ) from exc


def check_extras(extras: Iterable[str], dist: str = DIST) -> None:
    """Every extra a function needs must be in the installed metadata: an install older than
    pyproject.toml would otherwise build a function without its dependencies."""
    known = {canonical(e) for e in importlib.metadata.metadata(dist).get_all("Provides-Extra") or []}
    missing = sorted({canonical(e) for e in extras} - known)
    if missing:
        raise PackageError(
            f"the installed {dist} has no extra {', '.join(missing)} (its metadata is older than pyproject.toml): "
            f"reinstall it (`make package` does; or pip install -e '.[{','.join(missing)}]')"
        )


def target_environment(python_version: str, platform: str) -> dict[str, str]:
    """PEP 508 marker values of the FC runtime (Linux, CPython `python_version`)."""
    machine = "aarch64" if "aarch64" in platform else "x86_64"
    return {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{python_version}.0",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


def _applies(req: Requirement, env: dict[str, str], extras: Iterable[str] = ("",)) -> bool:
    """Does `req` apply on the target, for any of `extras` ("" = no extra)?"""
    return req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras)


def _without_marker(req: Requirement) -> str:
    """'aiohttp>=3.9; extra == "x"' -> 'aiohttp>=3.9' (already evaluated for the target)."""
    req = Requirement(str(req))
    req.marker = None
    return str(req)


def runtime_requirements(
    requires: Iterable[str], extras: Iterable[str], python_version: str, platform: str = DEFAULT_PLATFORM
) -> tuple[list[str], list[str]]:
    """Split requirements into (to install, already in the FC runtime) for the target's markers.

    Base requirements and those of the chosen `extras` are kept; markers are evaluated for the
    FC runtime, not this machine.
    """
    env = target_environment(python_version, platform)
    wanted = ["", *(canonical(e) for e in extras)]
    provided = RUNTIME_PROVIDED.get(python_version, frozenset())
    install: list[str] = []
    skipped: list[str] = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise PackageError(f"{DIST} metadata has a requirement pip cannot parse: {line!r} ({exc})") from exc
        if _applies(req, env, wanted):
            (skipped if canonical(req.name) in provided else install).append(_without_marker(req))
    return install, skipped


def missing_requirements(target: Path, python_version: str, platform: str) -> list[str]:
    """Requirements of the packages in `target` that apply on the runtime but are not there."""
    env = target_environment(python_version, platform)
    provided = RUNTIME_PROVIDED.get(python_version, frozenset())
    dists = list(importlib.metadata.distributions(path=[str(target)]))
    present = {canonical(d.metadata["Name"]) for d in dists} | provided
    missing: dict[str, str] = {}
    for dist in dists:
        for line in dist.requires or []:
            req = Requirement(line)
            name = canonical(req.name)
            if name not in present and name not in missing and _applies(req, env):
                missing[name] = _without_marker(req)
    return sorted(missing.values())


def pip(*args: str) -> None:
    """Run this interpreter's pip; a failure becomes a PackageError."""
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise PackageError(f"pip failed (exit {result.returncode}): {' '.join(command)}")


def build_wheels(requirements: Sequence[str], wheels: Path) -> None:
    """Wheels of every function's requirements in one directory: source-only packages are built here
    (pure-Python ones then fit the target platform too); the rest come from PyPI for the target."""
    if requirements:
        pip("wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(wheels), *requirements)


def install_dependencies(
    requirements: Sequence[str], target: Path, python_version: str, platform: str, wheels: Path
) -> None:
    """pip-install `requirements` into `target` for CPython `python_version` on `platform`."""
    target.mkdir(parents=True, exist_ok=True)
    if not requirements:
        return
    target_install(requirements, target, python_version, platform, str(wheels))
    for _ in range(10):  # each round adds one level of runtime-only dependencies
        missing = missing_requirements(target, python_version, platform)
        if not missing:
            break
        print(f"adding for python{python_version} only: {', '.join(missing)}")
        target_install(missing, target, python_version, platform, str(wheels), "--no-deps")
    else:
        raise PackageError(f"runtime-only dependencies keep appearing: {', '.join(missing)}")
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts point at this machine's python


def target_install(
    requirements: Sequence[str], target: Path, python_version: str, platform: str, wheels: str, *extra: str
) -> None:
    """pip install --target for the FC runtime's platform, wheels only (PyPI + the local ones)."""
    try:
        pip(
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            *extra,
            "--target",
            str(target),
            "--platform",
            platform,
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            "--find-links",
            wheels,
            *requirements,
        )
    except PackageError as exc:
        raise PackageError(
            f"{exc}\nA dependency has no wheel for CPython {python_version} on {platform} "
            "and is not pure Python (it needs compiling for the FC runtime). Drop it, "
            "choose another --python-version, or ship it as an FC layer."
        ) from exc


def runtime_python(python_version: str) -> Path:
    """The runtime's CPython on this machine: pyenv's newest <version>.x, else python<version> on PATH."""
    pyenv = Path.home() / ".pyenv" / "versions"
    candidates = sorted(
        pyenv.glob(f"{python_version}.*/bin/python"),
        key=lambda p: [int(n) if n.isdigit() else 0 for n in p.parent.parent.name.split(".")],
    )
    on_path = shutil.which(f"python{python_version}")
    for python in [*reversed(candidates), *([Path(on_path)] if on_path else [])]:
        probe = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == python_version:
            return python
    raise PackageError(
        f"python{python_version} not found (looked for {pyenv}/{python_version}.*/bin/python and "
        f"python{python_version} on PATH): the FC runtime's Python compiles the shipped .pyc files; "
        f"install it (e.g. `pyenv install {python_version}`)"
    )


def compile_tree(python: Path, out: Path) -> None:
    """Unchecked-hash .pyc beside every .py under `out`, compiled by the runtime's `python`."""
    command = [
        str(python), "-m", "compileall", "-q", "-j", "0",
        "--invalidation-mode", "unchecked-hash", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise PackageError(f"compileall failed (exit {result.returncode}): {' '.join(command)}")


def skip_in_shared(function: Function):
    """copytree's ignore: caches and tests everywhere, the local tools at the top of shared/, and
    in the subpackages `function` takes only some files of, every other file."""
    shared = ROOT / "shared"

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(SKIP_IN_SHARED(directory, names))
        relative = Path(directory).relative_to(shared).as_posix()
        if relative == ".":
            skipped |= LOCAL_ONLY & set(names)
        if relative in function.only_in_shared:
            skipped |= set(names) - function.only_in_shared[relative]
        return skipped

    return ignore


def read_config(path: Path) -> None:
    """Fail early, naming the file, if the config is missing or not YAML."""
    if not path.is_file():
        raise PackageError(
            f"{path}: config file not found; copy vpcprobe.example.yaml to vpcprobe.yaml "
            "and edit it (or pass another file: make package CONFIG=path/to/file.yaml)"
        )
    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PackageError(f"{path}: not valid YAML: {exc}") from exc


def build_function(name: str, build_dir: Path, config: Path, deps: Path, python: Path) -> Path:
    """Assemble build/<name>/ from scratch: index.py, shared/, vpcprobe.yaml, python/, all compiled."""
    function = FUNCTIONS[name]
    entry = ROOT / function.entry
    if not entry.is_file():
        raise PackageError(f"{entry}: entry point of function {name!r} not found")
    out = build_dir / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(entry, out / "index.py")
    shutil.copytree(ROOT / "shared", out / "shared", ignore=skip_in_shared(function))
    shutil.copy2(config, out / "vpcprobe.yaml")
    shutil.copytree(deps, out / "python", symlinks=True)
    compile_tree(python, out)
    return out


def tree_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under `path`, not following symlinks."""
    total = count = 0
    for dirpath, _, filenames in os.walk(path):
        for filename in filenames:
            total += os.lstat(os.path.join(dirpath, filename)).st_size
            count += 1
    return total, count


def human(size: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Build build/<function>/ code directories for `s deploy`.")
    parser.add_argument(
        "--python-version", default="3.10", help="CPython of the FC runtime, matching s.yaml's runtime (default: 3.10)"
    )
    parser.add_argument("--config", default="vpcprobe.yaml", help="config copied in as vpcprobe.yaml")
    parser.add_argument("--platform", default=DEFAULT_PLATFORM, help=f"wheel platform (default: {DEFAULT_PLATFORM})")
    parser.add_argument(
        "--extras",
        default="",
        help=f"comma-separated extras of {DIST} to add to every function's own (probe: cloud; gateway: cloud,gateway)",
    )
    parser.add_argument(
        "--function",
        action="append",
        choices=sorted(FUNCTIONS),
        dest="functions",
        help="build only this function (repeatable; default: all)",
    )
    parser.add_argument("--build-dir", default=str(ROOT / "build"), help="where build/<function>/ go")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", args.python_version):
        parser.error(f"--python-version must look like 3.10, got {args.python_version!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Build every function's directory; print what went in and how big it is."""
    args = parse_args(argv)
    config = Path(args.config)
    build_dir = Path(args.build_dir).resolve()
    names = args.functions or list(FUNCTIONS)
    added = [e.strip() for e in args.extras.split(",") if e.strip()]
    try:
        for name in names:  # a failed build must not leave an old directory for `s deploy` to upload
            shutil.rmtree(build_dir / name, ignore_errors=True)
        read_config(config)
        python = runtime_python(args.python_version)
        requires = project_requirements()
        wanted: dict[str, list[str]] = {}
        for name in names:
            extras = list(dict.fromkeys([*FUNCTIONS[name].extras, *added]))
            check_extras(extras)
            wanted[name], provided = runtime_requirements(requires, extras, args.python_version, args.platform)
            print(
                f"{name}: dependencies for python{args.python_version} ({args.platform}): "
                f"{', '.join(wanted[name]) or 'none'}"
            )
            if provided:
                runtime = f"python{args.python_version} runtime"
                print(f"{name}: already in the {runtime}, not packaged: {', '.join(provided)}")
        build_dir.mkdir(parents=True, exist_ok=True)
        built = []
        with tempfile.TemporaryDirectory(prefix="deps-", dir=build_dir) as tmp:
            wheels = Path(tmp) / "wheels"
            build_wheels(sorted({r for reqs in wanted.values() for r in reqs}), wheels)
            installed: dict[tuple[str, ...], Path] = {}  # functions with the same requirements share one install
            for name in names:
                key = tuple(sorted(wanted[name]))
                if key not in installed:
                    installed[key] = Path(tmp) / f"python-{len(installed)}"
                    install_dependencies(wanted[name], installed[key], args.python_version, args.platform, wheels)
                built.append(build_function(name, build_dir, config, installed[key], python))
    except PackageError as exc:
        print(f"package: error: {exc}", file=sys.stderr)
        return 1
    print(f".pyc compiled by {python} (unchecked-hash)")
    for out in built:
        size, files = tree_size(out)
        deps_size, _ = tree_size(out / "python")
        print(f"{out}: {human(size)} in {files} files (dependencies {human(deps_size)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
