"""redact_url, url_secrets, redact_text: credentials in URLs never reach what is shown."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polymarket_agents.feed import MASK, redact_text, redact_url, url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("wss://ws.example/ws/market", "wss://ws.example/ws/market"),
        ("wss://bot:hunter2@ws.example/ws", "wss://***@ws.example/ws"),
        ("https://TOKEN123@gamma.example", "https://***@gamma.example"),
        ("https://gamma.example/?apiKey=abc&limit=5", "https://gamma.example/?apiKey=***&limit=5"),
        ("https://h/?access_token=a&X-Amz-Signature=b&sig=c", "https://h/?access_token=***&X-Amz-Signature=***&sig=***"),
        ("https://h/?password=&flag", "https://h/?password=&flag"),
        ("wss://u:p@[::1]:9/ws?session=x#frag", "wss://***@[::1]:9/ws?session=***#frag"),
        ("not a url", "not a url"),
        ("ws://[broken@host/x", "ws://***@host/x"),
    ],
)  # fmt: skip
def test_redact_url_masks_user_info_and_secret_query_values(url: str, shown: str) -> None:
    """User info and values of secret-looking parameters are masked; the rest is kept."""
    assert redact_url(url) == shown


def test_url_secrets_are_the_credentials_as_written_and_decoded() -> None:
    """The user info, the password alone and secret query values, encoded and decoded;
    a user name alone and very short values are not searched for."""
    secrets = url_secrets("wss://bot:p%40ss-word@h/ws?token=abc%20d&x=1&key=ab")
    assert secrets == sorted(
        ["bot:p%40ss-word", "bot:p@ss-word", "p%40ss-word", "p@ss-word", "abc%20d", "abc d"],
        key=lambda s: (-len(s), s),
    )
    assert url_secrets(None) == []
    assert url_secrets("wss://h/ws") == []


def test_redact_text_masks_urls_and_credentials_quoted_anywhere() -> None:
    """A URL quoted whole, or its password quoted alone, is masked in free text."""
    url = "wss://bot:hunter22@h/ws?apiKey=k3y9"
    text = f"connect {url} failed; server said: bad password hunter22 for key k3y9"
    assert redact_text(text, [url, None]) == (
        f"connect wss://{MASK}@h/ws?apiKey={MASK} failed; server said: bad password "
        f"{MASK} for key {MASK}"
    )


_SECRET_CHARS = string.ascii_letters + string.digits + "-_.~!$&'()+,;=:@/ ?#%"  # no '*': the mask


@given(
    user=st.text(string.ascii_letters, min_size=1, max_size=8),
    password=st.text(_SECRET_CHARS, min_size=3, max_size=20),
    token=st.text(_SECRET_CHARS, min_size=3, max_size=20),
)
def test_no_credential_survives_redaction(user: str, password: str, token: str) -> None:
    """Whatever the password and token, neither is left in the shown URL or in a message
    quoting them (as written or percent-encoded)."""
    encoded_password, encoded_token = quote(password, safe=""), quote(token, safe="")
    url = f"wss://{user}:{encoded_password}@h.example/ws?token={encoded_token}"
    shown = redact_url(url)
    assert encoded_password not in shown
    assert encoded_token not in shown
    message = redact_text(f"{url} said {password!r} / {token!r}", [url])
    for secret in (password, token, encoded_password, encoded_token):
        assert secret not in message
