"""Run the test suite on every supported Python: ``make test-all`` (or ``nox``)."""

import nox

nox.options.default_venv_backend = "venv"


@nox.session(python=["3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    """Install the package with its dev extras and run pytest."""
    session.install("-e", ".[dev]")
    session.run("python", "-X", "dev", "-m", "pytest", "-q", *session.posargs)
