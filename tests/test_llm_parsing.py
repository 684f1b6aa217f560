"""LLM teacher plumbing without a model: recorded raw answers through our parser (every dropped or
adjusted phrase counted), the shard reducer, sharding of a 100,000-character note, retries, token
usage, empty answers, per-note accounting and the PHI guard against a real loopback HTTP server
that replays recorded status codes and bodies."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin, Span

from clin_distill.corpora.notes import read_csv_column
from clin_distill.llm.endpoint import (
    ALLOW_REMOTE_ENV,
    LLMRequestError,
    RemoteEndpointRefused,
    openai_compatible,
)
from clin_distill.llm.label import label_docs, load_teacher, skip_reason, summarise
from clin_distill.llm.run import Options, label_sets, label_teachers
from clin_distill.llm.task import (
    ACCOUNTING_KEY,
    make_char_token_estimator,
    make_clinical_spans_task,
    parse_spans,
    reduce_shards,
)

ROOT = Path(__file__).resolve().parents[1]
LABELS_FILE = ROOT / "configs/teachers/llm/labels.yml"
TEXT = "She denies chest pain. History of asthma, on albuterol. Chest pain again, then asthma."


@pytest.fixture(scope="module")
def task():
    return make_clinical_spans_task(spans_key="t", labels_path=str(LABELS_FILE))


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


def test_expand_alignment_widens_to_whole_tokens_and_counts_it(task):
    doc = spacy.blank("en")("Recurrent fevers after aspirin-induced asthma.")
    spans, counts = parse_spans(
        task, doc, "1. fever | True | SYMPTOM | x\n2. aspirin | True | MEDICATION | x"
    )
    assert [s.text for s in spans] == ["fevers", "aspirin"]
    assert (counts["widened"], counts["widening_refused"]) == (1, 0)


def test_widening_into_another_word_is_refused_and_counted(task):
    """'e' would become 'Patient', 'tension' 'hypertension', 'a' 'abdominal'; a later exact
    occurrence is taken instead where there is one."""
    doc = spacy.blank("en")("Patient with hypertension and abdominal pain; tension headache.")
    answer = "\n".join([
        "1. e | True | SYMPTOM | x", "2. tension | True | DISEASE | x", "3. a | True | SYMPTOM | x",
        "4. pain | True | SYMPTOM | x",
    ])  # fmt: skip
    spans, counts = parse_spans(task, doc, answer)
    assert [(s.text, s.start_char) for s in spans] == [("pain", 40), ("tension", 46)]
    assert (counts["widening_refused"], counts["widened"]) == (2, 0)
    spans, counts = parse_spans(task, doc, "1. e | True | SYMPTOM | x")
    assert spans == [] and counts["widening_refused"] == 1 and counts["not_in_text"] == 0
    task.refuse_widening = False  # the config's opt-out: widened, still counted
    try:
        spans, counts = parse_spans(task, doc, "1. e | True | SYMPTOM | x")
    finally:
        task.refuse_widening = True
    assert [s.text for s in spans] == ["Patient"] and counts["widened"] == 1


def test_text_that_spacy_llm_drops_before_the_first_dot_is_counted(task, doc):
    answer = "1. pain | True | SYMPTOM | x\nDr. asthma | True | DISEASE | x\nasthma | True | DISEASE | x"
    spans, counts = parse_spans(task, doc, answer)
    assert [s.text for s in spans] == ["pain", "asthma", "asthma"]
    assert counts["prefix_dropped"] == 1


def test_reducer_keeps_exact_text_spans_and_sums_accounting(task, doc):
    shards = [doc[:5].as_doc(), doc[5:].as_doc()]  # cut between "pain" and "." (no space)
    answers = ["1. pain | True | SYMPTOM | x", "1. asthma | True | DISEASE | x"]
    for shard, answer, tokens in zip(shards, answers, [10, 20], strict=True):
        spans, _ = parse_spans(task, shard, answer)
        task.assign_spans(shard, spans)
        shard.user_data[ACCOUNTING_KEY] = {"requests": 1, "prompt_tokens": tokens}
    merged = reduce_shards(task, shards)
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
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
    # A failed request is an empty answer carrying its error: the other notes of the batch keep
    # their answers, and the failed one is recorded and asked again next run.
    [[bad_request], [broken]] = model([["prompt"], ["prompt"]])
    assert bad_request == "" and "HTTP 400" in bad_request.error and bad_request.tries == 1
    assert broken == "" and "not a chat completion" in broken.error
    assert len(Replay.seen) == 3


def test_unknown_model_is_refused_at_load(replay):
    Replay.answers = [MODELS]
    with pytest.raises(LLMRequestError, match="model not served"):
        openai_compatible("other", f"http://127.0.0.1:{replay}/v1/chat/completions", api_key_env="")


def test_remote_endpoint_refused_without_opt_in_and_checked_on_itself_with_it(replay, monkeypatch):
    """A hosted endpoint, reached here through a configured proxy on loopback (which receives the
    absolute URL): nothing is sent without the opt-in; with it the key goes to the endpoint's own
    model list, never to api.openai.com."""
    remote = "http://llm.invalid:8000/v1/chat/completions"
    proxy = f"http://127.0.0.1:{replay}"
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    with pytest.raises(RemoteEndpointRefused, match=ALLOW_REMOTE_ENV):
        openai_compatible("m", remote, api_key_env="TEST_LLM_KEY", proxy=proxy)
    assert Replay.seen == []  # nothing was sent, not even the model check
    monkeypatch.setenv(ALLOW_REMOTE_ENV, "1")
    Replay.answers = [MODELS]
    openai_compatible("m", remote, api_key_env="TEST_LLM_KEY", proxy=proxy)
    assert Replay.seen == [("GET", "http://llm.invalid:8000/v1/models", {"auth": "Bearer sk-test"})]


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
        "components.llm.task.examples.n": 0,
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


def teacher_overrides(port: int) -> dict:
    return {
        "components.llm.model.endpoint": f"http://127.0.0.1:{port}/v1/chat/completions",
        "components.llm.model.name": "m",
        "components.llm.model.interval": 0.01,
        "components.llm.task.examples.n": 0,
    }


@pytest.mark.parametrize(
    "usage",
    [None, {"prompt_tokens": None, "completion_tokens": 5}, {"completion_tokens": 5}, "n/a"],
    ids=["null", "null-field", "missing-field", "not-an-object"],
)
def test_missing_token_usage_counts_zero_and_is_counted(usage, replay, tmp_path, nlp):
    body = {"choices": [CHOICE]} | ({"usage": usage} if usage is not None else {"usage": None})
    Replay.answers = [MODELS, (200, body)]
    nlp_llm = load_teacher(
        ROOT / "configs/teachers/llm/smollm2.cfg", tmp_path, overrides=teacher_overrides(replay)
    )
    [(doc, record)] = label_docs(nlp_llm, [nlp(TEXT)])
    assert record["status"] == "ok" and record["usage_missing"] == 1 and record["prompt_tokens"] == 0
    assert [s.text for s in doc.spans["smollm2"]] == ["pain"]
    assert summarise([record])["usage_missing"] == 1


def test_prompt_above_context_length_is_counted(replay):
    Replay.answers = [MODELS, COMPLETION]  # the server counts 12 prompt tokens
    model = openai_compatible(
        "m", f"http://127.0.0.1:{replay}/v1/chat/completions", api_key_env="", context_length=10
    )
    [[answer]] = model([["prompt"]])
    assert answer.over_context and not answer.usage_missing


def test_empty_answer_is_counted_and_asked_again_next_run(replay, tmp_path, nlp):
    config = ROOT / "configs/teachers/llm/smollm2.cfg"
    empty = (200, {"choices": [{"message": {"content": "  \n"}, "finish_reason": "stop"}], "usage": {}})
    Replay.answers = [MODELS, empty]
    [(_, record)] = label_docs(
        load_teacher(config, tmp_path, overrides=teacher_overrides(replay)), [nlp(TEXT)]
    )
    assert (record["status"], record["empty_answers"], record["spans"]) == ("empty", 1, 0)
    assert summarise([record])["empty_notes"] == 1
    Replay.answers = [MODELS, COMPLETION]  # not cached as final: the next run asks again
    [(doc, record)] = label_docs(
        load_teacher(config, tmp_path, overrides=teacher_overrides(replay)), [nlp(TEXT)]
    )
    assert (record["status"], record["cached"], record["empty_answers"]) == ("ok", False, 0)
    # With cache_empty_answers the empty answer is final: a rerun sends nothing.
    keep = {**teacher_overrides(replay), "components.llm.cache.cache_empty_answers": True}
    Replay.answers = [MODELS, empty, MODELS]
    other = nlp("No complaints today.")
    list(label_docs(load_teacher(config, tmp_path, overrides=keep), [other.copy()]))
    [(_, record)] = label_docs(load_teacher(config, tmp_path, overrides=keep), [other.copy()])
    assert record["cached"] and record["status"] == "empty" and Replay.answers == []


def test_accounting_is_written_per_note_as_it_happens(replay, tmp_path, nlp):
    """A run that dies after the first note keeps that note's record."""
    Replay.answers = [MODELS, COMPLETION]
    teacher = load_teacher(
        ROOT / "configs/teachers/llm/smollm2.cfg", tmp_path, overrides=teacher_overrides(replay)
    )

    def notes():
        yield nlp(TEXT)
        raise KeyboardInterrupt

    accounting = tmp_path / "out" / "accounting.jsonl"
    with pytest.raises(KeyboardInterrupt):
        label_sets(teacher, "smollm2", {"dev": notes()}, accounting, echo=lambda line: None)
    [line] = accounting.read_text().splitlines()
    record = json.loads(line)
    assert (record["set"], record["status"], record["requests"]) == ("dev", "ok", 1)
    assert record["prompt_tokens"] == 12


def test_the_step_writes_labels_accounting_and_report_and_a_rerun_lists_each_note_once(
    replay, tmp_path, nlp, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the configs' paths are relative to the project root
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config_dir = tmp_path / "configs/teachers/llm"
    config_dir.mkdir(parents=True)
    (config_dir / "labels.yml").write_text(LABELS_FILE.read_text())
    local = (ROOT / "configs/teachers/llm/smollm2.cfg").read_text()
    local = local.replace("http://127.0.0.1:8765", f"http://127.0.0.1:{replay}").replace(
        'name = "smollm2"', 'name = "m"'
    )
    (config_dir / "smollm2.cfg").write_text(local)
    (config_dir / "gpt-4o.cfg").write_text((ROOT / "configs/teachers/llm/gpt-4o.cfg").read_text())
    corpus = tmp_path / "corpus"
    (corpus / "gold").mkdir(parents=True)
    (corpus / "unlabelled").mkdir()
    gold = [nlp("Chest pain since Monday."), nlp("No pain, on aspirin.")]
    gold[0].ents = [Span(gold[0], 1, 2, "SYMPTOM")]
    gold[1].ents = [Span(gold[1], 1, 2, "SYMPTOM"), Span(gold[1], 4, 5, "MEDICATION")]
    for name in ("maccrobat_dev", "maccrobat_train"):
        DocBin(docs=gold).to_disk(corpus / "gold" / f"{name}.spacy")
    notes = [nlp(t) for t in ("Back pain.", "Pain at night.", "Pain again, worse.")]
    DocBin(docs=notes).to_disk(corpus / "unlabelled" / "notes.spacy")
    report = tmp_path / "reports/llm_teachers.json"
    args = (
        config_dir,
        corpus,
        tmp_path / "out",
        tmp_path / "cache",
        report,
        ROOT / "configs/teachers/llm_prices.cfg",
    )
    settings = {"options": Options(sample=2), "echo": lambda line: None}

    Replay.answers = [MODELS] + [COMPLETION] * 4
    data = label_teachers(*args, **settings)
    assert Replay.answers == [] and json.loads(report.read_text()) == data
    assert report.with_suffix(".md").read_text().startswith("# LLM teachers")
    assert data["skipped"] == {"gpt-4o": "OPENAI_API_KEY is not set"} and data["dev_docs"] == "all"
    teacher = data["teachers"]["smollm2"]
    assert set(teacher) == {"words_per_second", "scores", "scored_docs", "accounting"}
    assert teacher["scores"]["maccrobat_dev"]["SYMPTOM"]["strict"]["r"] == 1.0 and teacher["scored_docs"] == 2
    acct = teacher["accounting"]
    assert (acct["notes"], acct["requests"], acct["prompt_tokens"], acct["failed"]) == (4, 4, 48, 0)
    assert acct["requests_served_this_run"] is None  # no local server started here
    assert data["cost_per_1k_notes_usd"]["gpt-4o"] > 0 and "cost_per_1k_notes_usd" in acct
    out = tmp_path / "out/smollm2"
    labelled = list(DocBin().from_disk(out / "unlabelled_sample.spacy").get_docs(nlp.vocab))
    assert len(labelled) == 2 and all(
        [s.text.lower() for s in d.spans["smollm2"]] == ["pain"] for d in labelled
    )
    first = [json.loads(line) for line in (out / "accounting.jsonl").read_text().splitlines()]
    assert [r["cached"] for r in first] == [False] * 4

    Replay.answers = [MODELS]  # the rerun: the model check only, every note from the cache
    again = label_teachers(*args, **settings)["teachers"]["smollm2"]["accounting"]
    rerun = [json.loads(line) for line in (out / "accounting.jsonl").read_text().splitlines()]
    assert [r["doc"] for r in rerun] == [r["doc"] for r in first] and all(r["cached"] for r in rerun)
    assert (again["served_from_cache"], again["requests"], again["prompt_tokens"]) == (4, 4, 48)
