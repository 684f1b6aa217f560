"""Attacks on the LLM path, run against real HTTP servers on loopback only: an OpenAI-compatible
"LLM" on 127.0.0.1 and a catcher on 127.0.0.2 that records whatever reaches it. A note (patient
data) or a key must never reach the catcher: not through a redirect, not through a proxy named in
the environment, not through a model-check URL on another host; a server that trickles its answer
must not hold a request past `max_request_time`. Then the cache: one entry per exact note text, a
lost or broken cache file re-requests exactly its note, and nothing in it is readable by others."""

from __future__ import annotations

import json
import logging
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin, Span

from clin_distill.llm.endpoint import openai_compatible
from clin_distill.llm.label import label_docs, load_teacher
from clin_distill.llm.transport import ALLOW_REMOTE_ENV, LLMRequestError, RemoteEndpointRefused

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/teachers/llm/smollm2.cfg"
NOTE = "Jane Roe, MRN 4471, denies chest pain; history of asthma, on albuterol."
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class Handler(BaseHTTPRequestHandler):
    """Records every request on its server, then lets the server's `respond` answer it."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        self.server.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        try:
            self.server.respond(self, body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: what the deadline does
            pass

    do_GET = do_POST = do_CONNECT = _handle

    def log_message(self, *args) -> None:
        pass


def send_json(handler: BaseHTTPRequestHandler, payload: dict, status: int = 200, **headers: str) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    for name, value in {"Content-Type": "application/json", **headers}.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def completion(content: str) -> dict:
    return {
        "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }


def chat(handler: BaseHTTPRequestHandler, body: str) -> None:
    """A well-behaved OpenAI-compatible server: lists model "m"; answers the first of a few
    clinical words found in the prompt's note (the text after its last "Paragraph: ")."""
    if handler.command == "GET":
        return send_json(handler, {"data": [{"id": "m"}]})
    if handler.command != "POST":
        return send_json(handler, {}, status=502)
    prompt = json.loads(body)["messages"][0]["content"]
    note = prompt.rsplit("Paragraph: ", 1)[-1].lower()
    found = sorted((note.find(w), w) for w in ("fever", "cough", "asthma", "pain") if w in note)
    send_json(
        handler, completion("\n".join(f"{i}. {w} | True | SYMPTOM | x" for i, (_, w) in enumerate(found, 1)))
    )


@contextmanager
def serve(host: str, respond: Callable[[BaseHTTPRequestHandler, str], None]) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer((host, 0), Handler)
    server.seen, server.respond = [], respond
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url(server: ThreadingHTTPServer, path: str = "/v1/chat/completions", scheme: str = "http") -> str:
    host, port = server.server_address[:2]
    return f"{scheme}://{host}:{port}{path}"


@pytest.fixture()
def catcher() -> Iterator[ThreadingHTTPServer]:
    """What an attacker runs on the other loopback address: answers like an LLM, so that a request
    sent to it would succeed; every test asserts that it saw nothing."""
    with serve("127.0.0.2", chat) as server:
        yield server


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)


def model(endpoint: str, **settings):
    return openai_compatible("m", endpoint, api_key_env="", max_tries=1, interval=0.01, **settings)


def failure(llm, prompt: str) -> str:
    """The error of a chat request that failed: an empty answer carrying it (the note is then
    recorded as failed and not cached)."""
    [[answer]] = llm([[prompt]])
    assert answer == "" and answer.error
    return answer.error


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_of_the_chat_request_is_a_failed_request_not_followed(status, catcher):
    def redirecting(handler, body):
        if handler.command == "GET":
            return chat(handler, body)
        send_json(handler, {}, status=status, Location=url(catcher))

    with serve("127.0.0.1", redirecting) as llm:
        error = failure(model(url(llm)), f"Paragraph: {NOTE}\nAnswer:")
    assert re.search(f"HTTP {status}.*redirect", error)
    assert catcher.seen == []
    assert "asthma" not in error and "Roe" not in error


def test_redirect_of_the_model_check_does_not_carry_the_key(catcher, monkeypatch):
    """requests drops `Authorization` on a cross-host redirect but keeps Azure's `api-key`."""
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret")

    def redirecting(handler, body):
        send_json(handler, {}, status=302, Location=url(catcher, "/v1/models"))

    with serve("127.0.0.1", redirecting) as llm:
        with pytest.raises(LLMRequestError, match="HTTP 302.*redirect"):
            openai_compatible("m", url(llm), api_key_env="TEST_LLM_KEY", auth_header="api-key", max_tries=1)
    assert catcher.seen == []


@pytest.mark.parametrize("status", [302, 500])
def test_failure_messages_never_repeat_the_servers_words(status):
    """A server may echo the note in its reason phrase or its Location; messages go to logs and
    accounting.jsonl, so they name the status code and host only."""
    echo = "Jane-Roe-asthma"

    def echoing(handler, body):
        if handler.command == "GET":
            return chat(handler, body)
        handler.send_response(status, message=f"{echo} {NOTE}")
        handler.send_header("Location", f"http://{echo}.example/{echo}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with serve("127.0.0.1", echoing) as llm:
        error = failure(model(url(llm)), f"Paragraph: {NOTE}\nAnswer:")
    assert f"HTTP {status}" in error
    assert "Roe" not in error and "asthma" not in error


@pytest.mark.parametrize("var", ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"])
def test_proxy_variables_in_the_environment_are_ignored(var, catcher, monkeypatch):
    monkeypatch.setenv(var, url(catcher, ""))
    with serve("127.0.0.1", chat) as llm:
        if var == "HTTPS_PROXY":
            # Only https URLs use it; the loopback server speaks plain HTTP, so a direct TLS
            # connection fails, while one through the proxy would have reached the catcher.
            with pytest.raises(LLMRequestError, match="cannot reach"):
                model(url(llm, scheme="https"))
        else:
            [[answer]] = model(url(llm))([[f"Paragraph: {NOTE}\nAnswer:"]])
            assert "asthma" in answer
            assert [r["method"] for r in llm.seen] == ["GET", "POST"]
    assert catcher.seen == []


def test_a_configured_proxy_needs_the_remote_opt_in(catcher, monkeypatch):
    with serve("127.0.0.1", chat) as llm:
        with pytest.raises(RemoteEndpointRefused, match="proxy"):
            model(url(llm), proxy=url(catcher, ""))
        assert catcher.seen == [] and llm.seen == []
        monkeypatch.setenv(ALLOW_REMOTE_ENV, "1")
        model(url(llm), proxy=url(catcher, ""))
    # With the opt-in the configured proxy is used, and only it: the model check went through it.
    assert [(r["method"], r["path"]) for r in catcher.seen] == [("GET", url(llm, "/v1/models"))]
    assert llm.seen == []


def trickle(phase: str) -> Callable[[BaseHTTPRequestHandler, str], None]:
    """Answers the chat request one byte per 0.1 s: in the headers or in the body."""

    def respond(handler, body):
        if handler.command == "GET":
            return chat(handler, body)
        data = json.dumps(completion("1. asthma | True | DISEASE | x")).encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.flush_headers()
        slow = b"X-Padding: " + b"x" * 40 + b"\r\n\r\n" if phase == "headers" else b"\r\n"
        for chunk in [slow[i : i + 1] for i in range(len(slow))] + ([data] if phase == "headers" else []):
            handler.wfile.write(chunk)
            handler.wfile.flush()
            time.sleep(0.1)
        for i in range(len(data) if phase == "body" else 0):
            handler.wfile.write(data[i : i + 1])
            handler.wfile.flush()
            time.sleep(0.1)

    return respond


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_trickling_answer_is_cut_at_max_request_time(phase):
    with serve("127.0.0.1", trickle(phase)) as llm:
        slow = model(url(llm), max_request_time=1.0)
        start = time.monotonic()
        error = failure(slow, f"Paragraph: {NOTE}\nAnswer:")
        elapsed = time.monotonic() - start
    assert "max_request_time" in error
    assert elapsed < 2.0, f"{elapsed:.1f} s against a 1 s deadline"
    assert "asthma" not in error


def test_model_check_url_on_another_host_is_refused(catcher, monkeypatch):
    """The key goes to the endpoint's own host only, and every URL passes the PHI guard."""
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret")
    with serve("127.0.0.1", chat) as llm:
        with pytest.raises(RemoteEndpointRefused, match="verify_url"):
            openai_compatible(
                "m", url(llm), api_key_env="TEST_LLM_KEY", verify_url=url(catcher, "/v1/models")
            )
        assert llm.seen == []
    assert catcher.seen == []


@pytest.fixture()
def examples(tmp_path, nlp) -> Path:
    """A one-document gold DocBin for the few-shot examples."""
    doc = nlp("She takes aspirin for asthma.")
    doc.ents = [Span(doc, 2, 3, "MEDICATION"), Span(doc, 4, 5, "DISEASE")]
    path = tmp_path / "gold.spacy"
    DocBin(docs=[doc]).to_disk(path)
    return path


def teacher(llm: ThreadingHTTPServer, cache: Path, examples: Path):
    overrides = {
        "components.llm.model.endpoint": url(llm),
        "components.llm.model.name": "m",
        "components.llm.model.interval": 0.01,
        "paths.examples": str(examples),
    }
    return load_teacher(CONFIG, cache, overrides=overrides)


def posts(server: ThreadingHTTPServer) -> int:
    return sum(r["method"] == "POST" for r in server.seen)


def cache_file(cache: Path, text: str) -> Path:
    """The cache file that holds the note `text` (found by reading them, not by our key)."""
    vocab = spacy.blank("en").vocab
    [found] = [
        p for p in cache.rglob("*.spacy") if [d.text for d in DocBin().from_disk(p).get_docs(vocab)] == [text]
    ]
    return found


def test_notes_with_the_same_tokens_in_another_order_get_their_own_answers(tmp_path, examples, nlp):
    texts = ["No fever. No cough.", "No cough. No fever.", "No fever. No cough. "]
    with serve("127.0.0.1", chat) as llm:
        out = list(label_docs(teacher(llm, tmp_path / "cache", examples), [nlp(t) for t in texts]))
        assert posts(llm) == 3
    firsts = [[s.text for s in doc.spans["smollm2"]] for doc, _ in out]
    assert firsts == [["fever", "cough"], ["cough", "fever"], ["fever", "cough"]]
    assert [r["cached"] for _, r in out] == [False, False, False]
    assert [doc.text for doc, _ in out] == texts


@pytest.mark.parametrize("damage", ["deleted", "truncated", "emptied"])
def test_a_lost_cache_file_re_requests_exactly_its_note(damage, tmp_path, examples, nlp, caplog):
    texts = ["Fever since Monday.", "Cough at night, no fever.", "History of asthma."]
    cache = tmp_path / "cache"
    with serve("127.0.0.1", chat) as llm:
        first = list(label_docs(teacher(llm, cache, examples), [nlp(t) for t in texts]))
        assert posts(llm) == 3
        lost = cache_file(cache, texts[1])
        if damage == "deleted":
            lost.unlink()
        else:
            lost.write_bytes(lost.read_bytes()[: 10 if damage == "truncated" else 0])
        with caplog.at_level(logging.WARNING):
            again = list(label_docs(teacher(llm, cache, examples), [nlp(t) for t in texts]))
        assert posts(llm) == 4  # exactly one more request: the lost note
    assert [r["cached"] for _, r in again] == [True, False, True]
    assert [r["status"] for _, r in again] == ["ok"] * 3
    assert [[s.text for s in d.spans["smollm2"]] for d, _ in again] == [
        [s.text for s in d.spans["smollm2"]] for d, _ in first
    ]
    assert str(lost) in caplog.text
    assert not any(w in caplog.text for w in ("Cough", "asthma", "Monday"))


def test_a_broken_cache_index_is_reported_and_its_lost_entries_re_requested(tmp_path, examples, nlp, caplog):
    texts = ["Fever since Monday.", "Cough at night, no fever.", "History of asthma."]
    cache = tmp_path / "cache"
    with serve("127.0.0.1", chat) as llm:
        list(label_docs(teacher(llm, cache, examples), [nlp(t) for t in texts]))
        [index] = cache.rglob("index.jsonl")
        lines = index.read_text().splitlines(keepends=True)
        assert len(lines) == 3
        index.write_text(lines[0] + "{not json\n" + lines[2][: len(lines[2]) // 2])  # crash mid-write
        with caplog.at_level(logging.WARNING):
            again = list(label_docs(teacher(llm, cache, examples), [nlp(t) for t in texts]))
        assert posts(llm) == 3 + 2
        assert [r["cached"] for _, r in again] == [True, False, False]
        # The index was repaired: a third run sends nothing.
        third = list(label_docs(teacher(llm, cache, examples), [nlp(t) for t in texts]))
        assert posts(llm) == 5 and all(r["cached"] for _, r in third)
    assert str(index) in caplog.text


def test_cache_is_readable_by_its_owner_only(tmp_path, examples, nlp):
    cache = tmp_path / "cache"
    with serve("127.0.0.1", chat) as llm:
        list(label_docs(teacher(llm, cache, examples), [nlp(NOTE)]))
    paths = list(cache.rglob("*"))
    folders = [p for p in paths if p.is_dir()]
    files = [p for p in paths if p.is_file()]
    assert folders and len(files) >= 2  # the note's file and the index at least
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
