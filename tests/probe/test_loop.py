"""The round's event loop: uvloop when installed, asyncio's when it is absent or turned off."""

from __future__ import annotations

import asyncio
import importlib
import sys

import pytest

from shared.probe import loop


async def _which() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_uvloop_when_installed(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.delenv(loop.ENV, raising=False)
    assert loop.chosen() == "uvloop"
    assert loop.run(_which()) == "uvloop"


def test_asyncio_when_uvloop_is_absent(monkeypatch):
    monkeypatch.delenv(loop.ENV, raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    try:
        absent = importlib.reload(loop)
        assert absent._uvloop is None
        assert absent.chosen() == "asyncio"
        assert absent.run(_which()) == "asyncio"
    finally:
        monkeypatch.undo()
        importlib.reload(loop)


@pytest.mark.parametrize("how", ["env", "argument"])
def test_asyncio_when_asked(monkeypatch, how):
    if how == "env":
        monkeypatch.setenv(loop.ENV, "asyncio")
        assert loop.run(_which()) == "asyncio"
    else:
        monkeypatch.delenv(loop.ENV, raising=False)
        assert loop.run(_which(), "asyncio") == "asyncio"


def test_the_310_path_returns_the_result_and_cleans_up():
    """3.10's path (no asyncio.Runner): leftover tasks are cancelled and the loop closed, as asyncio.run does."""
    made: list[asyncio.AbstractEventLoop] = []
    left: list[asyncio.Task] = []

    def factory() -> asyncio.AbstractEventLoop:
        made.append(asyncio.new_event_loop())
        return made[-1]

    async def main() -> int:
        left.append(asyncio.get_running_loop().create_task(asyncio.Event().wait()))
        return 42

    assert loop._run_310(main(), factory) == 42
    assert made[0].is_closed() and left[0].cancelled()


def test_an_exception_comes_out_of_run():
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        loop.run(boom(), "asyncio")
