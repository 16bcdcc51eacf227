"""Sessions on every supported Python: ``make test-all`` (``nox -s tests``) and ``make latest``.

``tests`` installs exactly what ``uv.lock`` pins, as ``make test`` does. ``latest`` ignores the
lock and takes the newest release of every dependency, so that an upstream release that breaks
the project shows here first. Both need ``uv`` on ``PATH`` (the Makefile puts its pinned copy
there).
"""

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]

PYTHONS = ["3.11", "3.12", "3.13"]


def _sync_from_lock(session: nox.Session) -> None:
    """Install the project and its dev group into the session's venv, exactly as locked."""
    env = {"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--group",
        "dev",
        f"--python={session.virtualenv.location}",
        env=env,
        external=True,
    )


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite against the locked environment."""
    _sync_from_lock(session)
    session.run("python", "-X", "dev", "-m", "pytest", "-q", *session.posargs)


@nox.session(python=PYTHONS[-1])
def latest(session: nox.Session) -> None:
    """Lint, types and tests against the newest release of every dependency."""
    session.install(
        "--upgrade", "--resolution=highest", "-e", ".", "--group", "dev", "--group", "bench"
    )
    # What "latest" meant today, for the log.
    session.run("uv", "pip", "freeze", f"--python={session.virtualenv.location}", external=True)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")
    session.run("mypy")
    session.run("python", "-X", "dev", "-m", "pytest", "-q", *session.posargs)
