"""The live view: troubled tasks first, counters beside them, drawn off the loop."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from polymarket_agents.core.async_utils import Strategy, Supervisor, TaskSupervisor
from polymarket_agents.service import LiveView, ServiceConfig, ServiceState


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=160, force_terminal=True, color_system=None), buffer


async def _state_with_tasks(running: int) -> ServiceState:
    supervisor = TaskSupervisor()
    state = ServiceState(ServiceConfig(), supervisor)

    async def broken() -> None:
        raise ValueError("bad market id")

    async def idle() -> None:
        await asyncio.Event().wait()

    for i in range(running):
        await supervisor.start_task(f"monitor_{i:02d}", idle)
    await supervisor.start_task("zz_broken", broken, restart_on_failure=False)
    await supervisor.join("zz_broken")
    return state


async def test_render_shows_troubled_tasks_first_and_caps_rows() -> None:
    """A stopped task with errors is listed first; rows past the cap are summarised."""
    state = await _state_with_tasks(running=30)
    console, buffer = _console()
    try:
        console.print(LiveView(state, console, max_tasks=5).render())
    finally:
        await state.supervisor.stop_all()
    lines = buffer.getvalue().splitlines()
    rows = [line for line in lines if "monitor_" in line or "zz_broken" in line]
    assert "zz_broken" in rows[0]
    assert "ValueError: bad market id" in rows[0]
    assert len(rows) == 5
    assert any("… 26 more" in line and "26 running" in line for line in lines)
    assert "not ready: service is starting" in buffer.getvalue()


async def test_run_draws_until_cancelled_then_leaves_a_last_frame() -> None:
    """run() redraws on a timer from a worker thread and stops cleanly when cancelled."""
    state = await _state_with_tasks(running=2)
    console, buffer = _console()
    view = LiveView(state, console, interval=0.1)
    task = asyncio.create_task(view.run())
    try:
        while state.view_refreshes < 2:
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await state.supervisor.stop_all()
    assert task.cancelled()
    assert "monitor_01" in buffer.getvalue()
    assert "feed and trading" in buffer.getvalue()


async def test_render_draws_each_supervisor_of_the_tree_under_its_parent() -> None:
    """The tree's supervisors, one line each, indented under their parents, with their
    strategies and children counted by status; their tasks are rows of the table."""
    state = await _state_with_tasks(running=2)
    inner = Supervisor("agents", strategy=Strategy.REST_FOR_ONE)
    pool = TaskSupervisor(name="pool")
    inner.add("pool", pool)
    state.supervisor.add("agents", inner)
    await pool.start_task("conn-1", asyncio.Event().wait)
    console, buffer = _console()
    try:
        console.print(LiveView(state, console).render())
    finally:
        await state.supervisor.stop_all()
    lines = buffer.getvalue().splitlines()
    tree = [line for line in lines if "one_for_one" in line or "rest_for_one" in line]
    assert tree[0].startswith("supervision: tasks  one_for_one  running  (4 children: ")
    assert tree[1].startswith("  └ agents  rest_for_one  running  (1 children: 1 running)")
    assert tree[2].startswith("    └ pool  one_for_one  running  (1 children: 1 running)")
    assert any(line.startswith("conn-1 ") for line in lines)


async def test_tasks_are_named_by_the_end_of_their_path_and_a_clash_keeps_the_path() -> None:
    """/status, /metrics and the view name a task by the last part of its path in the
    tree; a second task of the same name (in another subtree) keeps its whole path."""
    supervisor = TaskSupervisor(name="service")
    state = ServiceState(ServiceConfig(), supervisor)
    first, second = TaskSupervisor(name="a"), TaskSupervisor(name="b")
    supervisor.add("a", first)
    supervisor.add("b", second)
    await supervisor.start_task("solo", asyncio.Event().wait)
    await first.start_task("same", asyncio.Event().wait)
    await second.start_task("same", asyncio.Event().wait)
    try:
        paths = state.task_paths()
        assert paths == {"same": "a/same", "b/same": "b/same", "solo": "solo"}
        assert list(paths) == ["same", "b/same", "solo"]  # in start order
        assert list(state.task_metrics()) == list(paths)
        status = state.status()["tasks"]
        assert {name: entry["path"] for name, entry in status.items()} == state.task_paths()
    finally:
        await supervisor.stop_all()
