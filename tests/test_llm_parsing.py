"""LLM teacher plumbing without a model: recorded raw answers through our parser, the shard
reducer, sharding of a 100,000-character note, retries and the PHI guard against real local
HTTP servers that replay recorded status codes and bodies."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import spacy

from clin_distill.corpora.notes import read_csv_column
from clin_distill.llm.endpoint import (
    ALLOW_REMOTE_ENV,
    LLMRequestError,
    RemoteEndpointRefused,
    openai_compatible,
)
from clin_distill.llm.label import label_docs, load_teacher, skip_reason
from clin_distill.llm.task import (
    ACCOUNTING_KEY,
    make_char_token_estimator,
    make_clinical_spans_task,
    make_shard_reducer,
    parse_spans,
)

ROOT = Path(__file__).resolve().parents[1]
TEXT = "She denies chest pain. History of asthma, on albuterol. Chest pain again, then asthma."


@pytest.fixture(scope="module")
def task():
    return make_clinical_spans_task(spans_key="t", n_examples=0)


@pytest.fixture()
def doc():
    return spacy.blank("en")(TEXT)


def test_well_formed_answer(task, doc):
    answer = "\n".join([
        "1. pain | True | SYMPTOM | a symptom", "2. asthma | True | DISEASE | a disease",
        "3. albuterol | True | MEDICATION | drug",
    ])  # fmt: skip
    spans, counts = parse_spans(task, doc, answer)
    assert [(s.text, s.label_, s.start_char) for s in spans] == [
        ("pain", "SYMPTOM", 17), ("asthma", "DISEASE", 34), ("albuterol", "MEDICATION", 45)
    ]  # fmt: skip
    assert sum(counts.values()) == 0


def test_repeated_phrase_takes_next_occurrence_and_overlaps_are_counted(task, doc):
    answer = "\n".join([
        "1. chest pain | True | SYMPTOM | x", "2. pain | True | SYMPTOM | x",
        "3. asthma | True | DISEASE | x", "4. asthma | True | DISEASE | x",
    ])  # fmt: skip
    spans, counts = parse_spans(task, doc, answer)
    assert [(s.text, s.start_char) for s in spans] == [
        ("chest pain", 11),
        ("pain", 17),
        ("asthma", 34),
        ("asthma", 79),
    ]
    assert counts["overlapping"] == 1


def test_malformed_hallucinated_and_unknown_label_are_counted_not_kept(task, doc):
    answer = "\n".join([
        "Sure! Here are the entities:", "1. metformin | True | MEDICATION | not in the note",
        "2. asthma | True | ALLERGY | no such label", "3. denies | False | ==NONE== | a verb",
        "4. albuterol | True | MEDICATION", "5. asthma | True | disease | lower-case label",
    ])  # fmt: skip
    spans, counts = parse_spans(task, doc, answer)
    assert [(s.text, s.label_) for s in spans] == [("asthma", "DISEASE")]
    assert (counts["malformed_lines"], counts["not_in_text"], counts["unknown_label"]) == (2, 1, 1)


def test_expand_alignment_widens_to_whole_tokens(task):
    doc = spacy.blank("en")("Recurrent fevers after aspirin-induced asthma.")
    spans, _ = parse_spans(task, doc, "1. fever | True | SYMPTOM | x\n2. aspirin | True | MEDICATION | x")
    assert [s.text for s in spans] == ["fevers", "aspirin"]


def test_reducer_keeps_exact_text_spans_and_sums_accounting(task, doc):
    shards = [doc[:5].as_doc(), doc[5:].as_doc()]  # cut between "pain" and "." (no space)
    answers = ["1. pain | True | SYMPTOM | x", "1. asthma | True | DISEASE | x"]
    for shard, answer, tokens in zip(shards, answers, [10, 20], strict=True):
        spans, _ = parse_spans(task, shard, answer)
        task.assign_spans(shard, spans)
        shard.user_data[ACCOUNTING_KEY] = {"requests": 1, "prompt_tokens": tokens}
    merged = make_shard_reducer()(task, shards)
    assert merged.text == doc.text
    assert [(s.text, s.start) for s in merged.spans["t"]] == [("pain", 3), ("asthma", 7)]
    assert merged.user_data[ACCOUNTING_KEY]["prompt_tokens"] == 30
    assert merged.user_data[ACCOUNTING_KEY]["shards"] == 2


def test_a_100k_character_note_is_sharded_not_truncated(task, nlp, data_dir):
    text = ""
    for _, _, note in read_csv_column(data_dir / "mtsamples/mtsamples_alexis.csv", "transcription", None):
        if len(text) >= 100_000:
            break
        text += note + "\n\n"
    doc = nlp(text)
    context_length = 1600
    [(prompts, shards)] = list(task.generate_prompts([doc], context_length))
    shards = list(shards)
    assert len(doc.text) >= 100_000 and len(shards) > 50
    assert "".join(s.text for s in shards) == doc.text  # every character sent once, in order
    estimate = make_char_token_estimator(3.0)  # the task's estimator
    assert all(estimate(p) * 1.1 <= context_length for p in prompts)


class Replay(BaseHTTPRequestHandler):
    """Answers each request with the next recorded (status, body); remembers what it was asked."""

    answers: list[tuple[int, dict]] = []
    seen: list[tuple[str, str, dict]] = []

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        type(self).seen.append((self.command, self.path, {"auth": self.headers.get("Authorization"), **body}))
        status, payload = type(self).answers.pop(0)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _reply

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def replay():
    server = ThreadingHTTPServer(("0.0.0.0", 0), Replay)
    Replay.answers, Replay.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


MODELS = (200, {"data": [{"id": "m"}]})
CHOICE = {"message": {"content": "1. pain | True | SYMPTOM | x"}, "finish_reason": "stop"}
COMPLETION = (200, {"choices": [CHOICE], "usage": {"prompt_tokens": 12, "completion_tokens": 5}})


def test_429_and_5xx_are_retried_with_backoff_then_answered(replay):
    Replay.answers = [MODELS, (429, {}), (503, {}), (500, {}), COMPLETION]
    model = openai_compatible(
        "m", f"http://127.0.0.1:{replay}/v1/chat/completions", api_key_env="", interval=0.01
    )
    [[answer]] = model([["prompt"]])
    assert answer == "1. pain | True | SYMPTOM | x"
    assert (answer.tries, answer.usage) == (4, {"prompt_tokens": 12, "completion_tokens": 5})
    assert [p for _, p, _ in Replay.seen] == ["/v1/models"] + ["/v1/chat/completions"] * 4


def test_client_errors_and_broken_bodies_fail_without_retry(replay):
    Replay.answers = [MODELS, (400, {"error": {"message": "bad"}}), (200, {"unexpected": True})]
    model = openai_compatible(
        "m", f"http://127.0.0.1:{replay}/v1/chat/completions", api_key_env="", interval=0.01
    )
    with pytest.raises(LLMRequestError, match="HTTP 400"):
        model([["prompt"]])
    with pytest.raises(LLMRequestError, match="not a chat completion"):
        model([["prompt"]])
    assert len(Replay.seen) == 3


def test_unknown_model_is_refused_at_load(replay):
    Replay.answers = [MODELS]
    with pytest.raises(LLMRequestError, match="model not served"):
        openai_compatible("other", f"http://127.0.0.1:{replay}/v1/chat/completions", api_key_env="")


def test_remote_endpoint_refused_without_opt_in_and_checked_on_itself_with_it(replay, monkeypatch):
    remote = f"http://{socket.gethostname()}:{replay}/v1/chat/completions"  # a name, not loopback
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    with pytest.raises(RemoteEndpointRefused, match=ALLOW_REMOTE_ENV):
        openai_compatible("m", remote, api_key_env="TEST_LLM_KEY")
    assert Replay.seen == []  # nothing was sent, not even the model check
    monkeypatch.setenv(ALLOW_REMOTE_ENV, "1")
    Replay.answers = [MODELS]
    openai_compatible("m", remote, api_key_env="TEST_LLM_KEY")
    # The key went to the configured endpoint's own model list, never to api.openai.com.
    assert Replay.seen == [("GET", "/v1/models", {"auth": "Bearer sk-test"})]


def test_hosted_teacher_configs_are_skipped_or_refused_without_key_and_opt_in(monkeypatch, tmp_path):
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = ROOT / "configs/teachers/llm/gpt-4o.cfg"
    assert skip_reason(config, allow_remote=False) == "OPENAI_API_KEY is not set"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert "not allowed" in skip_reason(config, allow_remote=False)
    with pytest.raises(Exception, match="not loopback"):
        load_teacher(config, tmp_path)
    assert skip_reason(ROOT / "configs/teachers/llm/smollm2.cfg", allow_remote=False) is None


def test_failed_note_is_recorded_without_text_and_retried_next_run(replay, tmp_path, nlp):
    config = ROOT / "configs/teachers/llm/smollm2.cfg"
    overrides = {
        "components.llm.model.endpoint": f"http://127.0.0.1:{replay}/v1/chat/completions",
        "components.llm.model.name": "m",
        "components.llm.model.interval": 0.01,
        "components.llm.task.n_examples": 0,
    }
    note = nlp(TEXT)
    Replay.answers = [MODELS, (500, {}), (500, {}), (500, {})]  # max_tries = 3 in smollm2.cfg
    [(doc, record)] = label_docs(load_teacher(config, tmp_path, overrides=overrides), [note.copy()])
    assert record["status"] == "failed" and "HTTP 500" in record["error"] and "asthma" not in record["error"]
    assert "smollm2" not in doc.spans and doc.text == TEXT
    Replay.answers = [MODELS, COMPLETION]  # the next run asks again: failures are not cached
    [(doc, record)] = label_docs(load_teacher(config, tmp_path, overrides=overrides), [note.copy()])
    assert record["status"] == "ok" and not record["cached"]
    assert [(s.text, s.label_) for s in doc.spans["smollm2"]] == [("pain", "SYMPTOM")]
