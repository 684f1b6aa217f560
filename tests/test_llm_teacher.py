"""The spacy-llm path end to end with a real model: llama.cpp's server on 127.0.0.1 serving
SmolLM2-135M-Instruct, three real notes (one longer than the model's whole context), few-shot
examples from gold train documents, spacy-llm's cache, and the PHI guard, with every proxy
variable pointing at a listener that nothing may reach."""

from __future__ import annotations

import select
import socket
from pathlib import Path

import pytest
import spacy
import torch

from clin_distill.corpora.brat import brat_doc_ids, read_brat_dir
from clin_distill.corpora.build import write_docbin
from clin_distill.corpora.notes import read_csv_column
from clin_distill.corpora.split import hash_split
from clin_distill.corpora.stats import CorpusStats
from clin_distill.labels import LABELS
from clin_distill.llm.endpoint import ALLOW_REMOTE_ENV, RemoteEndpointRefused
from clin_distill.llm.label import label_docs, load_teacher, skip_reason, summarise
from clin_distill.llm.server import llama_server, served_requests, smollm2_gguf
from clin_distill.llm.task import fewshot_examples, read_labels

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/teachers/llm/smollm2.cfg"
ENDPOINT = "http://127.0.0.1:8766/v1/chat/completions"  # not the workflow's port
N_CTX = 2048  # as in project.yml (llm_n_ctx); smollm2.cfg shards prompts above 1,600 tokens
REASONS = {k: v["reason"] for k, v in read_labels(ROOT / "configs/teachers/llm/labels.yml")["labels"].items()}


@pytest.fixture(scope="module")
def gold_train(data_dir, tmp_path_factory) -> Path:
    """MACCROBAT train split as the corpus step writes it (few-shot examples come only from it)."""
    directory = data_dir / "maccrobat2020"
    ids = hash_split(brat_doc_ids(directory), {"train": 120, "dev": 30, "test": 50})["train"]
    path = tmp_path_factory.mktemp("gold") / "maccrobat_train.spacy"
    write_docbin(read_brat_dir(spacy.blank("en"), directory, ids, CorpusStats()), path)
    return path


@pytest.fixture(scope="module")
def notes(data_dir):
    nlp = spacy.blank("en")
    dialog = data_dir / "mts_dialog/MTS-Dialog-ValidationSet.csv"
    sections = [t for _, _, t in read_csv_column(dialog, "section_text", "ID") if len(t) > 200]
    samples = read_csv_column(data_dir / "mtsamples/mtsamples_alexis.csv", "transcription", None)
    # The first note longer than the whole context, before the prompt is even added.
    long = next(t for _, _, t in samples if len(t) / 3 > N_CTX)
    return [nlp(t) for t in (sections[0], sections[1], long)]


def test_fewshot_examples_are_gold_train_passages(gold_train):
    examples = fewshot_examples(gold_train, 2, 60, REASONS)
    assert len(examples) == 2
    for ex in examples:
        assert len(ex["text"].split()) <= 60 and ex["spans"]
        assert all(s["text"] in ex["text"] and s["label"] in LABELS for s in ex["spans"])
    assert fewshot_examples(gold_train, 2, 60, REASONS) == examples  # deterministic


@pytest.fixture()
def proxy_catcher(monkeypatch):
    """A listener on 127.0.0.2 that every proxy variable names; a connection to it stays queued."""
    listener = socket.create_server(("127.0.0.2", 0))
    proxy = f"http://127.0.0.2:{listener.getsockname()[1]}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(var, proxy)
        monkeypatch.setenv(var.lower(), proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield listener
    listener.close()


def proxy_requests(listener: socket.socket) -> list[str]:
    """The request lines queued at the proxy listener (e.g. "CONNECT host:443 HTTP/1.1"): the
    assertion's message says where a request tried to go, not only that one did."""
    lines = []
    while select.select([listener], [], [], 0)[0]:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(2)
            try:
                lines.append(conn.recv(300).split(b"\r\n", 1)[0].decode(errors="replace"))
            except OSError as error:
                lines.append(f"(no request line: {error})")
    return lines


def test_local_llm_teacher_labels_resumes_from_cache_and_guards_phi(
    notes, gold_train, tmp_path, monkeypatch, proxy_catcher
):
    log, cache = tmp_path / "server.log", tmp_path / "cache"
    overrides = {"paths.examples": str(gold_train), "components.llm.model.endpoint": ENDPOINT}
    # the tests' thread count: 1 while the workflow runs in the background (conftest.py)
    with llama_server(smollm2_gguf(), ENDPOINT, "smollm2", N_CTX, log, n_threads=torch.get_num_threads()):
        # A run interrupted after the first note...
        list(label_docs(load_teacher(CONFIG, cache, overrides=overrides), [notes[0].copy()]))
        served_first = served_requests(log)
        # ...resumes: a new pipeline on the same cache sends requests for the other two only.
        first = list(label_docs(load_teacher(CONFIG, cache, overrides=overrides), [d.copy() for d in notes]))
        served = served_requests(log)
        again = list(label_docs(load_teacher(CONFIG, cache, overrides=overrides), [d.copy() for d in notes]))
        assert served_requests(log) == served  # a rerun: zero new requests reached the server
    # The server's readiness check, the model check and every note went straight to 127.0.0.1.
    assert proxy_requests(proxy_catcher) == []

    records = [r for _, r in first]
    assert [r["cached"] for r in records] == [True, False, False]
    assert served - served_first == records[1]["requests"] + records[2]["requests"]
    assert all(r["status"] in ("ok", "malformed") for r in records)
    assert served == sum(r["requests"] for r in records) >= 4  # every request counted on both sides
    assert records[2]["shards"] > 1 and records[0]["shards"] == 1  # the long note was sharded
    for (doc, rec), note in zip(first, notes, strict=True):
        assert doc.text == note.text and "smollm2" in doc.spans
        assert rec["prompt_tokens"] > 0 and rec["completion_tokens"] > 0 and rec["latency_s"] > 0
    # Answers were parsed: every listed entity is either a span or counted as dropped.
    dropped = ("not_in_text", "misaligned", "unknown_label", "widening_refused")
    parsed = sum(r["spans"] + sum(r[k] for k in dropped) for r in records)
    assert parsed + sum(r["malformed_lines"] for r in records) > 0
    assert all(r["cached"] for _, r in again)
    assert [[(s.start, s.end, s.label_) for s in d.spans["smollm2"]] for d, _ in again] == [
        [(s.start, s.end, s.label_) for s in d.spans["smollm2"]] for d, _ in first
    ]
    summary = summarise(records, {"usd_per_hour": 0.085})
    assert summary["requests"] == served and summary["served_from_cache"] == 1
    assert summary["cost_per_1k_notes_usd"] > 0

    # A hosted teacher is refused before any request unless the user opts in.
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    hosted = ROOT / "configs/teachers/llm/gpt-4o.cfg"
    assert "not allowed" in skip_reason(hosted, allow_remote=False)
    with pytest.raises(RemoteEndpointRefused):
        load_teacher(hosted, tmp_path / "hosted", overrides={"paths.examples": str(gold_train)})


def test_bounded_concurrency_against_the_real_server(notes, gold_train, tmp_path, monkeypatch):
    """`max_concurrency` requests in flight at once, answers back to their own notes, a failed
    request recorded and never cached, a cached rerun sending nothing. llama-cpp-python's server
    answers one request at a time (one lock, no slots), so this proves the client side only; a
    server with slots (llama.cpp's `llama-server -np N`, vLLM, hosted APIs) also runs them at once."""
    import threading

    from clin_distill.llm import endpoint

    in_flight, peak, lock = 0, 0, threading.Lock()
    real_request = endpoint.request

    def counted(*args, **kwargs):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return real_request(*args, **kwargs)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(endpoint, "request", counted)
    log = tmp_path / "server.log"
    # Short answers: this test is about requests in flight, not about what they say (parsing is
    # the test above's), and generation is most of each request's time.
    short = {"temperature": 0.0, "max_tokens": 24, "seed": 0}
    base = {"paths.examples": str(gold_train), "components.llm.model.endpoint": ENDPOINT,
            "components.llm.model.config": short}  # fmt: skip
    # Nothing listens on port 9: every request fails at once, each note is recorded as failed.
    down = {**base, "components.llm.model.endpoint": "http://127.0.0.1:9/v1/chat/completions",
            "components.llm.model.verify_url": "", "components.llm.model.max_tries": 1,
            "components.llm.model.max_concurrency": 3}  # fmt: skip

    def run(cache: str, overrides: dict, docs: list) -> list[dict]:
        nlp = load_teacher(CONFIG, tmp_path / cache, overrides=overrides)
        return [r for _, r in label_docs(nlp, [d.copy() for d in docs], batch_size=8)]

    failed = run("cache", down, notes[:1])
    assert failed[0]["status"] == "failed" and "cannot reach 127.0.0.1:9" in failed[0]["error"]
    peak = 0
    with llama_server(smollm2_gguf(), ENDPOINT, "smollm2", N_CTX, log, n_threads=torch.get_num_threads()):
        conc = {**base, "components.llm.model.max_concurrency": 3}
        seq = {**base, "components.llm.model.max_concurrency": 1}
        # The same cache folder as the failed run: the failed note was not cached, it is asked now.
        first = run("cache", conc, notes)
        assert peak == 3  # 1 + 1 + the long note's shards: more prompts than the bound
        served = served_requests(log)
        peak = 0
        one = run("seq", seq, notes)
        assert peak == 1
        again = run("cache", conc, notes)
        assert served_requests(log) == served + sum(r["requests"] for r in one)  # the rerun sent nothing
    assert all(r["status"] != "failed" for r in first + one)
    assert not any(r["cached"] for r in first) and all(r["cached"] for r in again)
    assert served == sum(r["requests"] for r in first)
    # Each answer went back to its own note: the prompts' token counts match the one-at-a-time run.
    assert [r["prompt_tokens"] for r in first] == [r["prompt_tokens"] for r in one]
    assert [r["shards"] for r in first] == [r["shards"] for r in one]
