"""``EventSequence``: one number per event, in the order the monitors take them.

The monitors of a process share one sequence, so the numbers order every event of every
market as the strategy and the broker saw them. Stored with each event's rows
(``event_seq``), they let a backtest replay a run exactly as it happened.
"""

from __future__ import annotations

__all__ = ["RUN_BITS", "EventSequence", "run_of"]

RUN_BITS = 40
"""Low bits of an ``event_seq`` that count events within a run (about 10**12 events);
the bits above hold the run's id, so numbers grow from one run to the next."""


def run_of(event_seq: int) -> int:
    """The run an ``event_seq`` belongs to."""
    return event_seq >> RUN_BITS


class EventSequence:
    """Numbers events ``run_id << RUN_BITS``, then up by one.

    Args:
        run_id: The run's id (the store's :meth:`begin_run`); 0 for a run not recorded.
    """

    __slots__ = ("_next", "run_id")

    def __init__(self, run_id: int = 0) -> None:
        self.run_id = 0
        self._next = 0
        self.start(run_id)

    def __repr__(self) -> str:
        return f"<EventSequence run={self.run_id} next={self._next - (self.run_id << RUN_BITS)}>"

    def start(self, run_id: int) -> None:
        """Number the next events as the first of run ``run_id``.

        Raises:
            ValueError: If ``run_id`` is negative or too large for a 63-bit number.
        """
        if not 0 <= run_id < 2 ** (63 - RUN_BITS):
            raise ValueError(f"run_id must be in [0, 2**{63 - RUN_BITS}), not {run_id!r}")
        self.run_id = run_id
        self._next = run_id << RUN_BITS

    def __call__(self) -> int:
        """The next event's number."""
        number = self._next
        self._next = number + 1
        return number

    @property
    def taken(self) -> int:
        """Numbers handed out in this run."""
        return self._next - (self.run_id << RUN_BITS)
