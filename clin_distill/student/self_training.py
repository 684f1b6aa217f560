"""Training the distilled student: model selection on gold dev and self-training rounds.

BOND (Liang et al. 2020): a student trained on distant labels relabels its own training texts;
its confident new spans join the labels and a new student trains on them, round after round,
stopped early when held-out gold F1 stops rising. Here a span's confidence is the probability
mass of spaCy's beam search over the greedy-trained NER (`EntityRecognizer.beam_parse` +
`scored_ents`); the teachers veto what calibration found wrong (the corpus's incorrect spans
and every occurrence of a term calibration dropped). Each round trains from scratch on the
same seed. The round loop is written here: spaCy's trainer runs one training, and no maintained
library runs BOND's loop over a spaCy pipeline.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import spacy
from spacy.cli.train import train as spacy_train
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.util import minibatch
from tqdm import tqdm

from ..combine.partial import INCORRECT_SPANS_KEY, Vetoes
from .backbone import check_encoder_layers, resolve_transformer
from .windows import ARCHITECTURE  # noqa: F401  (registers the student's encoder)


def student_overrides(
    transformer: str,
    encoder_layers: int,
    max_steps: int,
    eval_frequency: int,
    gpu_id: int,
    stop_list: Path | None = None,
) -> dict[str, Any]:
    """The config overrides of the distilled student's trainings (train-distilled, ablation):
    `stop_list` gives the filter after `ner` its terms. Raises ValueError when the backbone has
    fewer than `encoder_layers` layers."""
    backbone = resolve_transformer(transformer)
    check_encoder_layers(backbone, encoder_layers)
    overrides: dict[str, Any] = {
        "paths.transformer": backbone,
        "training.max_steps": max_steps,
        "training.eval_frequency": eval_frequency,
        "components.ner.incorrect_spans_key": INCORRECT_SPANS_KEY,
        "gpu_id": gpu_id,
    }
    if stop_list is not None:
        overrides["paths.stop_list"] = str(stop_list)
    if encoder_layers:
        overrides["components.transformer.model.transformer_config.num_hidden_layers"] = encoder_layers
    return overrides


def train_once(
    config: Path, output: Path, train_path: Path, dev_path: Path, overrides: dict[str, Any]
) -> float:
    """One `spacy train` run; returns model-best's dev ents_f (what spaCy selected it by)."""
    overrides = dict(overrides)
    gpu_id = overrides.pop("gpu_id", -1)
    overrides.update({"paths.train": str(train_path), "paths.dev": str(dev_path)})
    spacy_train(config, output, use_gpu=gpu_id, overrides=overrides)
    meta = json.loads((output / "model-best" / "meta.json").read_text())
    return float(meta["performance"]["ents_f"])


def chosen(round_dir: Path) -> Path:
    """The round's model-best, or model-last when no checkpoint scored above 0 on dev: spaCy keeps
    the first of tied checkpoints, the untrained one (a short run on gold dev, as in the test
    suite's small profile)."""
    meta = json.loads((round_dir / "model-best" / "meta.json").read_text())
    return round_dir / ("model-best" if meta["performance"]["ents_f"] > 0 else "model-last")


def confident_spans(
    nlp: Language, docs: Sequence[Doc], threshold: float, beam_width: int = 16, batch_size: int = 16
) -> Iterable[list[Span]]:
    """Per doc, the spans whose beam probability is at least `threshold`, on the doc's own tokens
    (non-overlapping, most probable first)."""
    ner = nlp.get_pipe("ner")
    others = [name for name, _ in nlp.pipeline if name != "ner"]
    for batch in minibatch(docs, batch_size):
        copies = [
            Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in batch
        ]
        copies = list(nlp.pipe(copies, disable=[n for n, _ in nlp.pipeline if n not in others]))
        beams = ner.beam_parse(copies, beam_width=beam_width)
        for doc, scores in zip(batch, ner.scored_ents(beams), strict=True):
            taken = [False] * len(doc)
            spans = []
            for (start, end, label), p in sorted(scores.items(), key=lambda kv: -kv[1]):
                if p < threshold or any(taken[start:end]):
                    continue
                taken[start:end] = [True] * (end - start)
                spans.append(Span(doc, start, end, label=label))
            yield sorted(spans, key=lambda s: s.start)


def add_student_spans(doc: Doc, spans: Sequence[Span], vetoes: Sequence[Span]) -> list[Span]:
    """Add the student's spans that overlap no entity and no vetoed span of their label; missing
    tokens elsewhere stay missing. Returns what was added."""
    taken = [t.ent_iob_ in ("B", "I") for t in doc]
    vetoed = {(v.start, v.end, v.label_) for v in (*vetoes, *doc.spans.get(INCORRECT_SPANS_KEY, []))}
    new = [
        Span(doc, s.start, s.end, label=s.label_)
        for s in spans
        if not any(taken[s.start : s.end]) and (s.start, s.end, s.label_) not in vetoed
    ]
    if new:
        doc.set_ents(new, default="unmodified")
    return new


def relabel(
    model: Path,
    train_path: Path,
    out_path: Path,
    drops: dict[str, set[str]],
    threshold: float,
    beam_width: int,
) -> Counter:
    """The student at `model` relabels the corpus at `train_path`; written to `out_path`. Returns
    the spans added per label."""
    nlp = spacy.load(model)
    docs = list(DocBin().from_disk(train_path).get_docs(nlp.vocab))
    vetoes = Vetoes(nlp.vocab, drops)
    added: Counter = Counter()
    bar = tqdm(total=len(docs), desc=f"relabel ({model.parent.name})", unit="doc")
    for doc, spans in zip(docs, confident_spans(nlp, docs, threshold, beam_width), strict=True):
        added.update(s.label_ for s in add_student_spans(doc, spans, vetoes(doc)))
        bar.update()
    bar.close()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=True).to_disk(out_path)
    return added


def self_train(
    config: Path,
    output: Path,
    train_path: Path,
    dev_path: Path,
    overrides: dict[str, Any],
    rounds: int,
    threshold: float,
    drops: dict[str, set[str]],
    beam_width: int = 16,
    round0: Path | None = None,
) -> dict[str, Any]:
    """Round 0 trains on `train_path` (or is copied from `round0`, a finished training of the same
    corpus and settings); each further round trains on the best student's relabelling of it,
    while gold dev F1 (`dev_path`) rises. output/model-best is the best round's student;
    output/self_training.json the rounds' dev F1 and added spans."""
    history = []
    if round0 is not None:
        shutil.copytree(round0, output / "round0", dirs_exist_ok=True)
        meta = json.loads((output / "round0" / "model-best" / "meta.json").read_text())
        dev_f = float(meta["performance"]["ents_f"])
    else:
        dev_f = train_once(config, output / "round0", train_path, dev_path, dict(overrides))
    history.append({"round": 0, "dev_ents_f": round(dev_f, 4), "added": {}})
    best, best_f = 0, dev_f
    for r in range(1, rounds + 1):
        corpus = output / f"round{r}" / "train.spacy"
        added = relabel(chosen(output / f"round{best}"), train_path, corpus, drops, threshold, beam_width)
        dev_f = train_once(config, output / f"round{r}", corpus, dev_path, dict(overrides))
        history.append({"round": r, "dev_ents_f": round(dev_f, 4), "added": dict(sorted(added.items()))})
        if dev_f <= best_f:
            break  # BOND's early stopping: gold dev F1 stopped rising
        best, best_f = r, dev_f
    if (output / "model-best").exists():
        shutil.rmtree(output / "model-best")
    shutil.copytree(chosen(output / f"round{best}"), output / "model-best")
    summary = {"rounds": rounds, "threshold": threshold, "best_round": best, "history": history}
    (output / "self_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
