"""Step `label-llm`: every LLM teacher in configs/teachers/llm labels the gold dev set (scored) and a
sample of unlabelled notes; accounting and scores -> reports/llm_teachers.{json,md}.

The local teacher's llama.cpp server is started here on 127.0.0.1 and stopped afterwards. Hosted
teachers run only with their key and the remote opt-in; otherwise one line says why they were
skipped. spacy-llm's cache (one file per note) makes an interrupted run resume where it stopped.
"""

import json
from contextlib import nullcontext
from pathlib import Path

import typer
from confection import Config
from spacy.tokens import DocBin

from clin_distill.corpora.notes import hash_sample
from clin_distill.labels import GOLD_LABELS
from clin_distill.llm.label import (
    cost_per_1k,
    label_docs,
    load_teacher,
    model_settings,
    skip_reason,
    summarise,
)
from clin_distill.llm.server import llama_server, served_requests, smollm2_gguf
from clin_distill.reports import write_report
from clin_distill.scoring import score


def main(
    config_dir: Path,
    corpus_dir: Path,
    out_dir: Path,
    cache_dir: Path,
    report: Path,
    prices_path: Path = typer.Option(..., "--prices"),
    sample: int = typer.Option(5, help="Unlabelled notes per teacher"),
    dev_docs: int = typer.Option(0, help="Gold dev documents to label and score (0: all)"),
    dev_set: str = typer.Option("maccrobat_dev"),
    local_server: list[str] = typer.Option([], help="Teacher whose llama.cpp server this step starts"),
    n_ctx: int = typer.Option(2048, help="Context of the local server, in tokens"),
    allow_remote_flag: str = typer.Option(
        "false", "--allow-remote", help="true: allow non-loopback endpoints"
    ),
) -> None:
    allow_remote = allow_remote_flag.strip().lower() in ("true", "1", "yes")
    prices = {k: dict(v) for k, v in Config().from_disk(prices_path).items()}
    data: dict = {"teachers": {}, "skipped": {}, "sample_notes": sample, "dev_set": dev_set, "prices": prices}
    data["dev_docs"] = dev_docs or "all"
    for config_path in sorted(config_dir.glob("*.cfg")):
        name = config_path.stem
        reason = skip_reason(config_path, allow_remote)
        if reason:
            typer.echo(f"{name}: skipped ({reason})")
            data["skipped"][name] = reason
            continue
        teacher_dir = out_dir / name
        log = teacher_dir / "server.log"
        before = served_requests(log)
        server = nullcontext()
        if name in local_server:
            model = model_settings(config_path)
            server = llama_server(smollm2_gguf(), model["endpoint"], model["name"], n_ctx, log)
        with server:
            nlp = load_teacher(config_path, cache_dir, allow_remote)
            gold_set = dev_set.rsplit("_", 1)[0]
            inputs = {
                dev_set: hash_sample(
                    DocBin().from_disk(corpus_dir / "gold" / f"{dev_set}.spacy").get_docs(nlp.vocab),
                    dev_docs or None,
                ),
                "unlabelled_sample": hash_sample(
                    (
                        d
                        for p in sorted((corpus_dir / "unlabelled").glob("*.spacy"))
                        for d in DocBin().from_disk(p).get_docs(nlp.vocab)
                    ),
                    sample,
                ),  # fmt: skip
            }
            records, labelled = [], {}
            for set_name, docs in inputs.items():
                labelled[set_name] = []
                for doc, rec in label_docs(nlp, docs):
                    rec["set"] = set_name
                    records.append(rec)
                    labelled[set_name].append(doc)
                    typer.echo(
                        f"{name} {set_name} doc {rec['doc']}: {rec['status']}"
                        f"{' (cache)' if rec.get('cached') else ''}"
                    )
        teacher_dir.mkdir(parents=True, exist_ok=True)
        for set_name, docs in labelled.items():
            DocBin(docs=docs, store_user_data=True).to_disk(teacher_dir / f"{set_name}.spacy")
        (teacher_dir / "accounting.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        scored = [d for d in labelled[dev_set] if name in d.spans]
        summary = summarise(records, prices.get(name) or prices["cpu"])
        summary["requests_served_this_run"] = served_requests(log) - before if name in local_server else None
        data["teachers"][name] = {
            "words_per_second": summary.get("words_per_second", 0.0),
            "scores": {dev_set: score(((d.spans[name], d) for d in scored), GOLD_LABELS[gold_set])},
            "scored_docs": len(scored),
            "accounting": summary,
        }
    # What the hosted models would cost for the prompts measured here (our prompt, our notes;
    # token counts from the local model's tokenizer, an approximation of the hosted ones).
    measured = next(
        (t["accounting"] for t in data["teachers"].values() if t["accounting"].get("requests")), None
    )
    if measured:
        data["cost_per_1k_notes_usd"] = {
            m: cost_per_1k(measured, p) for m, p in prices.items() if m not in data["teachers"] and m != "cpu"
        }
        data["cost_per_1k_notes_usd"].update(
            {
                n: t["accounting"]["cost_per_1k_notes_usd"]
                for n, t in data["teachers"].items()
                if "cost_per_1k_notes_usd" in t["accounting"]
            }
        )
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
        f"{sample} unlabelled notes. Tokens and latency per note over both; prices in "
        "configs/teachers/llm_prices.cfg."
    )
    header = ["teacher", "label", "strict P/R/F1", "lenient P/R/F1", "notes", "requests", "prompt tok/note",
              "completion tok/note", "s/note", "failed/malformed/not-in-text spans"]  # fmt: skip
    write_report(report, data, "LLM teachers", intro, header, rows, after)


if __name__ == "__main__":
    typer.run(main)
