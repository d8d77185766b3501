"""Benchmark (not a test): the probe function's cold start from its FC code directory.

Run: make bench  (or .venv/bin/python scripts/bench_cold_start.py [[LABEL=]CODE_DIR ...]). Without a
code directory it builds one from this checkout (scripts/package.py, the example config). For each
directory: its files and MiB, then the median over fresh processes of the FC runtime's Python of
importing the handler and its first call on a timer event, the config's one target on a closed
loopback port so no network wait hides the code's own cost. Processes run with -B (FC's /code is
read-only: a .py without a shipped .pyc is compiled again by every cold start) and -I -S (they see
the code directory and the stdlib, nothing of this machine's site-packages); at full CPU and under a
CPU quota like a small FC instance's (0.35 vCPU by default): systemd-run's CPUQuota, else a cgroup
(v2 cpu.max, v1 cpu.cfs_quota_us), else taskset with busy loops sharing the core.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from package import PackageError, runtime_python, tree_size

ROOT = Path(__file__).resolve().parent.parent
FC_PYTHON = "3.10"
PERIOD_US = 100_000

CLOSED_PORT_CONFIG = """targets:
  - name: closed
    kind: eas
    endpoint: http://127.0.0.1:9
    service: svc
    credential: env:EAS_TOKEN
    probe: {retries: 0, timeout: 2s}
"""

COLD_START = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/python"]
import index
t1 = time.perf_counter()
if hasattr(index, "initialize"):  # FC runs the Initializer hook once per instance, before the first event
    index.initialize(None)
t2 = time.perf_counter()
event = b'{"triggerName": "probe-timer", "payload": ""}'
summary = json.loads(index.handler(event, None))
t3 = time.perf_counter()
index.handler(event, None)
t4 = time.perf_counter()
assert summary["targets"] == 1, summary
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "init_ms": (t2 - t1) * 1e3, "call_ms": (t3 - t2) * 1e3,
                  "warm_ms": (t4 - t3) * 1e3}))
"""


@dataclass(frozen=True)
class Limit:
    """How child processes get their CPU share: a command prefix and/or a step run in the child."""

    label: str
    prefix: tuple[str, ...] = ()
    join: Callable[[], None] | None = None


def measure(python: Path, code_dir: Path, config: Path, limit: Limit, runs: int) -> dict[str, float]:
    """Medians over `runs` fresh processes: handler import, Initializer hook, first and second call, and the
    process's wall time."""
    samples: dict[str, list[float]] = {"import_ms": [], "init_ms": [], "call_ms": [], "warm_ms": [], "process_ms": []}
    env = {  # what FC sets (FC_FUNCTION_NAME) and what s.yaml sets (VPCPROBE_CONFIG)
        "PATH": os.environ.get("PATH", ""),
        "FC_FUNCTION_NAME": "vpcprobe-probe",
        "VPCPROBE_CONFIG": str(config),
        "EAS_TOKEN": "bench",
    }
    command = [*limit.prefix, str(python), "-I", "-S", "-B", "-c", COLD_START, str(code_dir)]
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            command, cwd=code_dir, env=env, capture_output=True, text=True, preexec_fn=limit.join, check=False
        )
        elapsed = (time.perf_counter() - start) * 1e3
        if proc.returncode != 0:
            raise SystemExit(f"{code_dir}: the cold start failed:\n{proc.stdout}{proc.stderr}")
        figures = json.loads(proc.stdout.splitlines()[-1])
        for name in ("import_ms", "init_ms", "call_ms", "warm_ms"):
            samples[name].append(figures[name])
        samples["process_ms"].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}


def _systemd_run(quota: float) -> Limit | None:
    prefix = ("systemd-run", "--scope", "--quiet", "-p", f"CPUQuota={quota * 100:.0f}%", "--")
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return None
    return Limit(f"systemd-run CPUQuota={quota * 100:.0f}%", prefix) if ok else None


def _cgroup_files(quota: float) -> Iterator[tuple[Path, dict[str, str], str]]:
    """(where to create the group, what to write in it, label), v2 mounts first."""
    quota_us = str(int(quota * PERIOD_US))
    mounts = [line.split()[1:4] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount, kind, _ in mounts:
        controllers = Path(mount) / "cgroup.controllers"
        if kind == "cgroup2" and controllers.is_file() and "cpu" in controllers.read_text().split():
            yield Path(mount), {"cpu.max": f"{quota_us} {PERIOD_US}"}, f"cgroup v2 cpu.max {quota_us} {PERIOD_US}"
    for mount, kind, options in mounts:
        if kind == "cgroup" and "cpu" in options.split(","):
            files = {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": quota_us}
            yield Path(mount), files, f"cgroup v1 cpu.cfs_quota_us {quota_us}/{PERIOD_US}"


@contextlib.contextmanager
def _cgroup(quota: float) -> Iterator[Limit | None]:
    for mount, files, label in _cgroup_files(quota):
        group = mount / f"vpcprobe-bench-{os.getpid()}"
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            for name, value in files.items():
                (group / name).write_text(value)
        except OSError:
            group.rmdir()
            continue
        procs = group / "cgroup.procs"

        def join(procs: Path = procs) -> None:
            procs.write_text(str(os.getpid()))

        try:
            yield Limit(label, join=join)
        finally:
            group.rmdir()  # its processes have all exited
        return
    yield None


@contextlib.contextmanager
def _taskset(quota: float) -> Iterator[Limit]:
    """Busy loops on the child's core leave it about 1/(1 + loops) of it."""
    loops = max(1, round(1 / quota) - 1)
    cpu = min(os.sched_getaffinity(0))
    spinners = [
        subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", "while True: pass"]) for _ in range(loops)
    ]
    try:
        yield Limit(
            f"taskset -c {cpu} beside {loops} busy loops (~{1 / (loops + 1):.2f} CPU)", ("taskset", "-c", str(cpu))
        )
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@contextlib.contextmanager
def cpu_quota(quota: float) -> Iterator[Limit]:
    """The first way to cap a child's CPU that works on this machine."""
    limit = _systemd_run(quota)
    if limit:
        yield limit
        return
    with _cgroup(quota) as group:
        if group:
            yield group
            return
    with _taskset(quota) as pinned:
        yield pinned


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "code_dirs", nargs="*", metavar="[LABEL=]CODE_DIR", help="FC code directories (default: build one now)"
    )
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per figure (median; default 7)")
    parser.add_argument("--quota", type=float, default=0.35, help="CPU share for the limited runs (default 0.35)")
    args = parser.parse_args(argv)
    if args.runs < 1 or not 0 < args.quota < 1:
        parser.error("--runs must be at least 1 and --quota between 0 and 1")
    return args


def code_dir_arg(text: str) -> tuple[str, Path]:
    """'before=/tmp/b/probe' -> ('before', Path); a bare path is its own label."""
    label, sep, path = text.partition("=")
    return (label, Path(path).resolve()) if sep else (text, Path(text).resolve())


def build_here(build_dir: Path) -> Path:
    command = [sys.executable, str(ROOT / "scripts" / "package.py"), "--python-version", FC_PYTHON]
    command += ["--config", str(ROOT / "vpcprobe.example.yaml"), "--build-dir", str(build_dir)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"building the code directory failed:\n{proc.stdout}{proc.stderr}")
    return build_dir / "probe"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        python = runtime_python(FC_PYTHON)
    except PackageError as exc:
        print(f"bench_cold_start: {exc}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="vpcprobe-bench-") as tmp:
        config = Path(tmp) / "vpcprobe.yaml"
        config.write_text(CLOSED_PORT_CONFIG)
        code_dirs = [code_dir_arg(d) for d in args.code_dirs] or [("this checkout", build_here(Path(tmp) / "build"))]
        print(
            f"probe handler cold start: {python} -I -S -B, one target on a closed loopback port, median of {args.runs}"
        )
        with cpu_quota(args.quota) as limited:
            for label, code_dir in code_dirs:
                size, files = tree_size(code_dir)
                pycs = [p.stat().st_size for p in code_dir.rglob("*.pyc")]
                print(
                    f"\n{label} ({code_dir}): {files} files, {size / 2**20:.1f} MiB"
                    f" (.pyc: {len(pycs)} files, {sum(pycs) / 2**20:.1f} MiB)"
                )
                for limit in (Limit("full CPU"), limited):
                    m = measure(python, code_dir, config, limit, args.runs)
                    print(
                        f"  {limit.label:<46} import {m['import_ms']:6.1f} ms   initializer {m['init_ms']:6.1f} ms"
                        f"   first call {m['call_ms']:6.1f} ms   warm call {m['warm_ms']:6.1f} ms"
                        f"   process {m['process_ms']:6.1f} ms"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
