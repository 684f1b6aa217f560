"""reports/benchmark.{json,md} from the numbers `bench.cpu.run_cpu_benchmark` measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..labels import LABELS
from ..reports import write_report

HEADER = ["what", "batch size", "words/s", "notes/s", "peak RSS MB labelling (with load)"]


def _student_row(what: str, r: dict[str, Any]) -> list[Any]:
    return [what, r["batch_size"], f"{r['words_per_second']:,.0f}", f"{r['notes_per_second']:.1f}",
            f"{r['peak_rss_mb']} ({r['peak_rss_mb_with_loading']:,.0f})"]  # fmt: skip


def variants(data: dict[str, Any]) -> list[str]:
    """The other encoders measured beside the default ("float32", "onnx-float32", "int8",
    "onnx-int8", and "bf16" on a CPU with native bf16), in the run's order."""
    return [key.removeprefix("student_") for key in data if key.startswith("student_")]


def table_rows(data: dict[str, Any]) -> list[list[Any]]:
    precision = data["student"]["precision"]
    rows = [_student_row(f"student (spaCy; packaged default, {precision})", r)
            for r in data["student"]["by_batch_size"]]  # fmt: skip
    rows += [
        [
            f"ceiling ({'ONNX Runtime' if precision.startswith('onnx-') else 'PyTorch'} forward only)",
            r["batch_size"],
            f"{r['words_per_second']:,.0f}",
            "",
            "",
        ]  # fmt: skip
        for r in data["ceiling"]["by_batch_size"]
    ]
    for variant in variants(data):
        q = data[f"student_{variant}"]
        rows += [
            _student_row(f"student, {variant} encoder ({q['runtime']})", q),
            [f"ceiling, {variant} encoder ({q['runtime']} forward only)", q["batch_size"],
             f"{q['own_runtime_ceiling_words_per_second']:,.0f}", "", ""],
        ]  # fmt: skip
    rows += [
        [f"teacher {n}", "", f"{t['words_per_second']:,.0f}", "", ""] for n, t in data["teachers"].items()
    ]
    return rows


def _long_run_line(r: dict[str, Any]) -> str:
    return (
        f"- {'without heap trimming' if r['malloc_trim_every'] == 0 else 'long run'}: "
        f"{r['notes']:,} varied notes (batch size {r['batch_size']}, malloc_trim_every "
        f"{r['malloc_trim_every']}, malloc_trim_margin_mb {r['malloc_trim_margin_mb']}): "
        f"peak RSS {r['peak_rss_mb']} MB, resident MB by notes labelled "
        + ", ".join(f"{n}: {m:,.0f}" for n, m in r["rss_mb_by_notes"])
    )


def after_lines(data: dict[str, Any], gold_name: str | None, llm_name: str | None) -> list[str]:
    student, costs = data["student"], data["cost_per_1k_notes_usd"]
    precision, default_batch = student["precision"], student["default_batch_size"]
    native_bf16 = data["machine"]["native_bf16"]
    after = [
        "",
        f"- ratio_to_ceiling (packaged default, batch size {default_batch}, {precision}): "
        f"**{data['ratio_to_ceiling']}**; fastest student row (batch size {student['fastest_batch_size']}) "
        f"to the fastest ceiling row: {data['ratio_to_best_ceiling']}",
        *(
            [
                f"- in the same turns (student and bare encoder alternating batch by batch), the encoder "
                f"inside the pipeline took {student['encoder_in_pipeline_to_bare']}x the bare encoder's "
                f"time; outside it the student spent {student['outside_encoder_ms_per_note']} ms per note "
                f"({1 - student['encoder_seconds_in_pipeline'] / student['seconds']:.1%} of its time)"
            ]
            if "outside_encoder_ms_per_note" in student
            else []
        ),
        f"- student peak RSS while labelling: {student['peak_rss_mb']} MB at batch size {default_batch} "
        f"({student['peak_rss_mb_with_loading']:,.0f} MB counting the load); "
        f"wordpieces per word: {data['ceiling']['wordpieces_per_word']}",
        _long_run_line(student["long_run"]),
        _long_run_line(student["long_run_without_trim"]),
        "- cost per 1,000 notes (USD): " + ", ".join(f"{k} {v}" for k, v in costs.items()),
        f"- GPT-4o / student cost: {data['gpt4o_cost_ratio']}x",
        "- where the student's time goes (batch size 1, 50 notes, each stage timed in a pass of its own, "
        "whose encoder share grows when the host is slow; the ceiling times the encoder's forward pass "
        "alone): " + ", ".join(f"{k} {v:.1%}" for k, v in student["profile"].items() if k != "seconds"),
        "- before/after: the pipeline's `nlp.pipe` default batch size was 32 (peak RSS "
        + ", ".join(f"{r['peak_rss_mb']:,.0f} MB at {r['batch_size']}" for r in student["by_batch_size"])
        + f"); it is now {default_batch}, for memory (fastest too with a float32 encoder)",
        f'- the packaged default\'s encoder precision (`clin_encoder_precision`, "auto"): **{precision}** '
        f"(this CPU {'has' if native_bf16 else 'lacks'} native bf16); before, it always ran in float32",
    ]
    if "no_bf16_path" in data:
        path = data["no_bf16_path"]
        after.append(
            f'- the path "auto" takes on a CPU without native bf16 (`without_bf16`): **{path["variant"]}**, '
            f"{path['words_per_second']:,.0f} words/s: **{path['speedup_over_float32']}x** the PyTorch "
            f"float32 student, ratio to its precision's fastest ceiling **{path['ratio_to_ceiling']}**"
        )
    if "no_bf16_speedup_in_turns" in data:
        t = data["no_bf16_speedup_in_turns"]
        after.append(
            f"- the no-bf16 path ({t['variant']}) against the PyTorch float32 student, the two timed in "
            f"turns in one process (best of {t['rounds']} each): **{t['speedup']}x** "
            f"({t['words_per_second']:,.0f} vs {t['baseline_words_per_second']:,.0f} words/s; the rows "
            "above come from separate processes)"
        )
    if "bf16_speedup_in_turns" in data:
        t = data["bf16_speedup_in_turns"]
        after.append(
            f"- the default ({t['variant']}) against the PyTorch bf16 student on this CPU with native "
            f"bf16, the two timed in turns in one process (best of {t['rounds']} each): **{t['speedup']}x** "
            f"({t['words_per_second']:,.0f} vs {t['baseline_words_per_second']:,.0f} words/s)"
        )
    for variant in variants(data):
        q = data[f"student_{variant}"]
        how = "`clin_distill.student.int8.quantize_encoder`, opt-in" if variant == "int8" else "set in config"
        after.append(
            f"- {variant} encoder ({q['runtime']}, {how}): {q['speedup_over_default']}x "
            f"the default's words/s, ratio to the fastest {q['precision']} ceiling ({q['ceiling_from']}) "
            f"{q['ratio_to_ceiling']}"
        )
        if gold_name:
            key = f"{gold_name}_strict_f1"
            after.append(
                f"- strict F1 on {gold_name}, default ({precision}) vs {variant}: "
                + ", ".join(f"{lab} {student[key][lab]:.3f} vs {q[key][lab]:.3f}" for lab in LABELS)
            )
    if llm_name:
        t = data["teachers"][llm_name]
        after.append(
            f"- {llm_name}: {t['seconds_per_note']} s/note vs student "
            f"{t['student_seconds_per_note_same_notes']} s/note on the same {t['notes']} notes: "
            f"{t['student_speedup_per_note']}x (LLM: best of two passes after a warm-up note; s/note by pass "
            + ", ".join(str(x) for x in t["seconds_per_note_by_pass"])
            + ")"
            + "".join(
                f"; {v} encoder: {t[f'student_{v}_seconds_per_note_same_notes']} s/note, "
                f"{t[f'student_{v}_speedup_per_note']}x"
                for v in variants(data)
            )
        )
    return after


def write_cpu_report(report: Path, data: dict[str, Any], gold_name: str | None, llm_name: str | None) -> None:
    """The JSON as measured, and its Markdown table with the lines that read it."""
    m, s = data["machine"], data["sample"]
    intro = (
        f"Written by `weasel run benchmark` on {m['cpu_count']} CPU cores "
        f"({m['torch_threads']} torch threads): {s['notes']} real notes, {s['words']:,} words, "
        "raw text in, entities out."
    )
    after = after_lines(data, gold_name, llm_name)
    write_report(report, data, "Speed and cost", intro, HEADER, table_rows(data), after)
