"""README.md's tables, generated from the committed reports so its numbers cannot go stale.

Each generated block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`;
`render` rewrites those blocks and leaves the rest of the README alone. `scripts/readme.py
--check` (run by a fast test) fails when README.md differs from what the reports generate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .labels import LABELS
from .reports import fmt_diff, markdown_table


def _load(reports: Path, name: str) -> dict[str, Any] | None:
    path = reports / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f1(s: dict[str, Any]) -> str:
    st = s["strict"]
    return f"{st['f']:.3f} [{st['ci95'][0]:.2f}, {st['ci95'][1]:.2f}]" if "ci95" in st else f"{st['f']:.3f}"


FOLDED_CELL = "DISEASE+SYMPTOM"  # BC5CDR's Disease against our DISEASE and SYMPTOM (evaluation.FOLDED)


def results(reports: Path, project: Path) -> list[str]:
    """Strict F1 per label and test set for the teachers, both students and the LLM teachers."""
    ev = _load(reports, "evaluation")
    if ev is None:
        return ["(no reports/evaluation.json yet: `weasel run all`)"]
    names = {"teachers": "teachers (selected combination)", "distilled": "distilled student (float32)",
             "human": "human-label student (reference)"}  # fmt: skip
    rows = [[names.get(m, m), *(_f1(by_set["maccrobat_test"][lab]) for lab in LABELS),
             _f1(by_set["bc5cdr_test"]["MEDICATION"]), _f1(by_set["bc5cdr_test"]["DISEASE"]),
             _f1(by_set["ncbi_test"]["DISEASE"]), _f1(by_set["bc5cdr_test"][FOLDED_CELL])]
            for m, by_set in ev.items()]  # fmt: skip
    llm = _load(reports, "llm_teachers") or {"teachers": {}}
    for name, t in llm["teachers"].items():
        dev = t["scores"][llm["dev_set"]]
        rows.append([f"LLM teacher {name} ({llm['dev_set']}, {t['scored_docs']} docs)",
                     *(_f1(dev[lab]) for lab in LABELS), "", "", "", ""])  # fmt: skip
    header = ["strict F1 [95% CI]", *(f"MACCROBAT {lab}" for lab in LABELS), "BC5CDR chemical",
              "BC5CDR disease", "NCBI disease", "BC5CDR disease, our DISEASE+SYMPTOM"]  # fmt: skip
    lines = markdown_table(header, rows)
    diffs = _load(reports, "evaluation_differences") or {}
    if {"distilled - teachers", "human - distilled"} <= set(diffs):

        def gaps(name: str) -> str:
            d = diffs[name]["maccrobat_test"]
            return ", ".join(f"{lab} {fmt_diff(d[lab]['strict'])}" for lab in LABELS)

        lines += [
            "",
            f"MACCROBAT test, distilled - teachers: {gaps('distilled - teachers')}; human - distilled: "
            f"{gaps('human - distilled')} (paired bootstrap 95% intervals: reports/evaluation.md).",
        ]
        # `evaluate` scores the student's float32 weights; the package runs its default encoder.
        student = (_load(reports, "benchmark") or {}).get("student", {})
        if f1 := student.get("maccrobat_test_strict_f1"):
            lines[-1] += (
                f" The package's default encoder ({student['precision']}) on MACCROBAT test: "
                + ", ".join(f"{lab} {f1[lab]:.3f}" for lab in LABELS)
                + " (reports/benchmark.md)."
            )
    return lines


def speed(reports: Path, project: Path) -> list[str]:
    """The packaged student against its encoder's ceiling, the LLM teacher and GPT-4o's price."""
    b = _load(reports, "benchmark")
    if b is None:
        return ["(no reports/benchmark.json yet: `weasel run bench`)"]
    s, llm = b["student"], b["teachers"].get("smollm2", {})
    rows = [[f"student, packaged default ({s['precision']})", f"{s['words_per_second']:,.0f}",
             f"{b['ratio_to_ceiling']:.3f}", f"{s['peak_rss_mb']:,.0f}",
             f"{llm.get('student_speedup_per_note', '')}x"]]  # fmt: skip
    for variant in ("bf16", "float32", "onnx-int8"):  # the others: reports/benchmark.md
        if f"student_{variant}" in b:
            q = b[f"student_{variant}"]
            rows.append([f"student, {variant} encoder ({q['runtime']})", f"{q['words_per_second']:,.0f}",
                         f"{q['ratio_to_ceiling']:.3f}", f"{q['peak_rss_mb']:,.0f}",
                         f"{llm.get(f'student_{variant}_speedup_per_note', '')}x"])  # fmt: skip
    header = ["batch size 1", "words/s", "ratio to ceiling", "peak RSS MB", "per note vs local LLM"]
    m = b["machine"]
    long_run = s["long_run"]
    return [
        *markdown_table(header, rows),
        "",
        f"{m['cpu_count']} CPU cores ({m['processor']}, native bf16: {m['native_bf16']}), "
        f"{b['sample']['notes']} real notes; ceiling = the fastest plain forward pass of the same encoder "
        f"at the same precision on the same batches, PyTorch or ONNX Runtime (the default's, "
        f"{s['precision']}: {b['ceiling']['words_per_second']:,.0f} words/s at batch size "
        f"{b['ceiling']['batch_size']}). "
        + (
            f"Timed batch by batch in turns with its bare encoder, the default spends "
            f"{s['outside_encoder_ms_per_note']} ms a note outside the encoder, whose calls inside the "
            f"pipeline take {s['encoder_in_pipeline_to_bare']}x the bare encoder's time. "
            if "outside_encoder_ms_per_note" in s
            else ""
        )
        + (
            f'With native bf16, "auto" runs {s["precision"]}: {b["bf16_speedup_in_turns"]["speedup"]}x '
            f"PyTorch bf16 and {b['no_bf16_speedup_in_turns']['speedup']}x PyTorch float32, each timed "
            "in turns with it. "
            if "bf16_speedup_in_turns" in b and "no_bf16_speedup_in_turns" in b
            else ""
        )
        + (
            f'Without native bf16, "auto" runs {b["no_bf16_path"]["variant"]}: '
            f"{float32_speedup(b, b['no_bf16_path']['speedup_over_float32'])}x PyTorch float32. "
            if "no_bf16_path" in b
            else ""
        )
        + f"Peak RSS over {long_run['notes']:,} varied notes: {long_run['peak_rss_mb']:,.0f} MB. "
        f"Cost per 1,000 notes: student ${b['cost_per_1k_notes_usd']['student_cpu']} on a CPU instance, "
        f"GPT-4o ${b['cost_per_1k_notes_usd']['gpt-4o']} ({b['gpt4o_cost_ratio']:,.0f}x)."
        + no_bf16_machine(reports),
    ]


def float32_speedup(b: dict, across_processes: float) -> float:
    """The no-bf16 path over PyTorch float32: timed in turns in one process where the benchmark
    did that (host drift between processes stays out of it), else from the two rows."""
    return b.get("no_bf16_speedup_in_turns", {}).get("speedup", across_processes)


def no_bf16_machine(reports: Path) -> str:
    """The same benchmark on a CPU without native bf16 (reports/benchmark_no_bf16.json), if run."""
    b = _load(reports, "benchmark_no_bf16")
    if b is None or "student_float32" not in b:
        return ""
    s, m = b["student"], b["machine"]
    speedup = float32_speedup(b, s["words_per_second"] / b["student_float32"]["words_per_second"])
    return (
        f" On {m['cpu_count']} cores without native bf16 (`reports/benchmark_no_bf16.md`), the default "
        f"({s['precision']}) labels {s['words_per_second']:,.0f} words/s, {b['ratio_to_ceiling']:.3f} of "
        f"its ceiling, {speedup:.2f}x PyTorch float32."
    )


def use(reports: Path, project: Path) -> list[str]:
    """Codes (reports/linking.json), extraction speed (extract.json), an external gold set (external.json)."""
    lines = []
    link = _load(reports, "linking")
    if link is None:
        lines.append("- Codes: (no reports/linking.json yet: `weasel run linker`)")
    else:
        test = link["test"]["shipped"]
        per = "; ".join(
            f"{label} accuracy {s['accuracy']:.3f} on the {s['coverage']:.0%} of {s['mentions']:,} mentions "
            f"whose MeSH id the lexicons know"
            for label, s in test.items()
        )
        lines.append(f"- Codes (`reports/linking.md`, BC5CDR test gold mentions): {per}.")
    ex = _load(reports, "extract")
    if ex is None:
        lines.append("- Extraction speed: (no reports/extract.json yet: `weasel run benchmark-extract`)")
    else:
        single = ex["runs"]["single process"]
        ray = [(name, r) for name, r in ex["runs"].items() if name.startswith("ray")]
        ray_text = ", ".join(
            f"{name} {r['words'] / r['seconds']:,.0f} words/s"
            f" ({'identical output' if r['identical_to_single'] else 'OUTPUT DIFFERS'})"
            for name, r in ray
        )
        lines.append(
            f"- Extraction (`reports/extract.md`, {ex['notes']:,} notes): one process "
            f"{single['words'] / single['seconds']:,.0f} words/s = {ex['ratio_to_model']:.2f}x the model's "
            f"own `nlp.pipe` in the same run; {ray_text}."
        )
    ext = _load(reports, "external")
    if ext is not None:
        per = "; ".join(
            f"{k} strict F1 {sc['strict']['f']:.3f} [{sc['strict']['ci95'][0]:.2f}, "
            f"{sc['strict']['ci95'][1]:.2f}], lenient {sc['lenient']['f']:.3f}"
            for k, sc in ((k, ext["scores"][k]) for k in ext["gold_labels"])
        )
        lines.append(
            f"- External gold through `evaluate-external` (`reports/external.md`, {ext['docs']} documents "
            f"converted from BRAT): {per}; `spacy evaluate` ents_f {ext['spacy_evaluate']['ents_f']:.3f}."
        )
    return lines


def steps(reports: Path, project: Path) -> list[str]:
    """One row per workflow step, from project.yml's help texts."""
    spec = yaml.safe_load(project.read_text())
    helps = {c["name"]: c.get("help", "") for c in spec["commands"]}
    rows = [[f"`{w}`", f"`{step}`", helps[step]] for w, names in spec["workflows"].items() for step in names]
    return markdown_table(["workflow", "step", "what it does"], rows)


BLOCKS: dict[str, Callable[[Path, Path], list[str]]] = {
    "results": results,
    "speed": speed,
    "use": use,
    "steps": steps,
}


def render(readme: str, reports: Path, project: Path) -> str:
    """README text with every generated block rewritten from the reports."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README.md has no <!-- generated:{name} --> block")
        body = "\n".join(make(reports, project)) + "\n"
        readme = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), readme)
    return readme
