"""Bounded access to the Hugging Face Hub: no call waits on a server that does not answer.

Before unetzoo lets huggingface_hub or timm touch the network, :func:`check_hub` asks the Hub
endpoint (``HF_ENDPOINT``, default ``https://huggingface.co``) for any HTTP answer, each
attempt within a deadline that covers the name lookup, the connection and the first bytes.
A server that accepts connections and never answers, a failing DNS or a dropped network
then fails within ``UNETZOO_HUB_TIMEOUT × (1 + UNETZOO_HUB_RETRIES)`` seconds (20 by default)
instead of the minutes of the libraries' own retries. Settings, as environment variables:

- ``UNETZOO_HUB_TIMEOUT``: seconds one attempt may take (default 10);
- ``UNETZOO_HUB_RETRIES``: attempts after the first (default 1);
- ``HF_HUB_OFFLINE=1``: no network at all, the Hugging Face cache only (no check is made).

A Hub that answered once is not asked again in the same process.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

TIMEOUT_ENV = "UNETZOO_HUB_TIMEOUT"
RETRIES_ENV = "UNETZOO_HUB_RETRIES"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 1

_answered: set[str] = set()


class HubUnreachableError(OSError):
    """The Hub endpoint gave no answer within the deadline."""


def hub_endpoint() -> str:
    """The Hub's base URL as huggingface_hub uses it."""
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT).rstrip("/")
    except ImportError:  # pragma: no cover - the hub extra is missing
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for the cache only."""
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover
        return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def settings() -> tuple[float, int]:
    """``(timeout seconds, retries)`` from the environment; a bad value is a ``ValueError`` naming it."""
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
        retries = int(os.environ.get(RETRIES_ENV, DEFAULT_RETRIES))
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds and {RETRIES_ENV} a whole number") from None
    if timeout <= 0 or retries < 0:
        raise ValueError(f"{TIMEOUT_ENV} must be > 0 and {RETRIES_ENV} >= 0")
    return timeout, retries


def check_hub(endpoint: str | None = None) -> None:
    """Return once the Hub has answered (any HTTP status), or raise :class:`HubUnreachableError`
    after the attempts; does nothing offline (``HF_HUB_OFFLINE=1``)."""
    if hub_offline():
        return
    url = endpoint or hub_endpoint()
    if url in _answered:
        return
    timeout, retries = settings()
    reason = ""
    for _ in range(1 + retries):
        reason = _ask(url, timeout)
        if not reason:
            _answered.add(url)
            return
    raise HubUnreachableError(
        f"the Hugging Face Hub ({url}) did not answer: {reason} "
        f"({1 + retries} attempt(s) of {timeout:g} s; {TIMEOUT_ENV}, {RETRIES_ENV})"
    )


def _ask(url: str, timeout: float) -> str:
    """``""`` when ``url`` answers within ``timeout`` seconds, else why not.

    The request runs in a daemon thread so that the deadline also bounds the name lookup,
    which socket timeouts do not cover.
    """
    outcome: list[str] = []

    def request() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                pass
            outcome.append("")
        except urllib.error.HTTPError:  # an HTTP status is an answer
            outcome.append("")
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=request, daemon=True, name="unetzoo-hub-check")
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or not outcome:
        return f"no answer within {timeout:g} s"
    return outcome[0]
