"""Supervision trees: strategies, restart types, ordered start and stop, intensity, escalation."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging

import pytest

from polymarket_agents.core.async_utils import (
    LOGGER_NAME,
    ConfigurationError,
    Restart,
    RestartIntensityError,
    RestartPolicy,
    Strategy,
    Supervisor,
    TaskFailure,
    TaskSupervisor,
    UnknownTaskError,
    instant_policy,
)

from ._recording import Recorder

pytestmark = pytest.mark.looptime

INSTANT = instant_policy()


class Journal:
    """Work whose starts, ends and failures are written to one shared list, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.failures: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}

    def fail(self, name: str) -> None:
        """Make the running ``name`` fail now."""
        self.failures[name] = 1
        self.gates[name].set()

    async def work(self, name: str, cleanup: float = 0.0) -> None:
        """Runs until cancelled (cleanup takes ``cleanup`` seconds) or told to fail."""
        gate = self.gates.setdefault(name, asyncio.Event())
        self.events.append(f"start {name}")
        try:
            await gate.wait()
            gate.clear()
            if self.failures.get(name, 0) > 0:
                self.failures[name] -= 1
                raise ConnectionError(f"{name} broke")
            self.events.append(f"return {name}")
        finally:
            if cleanup:
                await asyncio.sleep(cleanup)
            self.events.append(f"stop {name}")

    def count(self, event: str) -> int:
        return self.events.count(event)


async def settle(rounds: int = 20) -> None:
    """Let the loop run callbacks and steps that are due now."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_children_start_in_order_and_stop_in_reverse_order_one_at_a_time() -> None:
    """Each child's cleanup ends before the one started before it is cancelled."""
    journal = Journal()
    tree = Supervisor("root", policy=INSTANT)
    for name in ("a", "b", "c"):
        tree.add(name, journal.work(name, cleanup=1.0))
    async with tree:
        await settle()
        assert journal.events == ["start a", "start b", "start c"]
    assert journal.events[3:] == ["stop c", "stop b", "stop a"]
    assert all(entry["status"] == "stopped" for entry in tree.get_metrics().values())


async def test_one_for_one_restarts_only_the_failed_child() -> None:
    """A failure restarts that child alone, after its policy's backoff."""
    journal = Journal()
    tree = Supervisor(policy=RestartPolicy(backoff_seconds=2.0, jitter=0.0))
    tree.add("a", journal.work("a")).add("b", journal.work("b"))
    async with tree:
        await settle()
        journal.fail("a")
        await settle()
        assert tree.get_metrics()["a"]["status"] == "restarting"
        await asyncio.sleep(2.0)
        await settle()
        metrics = tree.get_metrics()
        assert (metrics["a"]["restarts"], metrics["a"]["errors"]) == (1, 1)
        assert metrics["b"]["restarts"] == 0
        assert journal.count("start a") == 2
        assert journal.count("start b") == 1


async def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order() -> None:
    """One failure: every sibling stops (last first), then all start again in order."""
    journal = Journal()
    tree = Supervisor(strategy=Strategy.ONE_FOR_ALL, policy=INSTANT)
    for name in ("a", "b", "c"):
        tree.add(name, journal.work(name, cleanup=0.5))
    async with tree:
        await settle()
        journal.events.clear()
        journal.fail("b")
        await asyncio.sleep(5)
        assert journal.events == [
            "stop b",
            "stop c",
            "stop a",
            "start a",
            "start b",
            "start c",
        ]
        assert [entry["restarts"] for entry in tree.get_metrics().values()] == [1, 1, 1]


async def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    """Children started before the failed one keep running."""
    journal = Journal()
    tree = Supervisor(strategy=Strategy.REST_FOR_ONE, policy=INSTANT)
    for name in ("a", "b", "c"):
        tree.add(name, journal.work(name))
    async with tree:
        await settle()
        journal.events.clear()
        journal.fail("b")
        await settle()
        assert journal.events == ["stop b", "stop c", "start b", "start c"]
        assert [entry["restarts"] for entry in tree.get_metrics().values()] == [0, 1, 1]


async def test_restart_types_permanent_transient_temporary() -> None:
    """A return restarts only a permanent child; a failure restarts all but a temporary one."""
    journal = Journal()
    tree = Supervisor(policy=INSTANT, max_restarts=None)
    tree.add("perm", journal.work("perm"), restart=Restart.PERMANENT)
    tree.add("trans", journal.work("trans"), restart="transient")
    tree.add("temp", journal.work("temp"), restart=Restart.TEMPORARY)
    async with tree:
        await settle()
        for name in ("perm", "trans", "temp"):
            journal.gates[name].set()  # return normally
        await settle()
        metrics = tree.get_metrics()
        assert metrics["perm"]["status"] == "running"
        assert metrics["perm"]["restarts"] == 1
        assert (metrics["trans"]["status"], metrics["trans"]["outcome"]) == (
            "stopped",
            "succeeded",
        )
        assert metrics["temp"]["status"] == "stopped"
        journal.fail("perm")
        await settle()
        assert tree.get_metrics()["perm"]["restarts"] == 2


async def test_a_temporary_failure_is_final_and_its_group_leaves_it_stopped() -> None:
    """A temporary child is neither restarted after it fails nor with its group."""
    journal = Journal()
    tree = Supervisor(strategy=Strategy.ONE_FOR_ALL, policy=INSTANT)
    tree.add("temp", journal.work("temp"), restart=Restart.TEMPORARY)
    tree.add("perm", journal.work("perm"))
    async with tree:
        await settle()
        journal.fail("perm")
        await settle()
        metrics = tree.get_metrics()
        assert (metrics["temp"]["status"], metrics["temp"]["outcome"]) == (
            "stopped",
            "cancelled",
        )
        assert metrics["perm"]["status"] == "running"
        assert journal.count("start temp") == 1


async def test_each_child_has_its_own_shutdown_time_then_is_reported_unresponsive(
    caplog: pytest.LogCaptureFixture, looptime: float
) -> None:
    """A child that swallows its cancellation holds the stop for its shutdown time only."""
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    journal = Journal()
    tree = Supervisor()
    tree.add("first", journal.work("first"))
    tree.add("stubborn", stubborn, shutdown=3.0)
    await tree.start()
    await settle()
    with caplog.at_level(logging.WARNING, LOGGER_NAME):
        stuck = await tree.stop()
    assert stuck == ["stubborn"]
    assert looptime == 3
    assert "'stubborn'" in caplog.records[-1].getMessage()
    assert tree.get_metrics()["stubborn"]["outcome"] == "unresponsive"
    assert journal.events[-1] == "stop first"  # still stopped, after the stubborn one
    release.set()
    await settle()


async def test_restart_intensity_escalates_to_the_parent_which_restarts_the_subtree() -> None:
    """Too many restarts make a supervisor give up; its parent restarts it with its
    children, and the failure and restarts are told to the observer with their paths."""
    journal = Journal()
    recorder = Recorder()
    inner = Supervisor(max_restarts=1, restart_window=10.0, policy=INSTANT)
    inner.add("a", journal.work("a")).add("b", journal.work("b"))
    root = Supervisor("root", observer=recorder, max_restarts=5)
    root.add("inner", inner)
    async with root:
        await settle()
        journal.fail("a")
        await settle()
        journal.fail("a")  # the second restart in the window is one too many
        await settle(50)
        metrics = root.get_metrics()
        assert metrics["inner/a"]["status"] == "running"
        assert metrics["inner/b"]["status"] == "running"
        assert journal.count("start b") == 2  # restarted with its supervisor
    failed = [(event.task, type(event.error).__name__) for event in recorder.failures]
    assert failed == [
        ("inner/a", "ConnectionError"),
        ("inner/a", "ConnectionError"),
        ("inner", "RestartIntensityError"),
    ]
    assert ("inner", 1) in [(event.task, event.restarts) for event in recorder.restarts]
    assert root.snapshot()["children"][0]["restarts"] == 1


async def test_the_root_gives_up_and_wait_raises(caplog: pytest.LogCaptureFixture) -> None:
    """Past the root's intensity, its children are stopped and wait() raises."""
    journal = Journal()
    root = Supervisor("root", max_restarts=2, restart_window=60.0, policy=INSTANT)
    root.add("a", journal.work("a")).add("b", journal.work("b"))
    with caplog.at_level(logging.ERROR, LOGGER_NAME):
        async with root:
            for _ in range(3):
                await settle()
                journal.fail("a")
            with pytest.raises(RestartIntensityError, match="more than 2 restarts"):
                await root.wait()
    assert journal.count("stop b") == 1
    assert all(entry["status"] == "stopped" for entry in root.get_metrics().values())


async def test_backoff_jitter_and_error_classes_apply_per_child(looptime: float) -> None:
    """Each child restarts after its own policy's delay; a fatal error is final."""
    calls = {"slow": 0, "fatal": 0}

    async def slow() -> None:
        calls["slow"] += 1
        if calls["slow"] == 1:
            raise ConnectionError("blip")
        await asyncio.sleep(3600)

    async def fatal() -> None:
        calls["fatal"] += 1
        raise KeyError("bug")

    tree = Supervisor(max_restarts=None)
    tree.add("slow", slow, policy=RestartPolicy(backoff_seconds=7.0, jitter=0.0))
    tree.add("fatal", fatal)
    async with tree:
        await settle()
        assert tree.get_metrics()["fatal"]["outcome"] == "failed"
        while calls["slow"] < 2:
            await asyncio.sleep(0.5)
        assert looptime == 7
    assert calls["fatal"] == 1


async def test_stalled_child_is_restarted_as_stalled_and_a_beating_one_is_not() -> None:
    """A child silent for longer than its heartbeat is cancelled and restarted; beat()
    keeps another alive."""
    from polymarket_agents.core.async_utils import beat

    runs = {"stuck": 0, "alive": 0}

    async def stuck() -> None:
        runs["stuck"] += 1
        beat()
        await asyncio.Event().wait()  # a lost wake-up

    async def alive() -> None:
        runs["alive"] += 1
        while True:
            beat()
            await asyncio.sleep(0.5)

    tree = Supervisor(policy=INSTANT, max_restarts=None)
    tree.add("stuck", stuck, heartbeat=2.0)
    tree.add("alive", alive, heartbeat=2.0)
    async with tree:
        await asyncio.sleep(10)
        metrics = tree.get_metrics()
    assert runs["alive"] == 1
    assert metrics["alive"]["stalls"] == 0
    assert runs["stuck"] >= 2
    assert metrics["stuck"]["stalls"] >= 1
    assert (metrics["stuck"]["last_error"] or "").startswith("StalledError: stalled")


async def test_coroutine_objects_restart_with_their_group() -> None:
    """Coroutine objects stopped by a group restart are re-created with their arguments."""
    journal = Journal()
    tree = Supervisor(strategy=Strategy.ONE_FOR_ALL, policy=INSTANT, restart="transient")
    tree.add("a", journal.work("a")).add("b", journal.work("b"))
    async with tree:
        await settle()
        journal.fail("b")
        await settle()
        assert journal.count("start a") == 2
        assert journal.count("start b") == 2


async def test_a_failure_during_a_group_restart_goes_along_with_it() -> None:
    """A sibling failing while the group restarts is restarted with it, once."""
    journal = Journal()
    tree = Supervisor(strategy=Strategy.ONE_FOR_ALL, policy=INSTANT, max_restarts=None)
    tree.add("a", journal.work("a")).add("b", journal.work("b", cleanup=1.0))
    tree.add("c", journal.work("c", cleanup=1.0))
    async with tree:
        await settle()
        journal.fail("a")
        await settle()  # c is stopping (its cleanup takes a second); a fails meanwhile
        journal.fail("a")  # no effect: a is stopped already, waiting for its group
        journal.failures["a"] = 0
        await asyncio.sleep(3)
        assert [journal.count(f"start {name}") for name in "abc"] == [2, 2, 2]


async def test_children_added_to_a_running_supervisor_start_at_once() -> None:
    """add() on a running supervisor starts the child after the others."""
    journal = Journal()
    async with Supervisor() as tree:
        tree.add("late", journal.work("late"))
        await settle()
        assert journal.events == ["start late"]
        assert tree.get_metrics()["late"]["status"] == "running"
        with pytest.raises(ConfigurationError, match="already has a child"):
            tree.add("late", journal.work("again"))


async def test_terminate_and_restart_child_by_name() -> None:
    """terminate_child stops one child for good; restart_child starts it again."""
    journal = Journal()
    async with Supervisor() as tree:
        tree.add("a", journal.work("a")).add("b", journal.work("b"))
        await settle()
        assert await tree.terminate_child("a") is True
        assert tree.get_metrics()["a"]["status"] == "stopped"
        await tree.restart_child("a")
        await settle()
        assert tree.get_metrics()["a"]["status"] == "running"
        assert journal.count("start a") == 2
        assert journal.count("start b") == 1


async def test_a_task_supervisor_is_a_node_of_a_tree() -> None:
    """A TaskSupervisor mounted in a tree reports its tasks by path and stops with it."""
    journal = Journal()
    pool = TaskSupervisor()
    await pool.start_task("m1", journal.work("m1"))
    root = Supervisor("root")
    root.add("socket", journal.work("socket")).add("pool", pool)
    async with root:
        await pool.start_task("m2", journal.work("m2"))
        await settle()
        assert sorted(root.get_metrics()) == ["pool/m1", "pool/m2", "socket"]
    assert journal.events[-3:] == ["stop m1", "stop m2", "stop socket"] or journal.events[-3:] == [
        "stop m2",
        "stop m1",
        "stop socket",
    ]


async def test_render_draws_the_tree_and_sums_up_long_child_lists() -> None:
    """render() draws strategies, statuses and counts; long lists end in a summary line."""
    journal = Journal()
    monitors = Supervisor()
    for index in range(5):
        monitors.add(f"m{index}", journal.work(f"m{index}"))
    root = Supervisor("service", strategy=Strategy.REST_FOR_ONE)
    root.add("socket", journal.work("socket")).add("monitors", monitors)
    async with root:
        await settle()
        lines = root.render(max_children=2)
    assert lines == [
        "service  rest_for_one  running",
        "├── socket  running",
        "└── monitors  one_for_one  running",
        "    ├── m0  running",
        "    ├── m1  running",
        "    └── … 3 more: 3 running",
    ]


def test_invalid_settings_are_refused() -> None:
    """Negative limits and windows are configuration errors."""
    with pytest.raises(ConfigurationError):
        Supervisor(max_restarts=-1)
    with pytest.raises(ConfigurationError):
        Supervisor(restart_window=0)
    with pytest.raises(ConfigurationError):
        Supervisor(shutdown=-1.0)
    with pytest.raises(ValueError, match="Strategy"):
        Supervisor(strategy="one_for_some")


async def test_a_child_stopped_for_good_stays_stopped_when_its_group_restarts() -> None:
    """A fatal failure is final: a later group restart does not revive that child."""
    journal = Journal()

    async def broken() -> None:
        raise KeyError("bug")

    tree = Supervisor(strategy=Strategy.ONE_FOR_ALL, policy=INSTANT)
    tree.add("broken", broken).add("a", journal.work("a"))
    async with tree:
        await settle()
        journal.fail("a")
        await settle()
        metrics = tree.get_metrics()
        assert (metrics["broken"]["status"], metrics["broken"]["errors"]) == ("stopped", 1)
        assert (metrics["a"]["status"], metrics["a"]["restarts"]) == ("running", 1)


async def test_summary_counts_the_children_by_status() -> None:
    """summary() is the root's line of render() with its children counted."""
    journal = Journal()
    tree = Supervisor("service", strategy=Strategy.REST_FOR_ONE)
    tree.add("a", journal.work("a")).add("b", journal.work("b"))
    assert tree.summary() == "service  rest_for_one  stopped  (2 children: 2 stopped)"
    async with tree:
        await settle()
        assert tree.summary() == "service  rest_for_one  running  (2 children: 2 running)"


async def test_a_task_supervisor_restarts_with_its_group() -> None:
    """A TaskSupervisor child of a one_for_all tree is stopped and started again, with its
    tasks, when a sibling fails."""
    journal = Journal()
    pool = TaskSupervisor()
    root = Supervisor("root", strategy=Strategy.ONE_FOR_ALL, policy=INSTANT)
    root.add("pool", pool).add("socket", journal.work("socket"))
    async with root:
        await pool.start_task("m1", journal.work("m1"))
        await settle()
        journal.fail("socket")
        await settle(40)
        metrics = root.get_metrics()
        assert metrics["pool/m1"]["status"] == "running"
        assert metrics["pool/m1"]["restarts"] == 1
        assert journal.count("start m1") == 2
        assert journal.count("start socket") == 2


async def test_a_stopped_child_is_deleted_and_a_running_one_refused() -> None:
    """delete_child forgets a stopped child and its metrics (child_metrics reads them
    first); a running one must be stopped first; a deleted supervisor is a root again and
    can be added elsewhere."""
    journal = Journal()
    inner = Supervisor(policy=INSTANT)
    inner.add("x", journal.work("x"))
    tree = Supervisor("root", policy=INSTANT)
    tree.add("a", journal.work("a")).add("inner", inner)
    async with tree:
        await settle()
        with pytest.raises(RuntimeError, match="stop it before deleting it"):
            tree.delete_child("a")
        assert await tree.terminate_child("a")
        everything = tree.get_metrics()
        assert tree.child_metrics("a") == {"a": everything["a"]}
        assert tree.child_metrics("inner") == {"inner/x": everything["inner/x"]}
        tree.delete_child("a")
        assert "a" not in tree
        assert set(tree.get_metrics()) == {"inner/x"}
        assert await tree.terminate_child("inner")
        tree.delete_child("inner")
        assert (inner.parent, inner.path) == (None, "")
        other = Supervisor("other", policy=INSTANT)
        other.add("moved", inner)
        async with other:
            await settle()
            assert other.get_metrics()["moved/x"]["status"] == "running"
    with pytest.raises(UnknownTaskError):
        tree.delete_child("a")
    with pytest.raises(UnknownTaskError):
        tree.child_metrics("a")


async def test_deleting_a_child_that_never_ran_closes_its_coroutine() -> None:
    """A coroutine object added and deleted before the supervisor started is closed, not
    left to warn that it was never awaited."""
    journal = Journal()
    work = journal.work("never")
    tree = Supervisor("root")
    tree.add("never", work)
    tree.delete_child("never")
    assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED
    assert journal.events == []


async def test_reset_backoff_makes_the_next_restart_wait_the_first_delay() -> None:
    """Failures back off 1, 2, 4 s; reset_backoff (the work said it is healthy) brings the
    next delay back to 1 s, whatever the policy's reset_after."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def flaky() -> None:
        starts.append(loop.time())
        await asyncio.sleep(0.1)
        raise ConnectionError("dropped")

    policy = RestartPolicy(backoff_seconds=1.0, jitter=0.0, reset_after=float("inf"))
    tree = Supervisor("root", policy=policy, max_restarts=None)
    tree.add("conn", flaky)
    async with tree:
        while len(starts) < 4:
            await asyncio.sleep(0.05)
        tree.reset_backoff("conn")
        while len(starts) < 5:
            await asyncio.sleep(0.05)
    gaps = [round(b - a - 0.1, 3) for a, b in itertools.pairwise(starts)]
    assert gaps == [1.0, 2.0, 4.0, 1.0]


async def test_every_observer_above_a_task_is_told_the_nearest_first() -> None:
    """A subtree with an observer of its own still reports to the root's: both are told,
    the subtree's first; one that raises does not keep the other from hearing."""
    order: list[str] = []

    class Named(Recorder):
        def __init__(self, name: str, broken: bool = False) -> None:
            super().__init__()
            self.name, self.broken = name, broken

        def on_failure(self, event: TaskFailure) -> None:
            super().on_failure(event)
            order.append(self.name)
            if self.broken:
                raise RuntimeError("observer broke")

    journal = Journal()
    near, far = Named("near", broken=True), Named("far")
    inner = Supervisor(policy=INSTANT, observer=near)
    inner.add("a", journal.work("a"))
    root = Supervisor("root", observer=far, policy=INSTANT)
    root.add("inner", inner)
    async with root:
        await settle()
        journal.fail("a")
        await settle()
    assert order == ["near", "far"]
    assert [e.task for e in near.failures] == [e.task for e in far.failures] == ["inner/a"]
    assert [e.task for e in far.restarts] == ["inner/a"]
