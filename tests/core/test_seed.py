"""The seed document's own tests, as the seed writes them.

One deviation, documented in DESIGN.md: ``test_cancellation_cleanup`` awaits a cancelled task,
which raises ``CancelledError`` because ``robust_task`` re-raises cancellation (the seed's own
rule); our version catches it. The module runs on looptime's fast-forwarded clock, so the
default 5 + 10 s backoff of ``test_network_error_recovery`` costs no real time.
"""

import asyncio

import pytest

from polymarket_agents.core.async_utils import TaskSupervisor, robust_task

pytestmark = pytest.mark.looptime


@pytest.mark.asyncio
async def test_network_error_recovery():
    """Test that network errors trigger retry."""
    error_count = 0

    async def failing_monitor():
        nonlocal error_count
        error_count += 1
        if error_count < 3:
            raise ConnectionError("Network down")
        await asyncio.sleep(0.01)  # Success on 3rd try

    await robust_task("test_monitor", failing_monitor())
    assert error_count == 3  # Failed twice, succeeded once


@pytest.mark.asyncio
async def test_cancellation_cleanup():
    """Test cleanup happens on cancellation."""
    cleanup_called = False

    async def cancellable_task():
        nonlocal cleanup_called
        try:
            await asyncio.sleep(10)
        finally:
            cleanup_called = True

    task = asyncio.create_task(robust_task("test", cancellable_task(), restart_on_failure=False))

    await asyncio.sleep(0.01)  # Let it start
    task.cancel()
    with pytest.raises(asyncio.CancelledError):  # the deviation: cancellation is re-raised
        await task

    assert cleanup_called  # Cleanup must happen


@pytest.mark.asyncio
async def test_supervisor_lifecycle():
    """Test full supervisor lifecycle."""
    supervisor = TaskSupervisor()

    async def quick_success():
        await asyncio.sleep(0.01)

    async def quick_failure():
        await asyncio.sleep(0.01)
        raise ValueError("Test error")

    # Start tasks
    await supervisor.start_task("success", quick_success())
    await supervisor.start_task("failure", quick_failure(), restart_on_failure=False)

    # Wait for completion
    await asyncio.sleep(0.1)

    metrics = supervisor.get_metrics()
    assert metrics["success"]["errors"] == 0
    assert metrics["failure"]["errors"] == 1

    await supervisor.stop_all()


@pytest.mark.asyncio
async def test_seed_graceful_shutdown_main():
    """The seed's "Graceful Shutdown" main(): signal.signal handlers, wait, stop_all."""
    import os
    import signal

    supervisor = TaskSupervisor()

    def signal_handler(signum, frame):
        supervisor.signal_shutdown()

    previous = signal.signal(signal.SIGTERM, signal_handler)
    try:
        await supervisor.start_task("agent", asyncio.sleep(3600))
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
        await supervisor.wait_for_shutdown()
        await supervisor.stop_all()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert supervisor.get_metrics()["agent"]["status"] == "stopped"
