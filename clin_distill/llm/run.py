"""The `label-llm` step: every LLM teacher config labels the gold dev set (scored) and a sample of
unlabelled notes; DocBins, accounting and the report (reports/llm_teachers.{json,md}).

`corpus/llm/<teacher>/accounting.jsonl` holds one record per note of the latest run, appended and
flushed as each note is labelled (a crash keeps the records of the notes done; the next run starts
the file again). A note served from the cache has `"cached": true` and the requests, tokens and
latency of the run that asked the LLM, stored with its answer: the sums are what these labels cost,
and a rerun lists each note once, not once per run. A note whose request failed or that got an
empty answer is not cached: the next run asks again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confection import Config
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..corpora.notes import hash_sample
from ..labels import GOLD_LABELS
from ..reports import write_report
from ..scoring import score
from .label import cost_per_1k, label_docs, load_teacher, model_settings, skip_reason, summarise
from .server import llama_server, served_requests, smollm2_gguf


@dataclass(frozen=True)
class Options:
    """The step's settings, as project.yml passes them."""

    sample: int = 5  # unlabelled notes per teacher
    dev_docs: int = 0  # gold dev documents labelled and scored (0: all)
    dev_set: str = "maccrobat_dev"
    local_server: frozenset[str] = field(default_factory=frozenset)  # teachers whose server we start
    n_ctx: int = 2048  # the local server's context, in tokens
    allow_remote: bool = False


def read_inputs(nlp: Language, corpus_dir: Path, dev_set: str, dev_docs: int, sample: int) -> dict[str, Any]:
    """The gold dev documents (`dev_docs`, 0: all) and `sample` unlabelled notes, by hash of text."""
    unlabelled = (
        d
        for p in sorted((corpus_dir / "unlabelled").glob("*.spacy"))
        for d in DocBin().from_disk(p).get_docs(nlp.vocab)
    )
    gold = DocBin().from_disk(corpus_dir / "gold" / f"{dev_set}.spacy").get_docs(nlp.vocab)
    return {
        dev_set: hash_sample(gold, dev_docs or None),
        "unlabelled_sample": hash_sample(unlabelled, sample),
    }


def label_sets(
    nlp: Language, name: str, inputs: dict[str, Iterable[Doc]], accounting: Path, echo: Callable[[str], None]
) -> tuple[list[dict[str, Any]], dict[str, list[Doc]]]:
    """Label every set; each note's record is appended to `accounting` as soon as it is done."""
    records: list[dict[str, Any]] = []
    labelled: dict[str, list[Doc]] = {}
    accounting.parent.mkdir(parents=True, exist_ok=True)
    with accounting.open("w") as out:
        for set_name, docs in inputs.items():
            labelled[set_name] = []
            for doc, rec in label_docs(nlp, docs):
                rec["set"] = set_name
                out.write(json.dumps(rec) + "\n")
                out.flush()
                records.append(rec)
                labelled[set_name].append(doc)
                cached = " (cache)" if rec.get("cached") else ""
                echo(f"{name} {set_name} doc {rec['doc']}: {rec['status']}{cached}")
    return records, labelled


def label_teacher(
    config_path: Path,
    corpus_dir: Path,
    out_dir: Path,
    cache_dir: Path,
    prices: dict[str, Any],
    options: Options,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """One teacher: its local server if it is one of `options.local_server`, the labelled
    DocBins and accounting under out_dir/<teacher>, and its report entry."""
    name, dev_set = config_path.stem, options.dev_set
    teacher_dir = out_dir / name
    log = teacher_dir / "server.log"
    before = served_requests(log)
    local = name in options.local_server
    server = nullcontext()
    if local:
        model = model_settings(config_path)
        server = llama_server(smollm2_gguf(), model["endpoint"], model["name"], options.n_ctx, log)
    with server:
        nlp = load_teacher(config_path, cache_dir, options.allow_remote)
        inputs = read_inputs(nlp, corpus_dir, dev_set, options.dev_docs, options.sample)
        records, labelled = label_sets(nlp, name, inputs, teacher_dir / "accounting.jsonl", echo)
    for set_name, docs in labelled.items():
        DocBin(docs=docs, store_user_data=True).to_disk(teacher_dir / f"{set_name}.spacy")
    scored = [d for d in labelled[dev_set] if name in d.spans]
    summary = summarise(records, prices.get(name) or prices["cpu"])
    summary["requests_served_this_run"] = served_requests(log) - before if local else None
    gold_set = dev_set.rsplit("_", 1)[0]
    return {
        "words_per_second": summary.get("words_per_second", 0.0),
        "scores": {dev_set: score(((d.spans[name], d) for d in scored), GOLD_LABELS[gold_set])},
        "scored_docs": len(scored),
        "accounting": summary,
    }


def hosted_costs(data: dict[str, Any], prices: dict[str, Any]) -> dict[str, float] | None:
    """What the hosted models would cost for the prompts measured here (our prompt, our notes;
    token counts from the local model's tokenizer, an approximation of the hosted ones)."""
    measured = next(
        (t["accounting"] for t in data["teachers"].values() if t["accounting"].get("requests")), None
    )
    if not measured:
        return None
    costs = {
        m: cost_per_1k(measured, p) for m, p in prices.items() if m not in data["teachers"] and m != "cpu"
    }
    costs.update(
        {
            n: t["accounting"]["cost_per_1k_notes_usd"]
            for n, t in data["teachers"].items()
            if "cost_per_1k_notes_usd" in t["accounting"]
        }
    )
    return costs


def write_llm_report(report: Path, data: dict[str, Any]) -> None:
    dev_set = data["dev_set"]
    rows = []
    for name, t in data["teachers"].items():
        a = t["accounting"]
        for label, s in t["scores"][dev_set].items():
            rows.append([
                name, label, f"{s['strict']['p']:.2f}/{s['strict']['r']:.2f}/{s['strict']['f']:.2f}",
                f"{s['lenient']['p']:.2f}/{s['lenient']['r']:.2f}/{s['lenient']['f']:.2f}",
                a["notes"], a["requests"],
                f"{a.get('mean_prompt_tokens_per_note', 0):,.0f}",
                f"{a.get('mean_completion_tokens_per_note', 0):,.0f}",
                f"{a.get('mean_latency_s_per_note', 0):.1f}",
                f"{a['failed']}/{a['malformed_notes']}/{a['not_in_text']}",
            ])  # fmt: skip
    after = [""] + [f"- skipped {n}: {r}" for n, r in data["skipped"].items()]
    after += [""] + [
        f"- {m}: ${c:,.4f} per 1,000 notes" for m, c in data.get("cost_per_1k_notes_usd", {}).items()
    ]
    intro = (
        f"Written by `weasel run label-llm`: each LLM teacher labels {dev_set} ({data['dev_docs']} docs, "
        f"by hash of their text; scored below) and "
        f"{data['sample_notes']} unlabelled notes. Tokens and latency per note over both; prices in "
        "configs/teachers/llm_prices.cfg."
    )
    header = ["teacher", "label", "strict P/R/F1", "lenient P/R/F1", "notes", "requests", "prompt tok/note",
              "completion tok/note", "s/note", "failed/malformed/not-in-text spans"]  # fmt: skip
    write_report(report, data, "LLM teachers", intro, header, rows, after)


def label_teachers(
    config_dir: Path,
    corpus_dir: Path,
    out_dir: Path,
    cache_dir: Path,
    report: Path,
    prices_path: Path,
    options: Options = Options(),
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole step: each teacher config in `config_dir` that can run here (otherwise one line
    says why not), then the report. Returns the report's data."""
    prices = {k: dict(v) for k, v in Config().from_disk(prices_path).items()}
    data: dict[str, Any] = {"teachers": {}, "skipped": {}, "sample_notes": options.sample}
    data.update(dev_set=options.dev_set, prices=prices, dev_docs=options.dev_docs or "all")
    for config_path in sorted(config_dir.glob("*.cfg")):
        reason = skip_reason(config_path, options.allow_remote)
        if reason:
            echo(f"{config_path.stem}: skipped ({reason})")
            data["skipped"][config_path.stem] = reason
            continue
        data["teachers"][config_path.stem] = label_teacher(
            config_path, corpus_dir, out_dir, cache_dir, prices, options, echo
        )
    costs = hosted_costs(data, prices)
    if costs is not None:
        data["cost_per_1k_notes_usd"] = costs
    write_llm_report(report, data)
    return data
