"""URLs as they may be shown: credentials in the user-info part or the query string hidden.

A feed or listing URL can carry credentials (``wss://user:token@host/ws``,
``https://host/markets?api_key=...``). Every place that shows a URL (logs, ``/status``,
errors, summaries) shows :func:`redact_url` of it; text that may quote a URL it was not
given (an exception's message) goes through :func:`redact_text` with the
:func:`url_secrets` of the URLs in play.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

__all__ = ["MASK", "redact_text", "redact_url", "url_secrets"]

MASK = "***"
"""What a hidden credential is replaced with."""

_SECRET_NAME = re.compile(
    r"key|token|secret|pass|pwd|auth|sig|credential|session|cookie|jwt|bearer|private",
    re.IGNORECASE,
)
# A credential shorter than this is not searched for in free text: masking every "ab" in
# a log line would hide more than it protects.
_MIN_SECRET = 3


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(unquote_plus(name)))


def redact_url(url: str) -> str:
    """``url`` with its user info and the values of secret-looking query parameters masked.

    A query parameter looks secret when its name contains ``key``, ``token``, ``secret``,
    ``pass``, ``pwd``, ``auth``, ``sig``, ``credential``, ``session``, ``cookie``, ``jwt``,
    ``bearer`` or ``private`` (any case). Everything else is kept as written::

        >>> redact_url("wss://bot:hunter2@ws.example/ws/market?apiKey=abc&depth=5")
        'wss://***@ws.example/ws/market?apiKey=***&depth=5'

    Args:
        url: Any text meant as a URL; text that does not parse as one still has anything
            between ``//`` and ``@`` masked.

    Returns:
        The URL, safe to show.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@\s]*@", f"//{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        fields = []
        for field in query.split("&"):
            name, sep, value = field.partition("=")
            fields.append(f"{name}={MASK}" if sep and value and _is_secret_name(name) else field)
        query = "&".join(fields)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str | None) -> list[str]:
    """The credentials in ``url`` (its user info, the password alone, secret query values),
    as written and decoded, longest first; what :func:`redact_text` hides.

    Args:
        url: A URL, or None (no secrets).
    """
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: set[str] = set()
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        # All of it (a lone token is user info too), and the password alone; a user name
        # alone is no secret, and masking it everywhere would garble unrelated words.
        found.add(userinfo)
        _user, colon, password = userinfo.partition(":")
        if colon:
            found.add(password)
    for field in parts.query.split("&"):
        name, sep, value = field.partition("=")
        if sep and value and _is_secret_name(name):
            found.add(value)
    decoded = {unquote(secret) for secret in found} | {unquote_plus(s) for s in found}
    return sorted((s for s in found | decoded if len(s) >= _MIN_SECRET), key=lambda s: (-len(s), s))


def redact_text(text: str, urls: Iterable[str | None]) -> str:
    """``text`` with every one of ``urls`` replaced by its :func:`redact_url`, then any
    credential of theirs still left (quoted inside an error message, say) masked.

    Args:
        text: What is about to be shown.
        urls: The URLs whose credentials must not show; None entries are skipped.

    Returns:
        The text, safe to show.
    """
    for url in urls:
        if not url:
            continue
        if url in text:
            text = text.replace(url, redact_url(url))
        for secret in url_secrets(url):
            if secret in text:
                text = text.replace(secret, MASK)
    return text
