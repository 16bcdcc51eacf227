"""Example strategies: copy one, change it, run it with ``--strategy``.

Each example is a module with its own test beside it (``test_<name>.py``); ``make test``
runs them with the rest of the suite.
"""
