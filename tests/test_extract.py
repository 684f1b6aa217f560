"""The packaged model as a hospital team uses it: a fresh venv with only the model wheel (load,
label, `spacy evaluate`), then the project's `[extract]` extra added: `clin-distill extract` over
real notes in all three input kinds, with bad notes among them; resume after a kill; medspaCy on
top; the same output on a local Ray instance."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from clin_distill.errors import CorpusFormatError
from clin_distill.extract.notes import read_notes
from clin_distill.extract.output import Output
from clin_distill.extract.run import extract
from conftest import ROOT, SMALL_PROFILE

PACKAGED = "packages/en_clin_distilled-0.1.0/en_clin_distilled/en_clin_distilled-0.1.0"


def real_notes(project: Path, n: int) -> list[dict]:
    """The first n unlabelled notes of each source in the workflow's corpus (real clinical text)."""
    nlp = spacy.blank("en")
    notes = []
    for path in sorted((project / "corpus" / "unlabelled").glob("*.spacy")):
        for i, doc in enumerate(DocBin().from_disk(path).get_docs(nlp.vocab)):
            if i == n:
                break
            notes.append({"id": f"{path.stem}/{doc.user_data.get('doc_id', i)}", "text": doc.text})
    return notes


def bad_folder(folder: Path, notes: list[dict]) -> None:
    folder.mkdir()
    for i, note in enumerate(notes):
        (folder / f"note{i:02d}.txt").write_text(note["text"], encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "latin1.txt").write_bytes("Patient c\xe9phal\xe9e".encode("latin-1"))
    (folder / "empty.txt").write_text("   \n")
    (folder / "nul.txt").write_bytes(b"aspirin\x00daily")


# --- reading and writing ---------------------------------------------------------------------


def test_reading_all_three_kinds_with_bad_notes(tmp_path, data_dir):
    bad_folder(tmp_path / "notes", [{"text": "Takes aspirin."}])
    got = {n.id: n.error for n in read_notes(tmp_path / "notes")}
    assert got == {
        "empty": "empty",
        "note00": None,
        "nul": "contains NUL bytes",
        "sub/latin1": "not valid UTF-8 (byte offset 9)",
    }
    lines = [
        b'{"id": "a", "text": "Takes aspirin."}',
        b"{not json",
        b'{"id": "c", "note": "x"}',
        b'{"id": "d", "text": "\xff"}',
    ]
    (tmp_path / "notes.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    got = [(n.id, n.error) for n in read_notes(tmp_path / "notes.jsonl")]
    assert got[0] == ("a", None)
    assert got[1][0] == "notes.jsonl:2" and got[1][1].startswith("line 2: not JSON")
    assert got[2] == ("c", "line 3: no string field 'text'")
    assert got[3][0] == "notes.jsonl:4" and "not valid UTF-8" in got[3][1]
    # a real CSV: ACI-Bench visit notes, text in `note`, id in `encounter_id`
    aci = data_dir / "aci_bench" / "valid.csv"
    notes = list(read_notes(aci, text_column="note", id_column="encounter_id"))
    assert len(notes) == 20 and all(n.error is None and len(n.text) > 500 for n in notes)
    assert notes[0].id == "D2N068"
    with pytest.raises(CorpusFormatError, match="no column 'text'"):
        list(read_notes(aci))


def test_csv_row_with_bytes_that_are_not_utf8_is_an_error_record(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b"id,text\n1,Takes aspirin.\n2,c\xe9phal\xe9e\n3,Denies fever.\n")
    assert [(n.id, n.error) for n in read_notes(path)] == [
        ("1", None),
        ("2", "line 3: not valid UTF-8"),
        ("3", None),
    ]


def test_resume_cuts_off_what_a_killed_run_left_half_written(tmp_path):
    out = Output(tmp_path / "out.jsonl", "jsonl")
    out.write(['{"id": "a", "entities": []}', '{"id": "b", "entities": []}'])
    with out.path.open("a") as f:
        f.write('{"id": "c", "enti')  # killed mid-line
    assert out.resume() == {"a", "b"}
    assert out.path.read_text().endswith('"b", "entities": []}\n')
    csv_out = Output(tmp_path / "out.csv", "csv")
    ent = {"start": 0, "end": 7, "label": "MEDICATION", "text": "aspirin\nlow", "code": "RXNORM:1191"}
    csv_out.write(
        [json.dumps({"id": "a", "entities": [ent, ent]}), json.dumps({"id": "b", "entities": [ent]})]
    )
    rows = list(csv.DictReader(csv_out.path.open()))
    assert [r["id"] for r in rows] == ["a", "a", "b"] and rows[0]["text"] == "aspirin low"
    # the last note's rows may be incomplete after a kill: it is redone
    assert csv_out.resume() == {"a"}
    assert [r["id"] for r in csv.DictReader(csv_out.path.open())] == ["a", "a"]


# --- the user's way: a fresh venv with the model wheel alone, then with `[extract]` -------------


EXTRAS_ADDED: list[Path] = []  # set once `extract_venv` adds the project to the wheel-alone venv


@pytest.fixture(scope="module")
def user_venv(workflow_project, tmp_path_factory) -> Path:
    """A throwaway virtual environment with only the built wheel in it (plus the CPU torch that a
    user picks first), installed as a user would: its declared requirements resolved by pip.
    `extract_venv` adds the project's `[extract]` extra to this same venv (one torch install
    instead of two), so the test of the wheel alone comes first in this file."""
    wheels = sorted((workflow_project / "packages").glob("en_clin_distilled-*/dist/*.whl"))
    assert wheels, "no wheel built by `weasel run package`"
    with zipfile.ZipFile(wheels[-1]) as wheel:
        metadata = next(wheel.read(n).decode() for n in wheel.namelist() if n.endswith("METADATA"))
    requires = [
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist")
    ]
    # what the wheel needs to import and run (onnxruntime, onnx: the encoder on CPUs without
    # native bf16; numpy<2: spaCy 3.7's binaries; threadpoolctl: the NER head's one-thread BLAS),
    # and nothing of the project (not on PyPI)
    assert {r.split(">")[0].split("<")[0].split("=")[0] for r in requires} == {
        "spacy",
        "spacy-transformers",
        "click",
        "onnxruntime",
        "onnx",
        "numpy",
        "threadpoolctl",
    }, requires
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    cmd = [str(python), "-m", "pip", "install", "--quiet", "torch==2.13.0", str(wheels[-1])]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return python


def run_python(python: Path, code: str) -> str:
    # run outside the project, as a user would (the checkout's own metadata stays out of sys.path)
    result = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=600, cwd=python.parent
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_packaged_model_installs_alone_loads_and_finds_entities(user_venv, workflow_project):
    assert not EXTRAS_ADDED, "run this test before the [extract] tests: they add the project to its venv"
    # one process, as a user's script: the default load, then the path "auto" takes on CPUs
    # without native bf16, which must run from the wheel's requirements alone
    got = json.loads(
        run_python(
            user_venv,
            "import importlib.util, json, spacy\n"
            "text = 'Patient on metformin for type 2 diabetes, complains of headache and chest pain.'\n"
            "nlp = spacy.load('en_clin_distilled')\n"
            "first = nlp.pipe_names[0]\n"
            "out = {'meta': nlp.meta, 'ents': [(e.text, e.label_) for e in nlp(text).ents],\n"
            "       'project': importlib.util.find_spec('clin_distill') is not None, 'first': first,\n"
            "       'module': type(nlp.get_pipe(first)).__module__}\n"
            "nlp = spacy.load('en_clin_distilled',"
            " config={'components': {'clin_encoder_precision': {'precision': 'onnx-int8'}}})\n"
            "doc = nlp(text)\n"
            "out['int8'] = [nlp.get_pipe('clin_encoder_precision').applied,"
            " len(doc._.trf_data.wordpieces.strings)]\n"
            "print(json.dumps(out))\n",
        )
    )
    meta = got["meta"]
    assert set(meta["labels"]["ner"]) == {"MEDICATION", "DISEASE", "SYMPTOM"}
    assert meta["teacher_combination"] and meta["evaluation"]["distilled"]["maccrobat_test"]
    assert any("MACCROBAT" in s["name"] and s["license"] == "CC BY 4.0" for s in meta["sources"])
    assert all(label in {"MEDICATION", "DISEASE", "SYMPTOM"} for _, label in got["ents"])
    if not SMALL_PROFILE:  # the small profile's 120-step student need not find any here
        assert got["ents"]
    # the inference components come from the wheel's own copy of their code: no project installed
    assert not got["project"]
    assert (got["first"], got["module"]) == ("clin_encoder_precision", "en_clin_distilled.precision")
    assert got["int8"] == ["onnx-int8", 1]
    test_set = workflow_project / "corpus" / "gold" / "maccrobat_test.spacy"
    cmd = [str(user_venv), "-m", "spacy", "evaluate", "en_clin_distilled", str(test_set)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=user_venv.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NER P" in result.stdout and "MEDICATION" in result.stdout


@pytest.fixture(scope="module")
def extract_venv(user_venv, tmp_path_factory) -> Path:
    """The wheel-alone venv plus the project's [extract] extra: CPU torch, the model wheel, the
    extra's requirements, nothing else."""
    source = tmp_path_factory.mktemp("source")
    shutil.copyfile(ROOT / "pyproject.toml", source / "pyproject.toml")
    shutil.copytree(
        ROOT / "clin_distill", source / "clin_distill", ignore=shutil.ignore_patterns("__pycache__")
    )
    EXTRAS_ADDED.append(source)
    cmd = [str(user_venv), "-m", "pip", "install", "--quiet", f"{source}[extract]"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    # installed in two goes, so check that the wheel's requirements and the extra's agree
    cmd = [str(user_venv), "-m", "pip", "check"]
    check = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout[-3000:]
    return user_venv.parent


def run_extract(bin_dir: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    cmd = [str(bin_dir / "clin-distill"), "extract", *args, "--batch-size", "4", "--flush-every", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=bin_dir, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_extract_on_a_folder_from_the_wheel(extract_venv, workflow_project, tmp_path):
    notes = real_notes(workflow_project, 4)
    bad_folder(tmp_path / "notes", notes)
    (tmp_path / "notes" / "context.txt").write_text(
        "HISTORY OF PRESENT ILLNESS: She denies chest pain. She takes metformin for type 2 diabetes mellitus."
    )
    result = run_extract(extract_venv, str(tmp_path / "notes"), "-o", str(tmp_path / "out.jsonl"))
    assert "notes/s" in result.stderr  # the tqdm bar
    assert f"{len(notes) + 4} notes" in result.stdout and "3 errors" in result.stdout
    for note in notes:  # no note text in what the command prints
        assert note["text"][:40] not in result.stdout + result.stderr
    out = {r["id"]: r for r in records(tmp_path / "out.jsonl")}
    assert set(out) == {f"note{i:02d}" for i in range(len(notes))} | {"sub/latin1", "empty", "nul", "context"}
    assert out["nul"] == {"id": "nul", "error": "contains NUL bytes"}
    ents = out["context"]["entities"]
    assert all(e["section"] == "history_of_present_illness" for e in ents)
    if not SMALL_PROFILE:  # the small profile's 120-step student need not find these two
        by_text = {e["text"].lower(): e for e in ents}
        assert by_text["chest pain"]["negated"] is True and by_text["chest pain"]["label"] == "SYMPTOM"
        metformin = by_text["metformin"]
        assert metformin["code"] == "RXNORM:6809" and metformin["code_system"] == "RxNorm"
    found = []
    for i, note in enumerate(notes):
        for e in out[f"note{i:02d}"]["entities"]:
            assert note["text"][e["start"] : e["end"]] == e["text"]  # offsets into the note as read
            found.append(e)
    assert found and sum(e["code"] is not None for e in found) / len(found) > 0.5


def test_extract_csv_to_csv_from_the_wheel(extract_venv, workflow_project, tmp_path):
    notes = real_notes(workflow_project, 4)
    with (tmp_path / "notes.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["note_id", "body"])
        writer.writeheader()
        writer.writerows({"note_id": n["id"], "body": n["text"]} for n in notes)
        writer.writerow({"note_id": "blank", "body": ""})
    args = [str(tmp_path / "notes.csv"), "-o", str(tmp_path / "out.csv"), "--text-column", "body"]
    result = run_extract(extract_venv, *args, "--id-column", "note_id")
    assert f"{len(notes) + 1} notes" in result.stdout and "1 errors" in result.stdout
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert {r["id"] for r in rows} == {n["id"] for n in notes} | {"blank"}
    (blank,) = [r["error"] for r in rows if r["id"] == "blank"]
    assert blank.startswith("line ") and blank.endswith(": empty")  # the CSV's line, not the note's text
    labelled = [r for r in rows if r["label"]]
    # the small profile's 120-step student finds a handful in these 12 notes; the default one dozens
    assert len(labelled) > (0 if SMALL_PROFILE else 10)
    assert {r["label"] for r in labelled} <= {"MEDICATION", "DISEASE", "SYMPTOM"}
    assert any(r["code"] for r in labelled) and all(r["negated"] in ("True", "False") for r in labelled)


def test_extract_jsonl_resumes_after_a_kill(extract_venv, workflow_project, tmp_path):
    notes = real_notes(workflow_project, 6)
    src = tmp_path / "notes.jsonl"
    src.write_text("".join(json.dumps(n) + "\n" for n in notes))
    run_extract(extract_venv, str(src), "-o", str(tmp_path / "whole.jsonl"))
    whole = (tmp_path / "whole.jsonl").read_text()
    assert len(whole.splitlines()) == len(notes)
    # kill a run once it has written its first batch, then rerun it
    cut = tmp_path / "cut.jsonl"
    cmd = [str(extract_venv / "clin-distill"), "extract", str(src), "-o", str(cut)]
    cmd += ["--flush-every", "2", "--batch-size", "4"]
    proc = subprocess.Popen(cmd, cwd=extract_venv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and (not cut.exists() or cut.stat().st_size == 0):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(cut.read_text().splitlines())
    assert 0 < done < len(notes)
    result = run_extract(extract_venv, str(src), "-o", str(cut))
    assert f"{done:,} already done" in result.stdout
    assert cut.read_text() == whole
    # and once complete, a rerun labels nothing
    assert (
        f"0 notes, 0 entities, 0 errors, {len(notes)} already done"
        in run_extract(extract_venv, str(src), "-o", str(cut)).stdout
    )


@pytest.mark.full
def test_medspacy_context_on_the_packaged_model(extract_venv):
    """medspaCy on top of the packaged model, installed as README says: the wheel with the
    project's `[extract]` extra (which brings medspaCy)."""
    out = run_python(
        extract_venv / "python",
        "import spacy, medspacy, json\n"
        "nlp = spacy.load('en_clin_distilled')\n"
        "nlp.add_pipe('medspacy_pysbd')\n"
        "nlp.add_pipe('medspacy_sectionizer')\n"
        "nlp.add_pipe('medspacy_context')\n"
        "doc = nlp('She denies chest pain. History of asthma.')\n"
        "print(json.dumps([[e.text, e.label_, e._.is_negated, e._.is_historical] for e in doc.ents]))\n",
    )
    ents = {
        text.lower(): (label, negated, historical) for text, label, negated, historical in json.loads(out)
    }
    assert ents.get("chest pain") == ("SYMPTOM", True, False)
    assert ents.get("asthma") == ("DISEASE", False, True)


def test_context_phrase_rules_find_medspacys_own_modifiers_on_real_notes(data_dir):
    """medspaCy's default ConText rules with their plain word patterns written out as phrases (the
    extraction pipeline's ConText) give the modifiers (category, span, scope) and entity flags of
    medspaCy's own rules on every MACCROBAT note with its gold entities; a pattern that is not
    plain words, or whose word our tokenizer splits, stays a pattern."""
    import medspacy  # noqa: F401  (registers medspacy_context)
    from medspacy.context import ConTextRule

    from clin_distill.corpora.brat import read_brat_dir
    from clin_distill.corpora.stats import CorpusStats
    from clin_distill.extract.context_rules import phrase_rules, spelled_out

    nlp = spacy.blank("en")
    sentences = nlp.add_pipe("sentencizer")
    stock = nlp.add_pipe("medspacy_context", name="stock")
    ours = nlp.add_pipe("medspacy_context", name="ours", config={"rules": None})
    ours.add(phrase_rules(ConTextRule.from_json(ours.DEFAULT_RULES_FILEPATH), nlp.tokenizer))
    assert sum(r.pattern is not None for r in ours.rules) < sum(r.pattern is not None for r in stock.rules)
    ids = sorted(p.stem for p in (data_dir / "maccrobat2020").glob("*.txt"))
    seen = {"modifiers": 0, "negated": 0}
    for doc in read_brat_dir(nlp, data_dir / "maccrobat2020", ids, CorpusStats()):
        doc = sentences(doc)
        found = []
        for context in (stock, ours):
            done = context(doc.copy())
            modifiers = sorted(
                (m.category, *m.modifier_span, *m.scope_span) for m in done._.context_graph.modifiers
            )
            flags = [(e.start, e.end, e._.is_negated, e._.is_historical, e._.is_hypothetical, e._.is_family,
                      e._.is_uncertain) for e in done.ents]  # fmt: skip
            found.append((modifiers, flags))
        assert found[0] == found[1], doc.user_data.get("doc_id")
        seen["modifiers"] += len(found[0][0])
        seen["negated"] += sum(f[2] for f in found[0][1])
    assert len(ids) == 200 and seen["modifiers"] > 500 and seen["negated"] > 50
    words = [{"LOWER": {"IN": ["adequate", "sufficient"]}}, {"LOWER": "to"}, {"LOWER": "pt", "OP": "?"}]
    assert spelled_out(words) == [["adequate", "to", "pt"], ["adequate", "to"], ["sufficient", "to", "pt"],
                                  ["sufficient", "to"]]  # fmt: skip
    assert spelled_out([{"LOWER": {"REGEX": "^no"}}]) is None and spelled_out([{"LEMMA": "deny"}]) is None
    split = ConTextRule("don't", "NEGATED_EXISTENCE", pattern=[{"LOWER": {"IN": ["don't", "no"]}}])
    assert phrase_rules([split], nlp.tokenizer) == [split]  # "don't" is two tokens: a phrase would match them


# --- Ray ------------------------------------------------------------------------------------


def test_ray_output_identical_to_one_process(workflow_project, tmp_path):
    import ray

    notes = real_notes(workflow_project, 4)
    src = tmp_path / "notes.jsonl"
    src.write_text("".join(json.dumps(n) + "\n" for n in notes) + '{"id": "bad", "text": ""}\n')
    model = str(workflow_project / PACKAGED)
    single = extract(read_notes(src), Output(tmp_path / "single.jsonl", "jsonl"), model, 4, progress=False)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        on_ray = extract(
            read_notes(src), Output(tmp_path / "ray.jsonl", "jsonl"), model, 4,
            progress=False, ray_address="local", ray_workers=2,
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "single.jsonl").read_bytes()
    assert (on_ray.notes, on_ray.entities, on_ray.errors) == (single.notes, single.entities, 1)
    assert single.entities > 0


@pytest.mark.full
def test_extract_benchmark_over_all_unlabelled_notes(workflow_project):
    """`bench` ran `benchmark-extract` over the 2,213 notes: Ray identical, one process fast."""
    report = json.loads((workflow_project / "reports" / "extract.json").read_text())
    assert report["notes"] == 2213
    assert all(run["identical_to_single"] for run in report["runs"].values())
    assert report["ratio_to_model"] >= 0.8
