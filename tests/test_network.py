"""No Hub call hangs: a server that accepts connections and never answers, and a failing name lookup.

Each network path runs in a fresh interpreter pointed (``HF_ENDPOINT``) at a local socket
that accepts and stays silent; it must fail within 30 s with the offline message. A model
in the Hugging Face cache still loads when the server is silent.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import unetzoo
from tests.conftest import REPO
from tests.hfcache import add_to_hf_cache

DEADLINE = 30.0


@pytest.fixture(scope="module")
def silent_server():
    """``http://127.0.0.1:PORT``: accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def run_with_endpoint(endpoint: str, code: str | None = None, argv: list[str] | None = None,
                      extra_env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:  # fmt: skip
    env = {**os.environ, "HF_ENDPOINT": endpoint, "PYTHONPATH": str(REPO), "UNETZOO_HUB_TIMEOUT": "2",
           "HF_HUB_CACHE": os.environ.get("TEST_HF_CACHE", "/nonexistent-unetzoo-cache"), **(extra_env or {})}  # fmt: skip
    env.pop("HF_HUB_OFFLINE", None)
    command = [sys.executable, "-c", textwrap.dedent(code)] if code else [sys.executable, "-m", "unetzoo", *argv]
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    return result, time.monotonic() - start


CALLS = {
    "from_pretrained": "unetzoo.from_pretrained('org/name')",
    "encoder_weights": "unetzoo.create_model('unet_resnet34', encoder_weights='imagenet')",
    "weight_tag": "unetzoo.create_model('unet', pretrained='unet.silent')",
}


@pytest.mark.parametrize("call", list(CALLS))
def test_hub_calls_fail_fast_on_a_silent_server(silent_server: str, tmp_path: Path, call: str) -> None:
    table = tmp_path / "table.json"
    table.write_text(json.dumps([{"tag": "unet.silent", "repo_id": "org/silent", "revision": "main",
                                  "sha256": "0" * 64}]))  # fmt: skip
    code = f"""
        import unetzoo
        try:
            {CALLS[call]}
        except Exception as exc:
            print("RAISED", type(exc).__name__, str(exc).splitlines()[0])
    """
    result, seconds = run_with_endpoint(silent_server, code, extra_env={"UNETZOO_WEIGHTS_TABLE": str(table)})
    assert seconds < DEADLINE, f"{call} took {seconds:.0f} s"
    assert "RAISED WeightsUnavailableError" in result.stdout, result.stdout + result.stderr
    assert "did not answer" in result.stdout


def test_download_command_fails_fast_in_one_line(silent_server: str) -> None:
    result, seconds = run_with_endpoint(silent_server, argv=["download", "org/name"])
    assert seconds < DEADLINE
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "did not answer" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_failing_name_lookup_is_bounded_too() -> None:
    code = """
        import unetzoo
        try:
            unetzoo.from_pretrained('org/name')
        except Exception as exc:
            print("RAISED", type(exc).__name__)
    """
    result, seconds = run_with_endpoint("http://unetzoo-no-such-host.invalid", code)
    assert seconds < DEADLINE and "RAISED WeightsUnavailableError" in result.stdout, result.stdout + result.stderr


def test_a_cached_model_still_loads_when_the_server_is_silent(silent_server: str, tmp_path: Path) -> None:
    model = unetzoo.create_model("unet", encoder_channels=[4, 8, 8, 16], bottleneck_channels=16,
                                 decoder_channels=[8, 8, 8, 4])  # fmt: skip
    unetzoo.save_pretrained(model, tmp_path / "saved")
    cache = tmp_path / "hf"
    add_to_hf_cache(cache, "org/cached", {n: tmp_path / "saved" / n for n in ("config.json", "model.safetensors")})
    code = """
        import unetzoo
        print("LOADED", type(unetzoo.from_pretrained('org/cached')).__name__)
    """
    result, seconds = run_with_endpoint(silent_server, code, extra_env={"TEST_HF_CACHE": str(cache),
                                                                        "HF_HUB_CACHE": str(cache)})  # fmt: skip
    assert "LOADED UNet" in result.stdout, result.stdout + result.stderr
    assert seconds < DEADLINE


def test_bad_settings_name_the_variable(monkeypatch) -> None:
    from unetzoo import network

    monkeypatch.setenv("UNETZOO_HUB_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="UNETZOO_HUB_TIMEOUT"):
        network.settings()
