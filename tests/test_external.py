"""evaluate-external on real data: the NCBI-disease test set (the distilled student trains on NCBI
train texts only) written as a BRAT folder, Prodigy JSONL, Label Studio JSON and JSONL, and a DocBin,
read back with exactly the original entities; malformed spans named by file and line; unmapped labels
dropped and counted; the scores equal the project's own scoring and agree with `spacy evaluate`."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc

from clin_distill.corpora.build import make_nlp, write_docbin
from clin_distill.corpora.external import load_label_map, read_external
from clin_distill.corpora.pubtator import NCBI_LABELS, read_pubtator
from clin_distill.corpora.stats import CorpusStats
from clin_distill.errors import CorpusFormatError
from clin_distill.labels import DISEASE, GOLD_SPANS_KEY, LABELS
from clin_distill.scoring import bootstrap, doc_counts
from conftest import ROOT, VARS

LABEL_MAP = ROOT / "configs" / "external.cfg"
MODEL_DOCS = 20  # documents the model runs on: the small profile's `evaluate` scores the same 20


@pytest.fixture(scope="module")
def ncbi_test(data_dir) -> tuple[list[Doc], CorpusStats]:
    """The NCBI test set through the project's own PubTator reader."""
    stats = CorpusStats()
    path = data_dir / "ncbi_disease" / "NCBItestset_corpus.txt"
    return list(read_pubtator(make_nlp(), path, NCBI_LABELS, stats)), stats


@pytest.fixture(scope="module")
def label_map() -> dict[str, str]:
    return load_label_map(LABEL_MAP)


def entities(docs: list[Doc]) -> list[list[tuple[int, int, str]]]:
    return [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs]


def by_id(docs: list[Doc]) -> dict[str, tuple[str, list[tuple[int, int, str]]]]:
    return {d.user_data["doc_id"]: (d.text, ents) for d, ents in zip(docs, entities(docs), strict=True)}


# Writers of the three input kinds, as BRAT, Prodigy and Label Studio write them; source labels are
# NCBI's own types (SpecificDisease, Modifier...), so reading back goes through the label map.
def write_brat(docs: list[Doc], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        doc_id = doc.user_data["doc_id"]
        (folder / f"{doc_id}.txt").write_text(doc.text, encoding="utf-8", newline="")
        lines = [
            f"T{i}\t{e._.source_type} {e.start_char} {e.end_char}\t{e.text}"
            for i, e in enumerate(doc.ents, 1)
        ]
        (folder / f"{doc_id}.ann").write_text("".join(f"{x}\n" for x in lines), encoding="utf-8", newline="")
    return folder


def prodigy_records(docs: list[Doc]) -> list[dict]:
    return [
        {
            "text": d.text,
            "spans": [{"start": e.start_char, "end": e.end_char, "label": e._.source_type} for e in d.ents],
            "meta": {"id": d.user_data["doc_id"]},
            "answer": "accept",
        }
        for d in docs
    ]


def label_studio_tasks(docs: list[Doc]) -> list[dict]:
    return [
        {
            "id": i,
            "data": {"text": d.text, "doc_id": d.user_data["doc_id"]},
            "annotations": [
                {
                    "id": i,
                    "was_cancelled": False,
                    "result": [
                        {
                            "id": f"r{k}",
                            "from_name": "label",
                            "to_name": "text",
                            "type": "labels",
                            "value": {
                                "start": e.start_char,
                                "end": e.end_char,
                                "text": e.text,
                                "labels": [e._.source_type],
                            },
                        }
                        for k, e in enumerate(d.ents)
                    ],
                }
            ],
        }
        for i, d in enumerate(docs, 1)
    ]


def write_jsonl(records: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json_array(tasks: list[dict], path: Path) -> Path:
    """One task per line after the opening bracket: task k starts on line k + 1."""
    path.write_text("[\n" + ",\n".join(json.dumps(t) for t in tasks) + "\n]\n", encoding="utf-8")
    return path


def test_every_format_reads_back_the_original_entities(ncbi_test, label_map, tmp_path):
    original, original_stats = ncbi_test
    inputs = {
        "brat": write_brat(original, tmp_path / "brat"),
        "prodigy": write_jsonl(prodigy_records(original), tmp_path / "prodigy.jsonl"),
        "label-studio": tmp_path / "label_studio.json",
        "label-studio-jsonl": write_jsonl(label_studio_tasks(original), tmp_path / "label_studio.jsonl"),
        "docbin": tmp_path / "gold.spacy",
    }
    # Label Studio's own export layout: an indented JSON array.
    inputs["label-studio"].write_text(json.dumps(label_studio_tasks(original), indent=2), encoding="utf-8")
    write_docbin(original, inputs["docbin"])
    for kind, path in inputs.items():
        docs, stats = read_external(path, label_map)  # format detected from the path and the records
        assert by_id(docs) == by_id(original), kind  # texts, entities (chars and labels), ids
        if kind != "brat":  # a folder has no order: BRAT documents come sorted by id
            assert [d.user_data["doc_id"] for d in docs] == [d.user_data["doc_id"] for d in original], kind
        assert all(list(d.spans[GOLD_SPANS_KEY]) == list(d.ents) for d in docs), kind
        assert stats.entities == original_stats.entities and stats.docs == 100, kind
        assert not stats.ignored_types, kind
        if kind != "docbin":  # a DocBin holds the mapped labels, not NCBI's types
            assert stats.raw_types == original_stats.raw_types, kind
    # An explicit format overrides detection; a mismatching one fails on the first record.
    docs, _ = read_external(inputs["prodigy"], label_map, "prodigy")
    assert entities(docs) == entities(original)
    with pytest.raises(CorpusFormatError, match=r"prodigy\.jsonl:1: a prodigy record where label-studio"):
        read_external(inputs["prodigy"], label_map, "label-studio")


def fails_at(
    path: Path, line: int | None, label_map: dict[str, str], match: str, in_file: Path | None = None
) -> None:
    """Reading `path` fails with an error naming the file (`in_file`: a BRAT folder's `.ann`) and line."""
    in_file = in_file or path
    with pytest.raises(CorpusFormatError, match=match) as info:
        read_external(path, label_map)
    assert info.value.path == in_file and info.value.line == line
    assert str(info.value).startswith(f"{in_file}:{line}:" if line else f"{in_file}:")


def test_overlapping_spans_after_mapping_fail_naming_file_and_line(ncbi_test, label_map, tmp_path):
    docs = ncbi_test[0][:3]
    records = prodigy_records(docs)
    first = records[1]["spans"][0]
    # A mapped label on the tokens of an existing mention: doc.ents could hold only one of them.
    records[1]["spans"].append({**first, "label": "Sign_symptom"})
    fails_at(write_jsonl(records, tmp_path / "overlap.jsonl"), 2, label_map, "overlaps span")
    # An unmapped label on the same tokens is dropped before the check, and counted.
    records[1]["spans"][-1]["label"] = "Gene"
    read, stats = read_external(write_jsonl(records, tmp_path / "unmapped.jsonl"), label_map)
    assert entities(read) == entities(docs) and stats.ignored_types == {"Gene": 1}

    # BRAT: the error names the .ann line of the later mention (and the line of the one it overlaps).
    folder = write_brat(docs, tmp_path / "brat")
    ann = folder / f"{docs[2].user_data['doc_id']}.ann"
    lines = ann.read_text().split("\n")[:-1]
    e = docs[2].ents[0]
    # Overlapping in part: from inside the first mention's first token to the end of the text's next token.
    nxt = docs[2][e.end] if e.end < len(docs[2]) else docs[2][e.end - 1]
    end = nxt.idx + len(nxt)
    lines.append(f"T99\tSign_symptom {e.start_char + 1} {end}\t{docs[2].text[e.start_char + 1 : end]}")
    ann.write_text("\n".join(lines) + "\n")
    fails_at(folder, len(lines), label_map, "overlaps span .* on line 1 after label mapping", ann)

    # Label Studio JSON array: the line where the task starts.
    tasks = label_studio_tasks(docs)
    result = tasks[2]["annotations"][0]["result"]
    result.append({**result[0], "value": {**result[0]["value"], "labels": ["Sign_symptom"]}})
    fails_at(write_json_array(tasks, tmp_path / "ls.json"), 4, label_map, "overlaps span")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"end": 10**6}, "past the end of the text"),
        ({"start": -1}, "negative offset -1"),
        ({"start": 40, "end": 40}, "start 40 is not before end 40"),
        ({"start": "3"}, "start and end must be integers"),
    ],
)
def test_out_of_range_spans_fail_naming_file_and_line(ncbi_test, label_map, tmp_path, change, match):
    records = prodigy_records(ncbi_test[0][:3])
    records[2]["spans"][1] |= change
    fails_at(write_jsonl(records, tmp_path / "bad.jsonl"), 3, label_map, match)
    tasks = label_studio_tasks(ncbi_test[0][:3])
    value = tasks[1]["annotations"][0]["result"][1]["value"]
    value |= change
    fails_at(write_jsonl(tasks, tmp_path / "bad_ls.jsonl"), 2, label_map, match)


def test_text_and_syntax_errors_name_file_and_line(ncbi_test, label_map, tmp_path):
    docs = ncbi_test[0][:3]
    records = prodigy_records(docs)
    space = docs[0].text.index(" ")
    records[0]["spans"].append({"start": space, "end": space + 1, "label": "SpecificDisease"})
    fails_at(write_jsonl(records, tmp_path / "space.jsonl"), 1, label_map, "covers only whitespace")

    tasks = label_studio_tasks(docs)
    tasks[2]["annotations"][0]["result"][0]["value"]["text"] = "not the document's text"
    fails_at(write_json_array(tasks, tmp_path / "text.json"), 4, label_map, "span text does not match")

    path = write_jsonl(prodigy_records(docs), tmp_path / "syntax.jsonl")
    lines = path.read_text().split("\n")
    lines[1] = lines[1][:-1]  # a truncated record
    path.write_text("\n".join(lines))
    fails_at(path, 2, label_map, "not valid JSON")
    path = write_json_array(label_studio_tasks(docs), tmp_path / "syntax.json")
    path.write_text(path.read_text().replace("},\n{", "}\n{", 1))  # a missing comma after task 1
    fails_at(path, 3, label_map, "expected ',' or ']'")

    folder = write_brat(docs, tmp_path / "brat")
    ann = folder / f"{docs[1].user_data['doc_id']}.ann"
    ann.write_text(
        ann.read_text().replace(f" {docs[1].ents[1].end_char}\t", f" {len(docs[1].text) + 5}\t", 1)
    )
    fails_at(folder, 2, label_map, "past the end of the text", ann)


def test_label_map_drops_and_counts_unmapped_labels(ncbi_test, tmp_path):
    original, original_stats = ncbi_test
    cfg = tmp_path / "labels.cfg"
    cfg.write_text('[labels]\nSpecificDisease = "DISEASE"\nDiseaseClass = "DISEASE"\n')
    docs, stats = read_external(write_brat(original, tmp_path / "brat"), load_label_map(cfg))
    keep = ("SpecificDisease", "DiseaseClass")
    dropped = {t: original_stats.raw_types[t] for t in ("CompositeMention", "Modifier")}
    assert stats.ignored_types == dropped and all(dropped.values())
    assert stats.entities[DISEASE] == original_stats.entities[DISEASE] - sum(dropped.values())
    kept = {
        d.user_data["doc_id"]: (
            d.text,
            [x for x, e in zip(ents, d.ents, strict=True) if e._.source_type in keep],
        )
        for d, ents in zip(original, entities(original), strict=True)
    }
    assert by_id(docs) == kept
    cfg.write_text('[labels]\nSpecificDisease = "Disease"\n')
    with pytest.raises(CorpusFormatError, match=r"labels\.cfg: \[labels\] SpecificDisease maps to 'Disease'"):
        load_label_map(cfg)


def test_external_scores_equal_the_project_scoring_and_spacy_evaluate(workflow_project, ncbi_test, tmp_path):
    """The step as users run it, with the workflow's trained student, on the first NCBI test docs."""
    original = ncbi_test[0][:MODEL_DOCS]
    # A Label Studio export keeps the documents' order, so the bootstrap resamples the same documents
    # as `evaluate` did (a BRAT folder's come sorted by id: same scores, other intervals).
    gold = write_json_array(label_studio_tasks(original), tmp_path / "gold.json")
    model = workflow_project / "training" / "distilled" / "model-best"
    report = tmp_path / "reports" / "external.json"
    cmd = [sys.executable, "scripts/evaluate_external.py", str(gold), "--model", str(model)]
    cmd += ["--out-docbin", str(tmp_path / "gold.spacy"), "--report", str(report)]
    result = subprocess.run(cmd, cwd=workflow_project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["docs"] == MODEL_DOCS
    assert data["mentions"][DISEASE] == sum(len(d.ents) for d in original)
    assert data["conversion"]["dropped_labels"] == {}
    assert report.with_suffix(".md").read_text().startswith("# Evaluation on your own gold set")

    # The project's own scoring of the same model on the reader's docs (no conversion).
    nlp = spacy.load(model)
    predicted = [list(d.ents) for d in nlp.pipe(d.text for d in original)]
    per_doc = [doc_counts(p, g.ents, LABELS) for p, g in zip(predicted, original, strict=True)]
    assert data["scores"] == bootstrap(per_doc, LABELS)
    if VARS.get("eval_docs") == MODEL_DOCS:  # `evaluate` scored the same documents (NCBI: DISEASE only)
        evaluation = json.loads((workflow_project / "reports" / "evaluation.json").read_text())
        assert data["scores"][DISEASE] == evaluation["distilled"]["ncbi_test"][DISEASE]

    # spaCy's scorer counts every predicted and gold entity by tokens and label, as doc_counts does:
    # its micro scores are the strict ones over all three labels, per type those of each label.
    spacy_scores = data["spacy_evaluate"]
    total = sum(per_doc, Counter())
    assert data["counts"] == {
        label: {k: total[label, k] for k in ("tp", "np", "ng", "hp", "hg")} for label in LABELS
    }
    assert data["micro_strict"]["n_pred"] == sum(len(p) for p in predicted)
    assert data["gold_labels"] == data["micro_strict_gold_labels"]["labels"] == [DISEASE]
    assert set(spacy_scores["ents_per_type"] or {}) <= set(LABELS)  # else spaCy's micro counts more
    for label, s in (spacy_scores["ents_per_type"] or {}).items():
        tp, n_pred, n_gold = (total[label, k] for k in ("tp", "np", "ng"))
        assert s["p"] == pytest.approx(tp / n_pred if n_pred else 0.0, abs=1e-6)
        assert s["r"] == pytest.approx(tp / n_gold if n_gold else 0.0, abs=1e-6)
    m = data["micro_strict"]
    p, r = m["tp"] / m["n_pred"] if m["n_pred"] else 0.0, m["tp"] / m["n_gold"]
    assert spacy_scores["ents_p"] == pytest.approx(p, abs=1e-6)
    assert spacy_scores["ents_r"] == pytest.approx(r, abs=1e-6)
    assert spacy_scores["ents_f"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0, abs=1e-6)


def test_installed_package_name_through_the_script(workflow_project, ncbi_test, tmp_path):
    """The default `--model en_clin_distilled`: the packaged model found by name (here on PYTHONPATH,
    as `pip install` would place it), its own copy of the encoder code beside the script's `--code`."""
    package_dir = next((workflow_project / "packages").glob("en_clin_distilled-*"))
    brat = write_brat(ncbi_test[0][:MODEL_DOCS], tmp_path / "brat")
    report = tmp_path / "external.json"
    cmd = [sys.executable, "scripts/evaluate_external.py", str(brat), "--model", "en_clin_distilled"]
    cmd += ["--out-docbin", str(tmp_path / "gold.spacy"), "--report", str(report), "--n-boot", "10"]
    env = {**os.environ, "PYTHONPATH": str(package_dir)}
    result = subprocess.run(cmd, cwd=workflow_project, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["model"] == "en_clin_distilled" and data["docs"] == MODEL_DOCS
    m = data["micro_strict"]
    p, r = m["tp"] / m["n_pred"] if m["n_pred"] else 0.0, m["tp"] / m["n_gold"]
    assert data["spacy_evaluate"]["ents_f"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0, abs=1e-6)


def test_skipped_records_are_counted_not_read(ncbi_test, label_map, tmp_path):
    docs = ncbi_test[0][:4]
    records = prodigy_records(docs)
    records[1]["answer"] = "reject"
    records[2]["answer"] = "ignore"
    read, stats = read_external(write_jsonl(records, tmp_path / "answers.jsonl"), label_map)
    assert by_id(read) == by_id([docs[0], docs[3]])
    assert +stats.skipped == {"prodigy_answer_reject": 1, "prodigy_answer_ignore": 1}
    tasks = label_studio_tasks(docs)
    tasks[0]["annotations"] = []  # imported, never annotated
    tasks[1]["annotations"][0]["was_cancelled"] = True  # skipped by the annotator
    relation = {"type": "relation", "from_id": "r0", "to_id": "r1", "direction": "right"}
    tasks[2]["annotations"][0]["result"].append(relation)
    tasks[2]["annotations"].append({**tasks[2]["annotations"][0], "result": []})  # a second annotator
    read, stats = read_external(write_json_array(tasks, tmp_path / "tasks.json"), label_map)
    assert by_id(read) == by_id(docs[2:])
    assert +stats.skipped == {"unannotated_task": 2, "result_type_relation": 1, "other_annotation_of_task": 1}


def test_the_script_reports_a_bad_file_without_traceback_or_text(ncbi_test, tmp_path):
    records = prodigy_records(ncbi_test[0][:2])
    records[1]["spans"][0]["end"] = 10**6
    path = write_jsonl(records, tmp_path / "bad.jsonl")
    cmd = [sys.executable, "scripts/evaluate_external.py", str(path), "--model", "not-loaded"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"evaluate-external: {path}:2: document ")
    assert ncbi_test[0][1].ents[0].text not in result.stderr
    cmd[cmd.index("--model") :] = ["--format", "csv"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "'csv' is not one of auto, brat" in result.stderr
