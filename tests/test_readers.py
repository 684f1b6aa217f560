"""Readers on the real corpora: published counts, accounting, round trips."""

from __future__ import annotations

import csv
import io

import pytest
from spacy.tokens import DocBin

from clin_distill.corpora.brat import brat_doc_ids, read_brat_dir
from clin_distill.corpora.notes import NOTE_SOURCES, read_csv_column, read_notes
from clin_distill.corpora.pubtator import BC5CDR_LABELS, NCBI_LABELS, read_pubtator
from clin_distill.corpora.stats import CorpusStats
from clin_distill.labels import GOLD_SPANS_KEY

# Mentions that left the span group for a counted reason.
DROPPED_REASONS = (
    "duplicate_span",
    "unalignable",
    "empty_after_trim",
    "mention_in_empty_document",
    "mention_in_duplicate_pmid",
)


def assert_accounted(stats: CorpusStats, mapped_types: set[str]) -> None:
    """Every mapped raw mention is in the span group or has a reason; every span is in ents or overlaps."""
    mapped = sum(n for t, n in stats.raw_types.items() if t in mapped_types)
    assert mapped == sum(stats.spans.values()) + sum(stats.skipped[r] for r in DROPPED_REASONS)
    assert sum(stats.spans.values()) == sum(stats.entities.values()) + stats.skipped["overlap_not_in_ents"]
    assert sum(stats.raw_types.values()) - mapped == sum(stats.ignored_types.values())


def test_maccrobat_published_counts(nlp, data_dir):
    stats = CorpusStats()
    ids = brat_doc_ids(data_dir / "maccrobat2020")
    docs = list(read_brat_dir(nlp, data_dir / "maccrobat2020", ids, stats))
    assert len(ids) == len(docs) == 200
    assert stats.raw_types["Sign_symptom"] == 3382
    assert stats.raw_types["Disease_disorder"] == 1362
    assert stats.raw_types["Medication"] == 1080
    assert stats.adjustments["discontinuous_joined"] == 6
    assert len(stats.ignored_types) == 38  # the other entity types are counted, not read
    assert_accounted(stats, {"Sign_symptom", "Disease_disorder", "Medication"})
    # Overlaps stay in the span group; ents never overlap.
    for doc in docs:
        tokens = [i for e in doc.ents for i in range(e.start, e.end)]
        assert len(tokens) == len(set(tokens))
        assert set(doc.ents) <= set(doc.spans[GOLD_SPANS_KEY])


@pytest.mark.parametrize(
    ("folder", "name", "labels", "expected"),
    [
        ("bc5cdr", "CDR_TestSet.PubTator.txt", BC5CDR_LABELS, {"Chemical": 5385, "Disease": 4424}),
        ("bc5cdr", "CDR_TrainingSet.PubTator.txt", BC5CDR_LABELS, {"Chemical": 5203, "Disease": 4182}),
        ("ncbi_disease", "NCBItestset_corpus.txt", NCBI_LABELS, {"total": 960}),
        ("ncbi_disease", "NCBItrainset_corpus.txt", NCBI_LABELS, {"total": 5145}),
    ],
)
def test_pubtator_published_counts(nlp, data_dir, folder, name, labels, expected):
    stats = CorpusStats()
    docs = list(read_pubtator(nlp, data_dir / folder / name, labels, stats))
    if "total" in expected:
        assert sum(stats.raw_types.values()) == expected["total"]
    else:
        assert dict(stats.raw_types) == expected
    assert_accounted(stats, set(labels))
    assert len(docs) == (592 if name.startswith("NCBItrain") else 500 if folder == "bc5cdr" else 100)
    if name.startswith("NCBItrain"):  # PMID 8528200 appears twice; kept once
        assert stats.skipped["duplicate_pmid"] == 1
        assert [d.user_data["doc_id"] for d in docs].count("8528200") == 1


def test_pubtator_keeps_concepts_and_category(nlp, data_dir):
    doc = next(
        read_pubtator(nlp, data_dir / "bc5cdr" / "CDR_TestSet.PubTator.txt", BC5CDR_LABELS, CorpusStats())
    )
    first = doc.spans[GOLD_SPANS_KEY][0]
    assert (first.text, first.label_, first.kb_id_, first._.source_type) == (
        "Famotidine",
        "MEDICATION",
        "D015738",
        "Chemical",
    )
    ncbi = next(
        read_pubtator(nlp, data_dir / "ncbi_disease" / "NCBItestset_corpus.txt", NCBI_LABELS, CorpusStats())
    )
    assert {s._.source_type for s in ncbi.spans[GOLD_SPANS_KEY]} <= set(NCBI_LABELS)
    assert ncbi.spans[GOLD_SPANS_KEY][0]._.source_type == "Modifier"


def test_docbin_round_trip(nlp, data_dir, tmp_path):
    stats = CorpusStats()
    ids = brat_doc_ids(data_dir / "maccrobat2020")[:10]
    docs = list(read_brat_dir(nlp, data_dir / "maccrobat2020", ids, stats))
    DocBin(docs=docs, store_user_data=True).to_disk(tmp_path / "x.spacy")
    back = list(DocBin().from_disk(tmp_path / "x.spacy").get_docs(nlp.vocab))
    assert len(back) == len(docs)
    for a, b in zip(docs, back, strict=True):
        assert a.text == b.text
        assert [(e.start, e.end, e.label_) for e in a.ents] == [(e.start, e.end, e.label_) for e in b.ents]
        ga, gb = a.spans[GOLD_SPANS_KEY], b.spans[GOLD_SPANS_KEY]
        assert [(s.start, s.end, s.label_, s._.source_type) for s in ga] == [
            (s.start, s.end, s.label_, s._.source_type) for s in gb
        ]
        assert b.user_data["doc_id"] == a.user_data["doc_id"]


def test_unlabelled_notes(nlp, data_dir):
    counts = {}
    for name in ("aci_bench", "mts_dialog", "mtsamples"):
        stats = CorpusStats()
        docs = list(read_notes(nlp, data_dir, [s for s in NOTE_SOURCES if s.name == name], stats))
        assert all(d.text.strip() and not d.ents for d in docs)
        assert len({d.text.strip() for d in docs}) == len(docs)
        counts[name] = (len(docs), dict(stats.skipped))
    # Raw rows: ACI-Bench 207, MTS-Dialog 1,701, MTSamples 520; every row not kept has a reason.
    assert counts["aci_bench"][0] + sum(counts["aci_bench"][1].values()) == 207
    assert counts["mts_dialog"][0] + sum(counts["mts_dialog"][1].values()) == 1701
    assert counts["mtsamples"][0] + sum(counts["mtsamples"][1].values()) == 520


def test_strict_csv_reads_the_real_exports_as_a_lenient_reader_does(data_dir):
    # Strict quoting, field counts and id checks (notes.py) must not change what the real files give.
    for source in NOTE_SOURCES:
        for rel in source.files:
            path = data_dir / rel
            lenient = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
            assert all(None not in row and None not in row.values() for row in lenient)  # field counts right
            strict = list(read_csv_column(path, source.text_column, source.id_column))
            assert [text for _, _, text in strict] == [row[source.text_column] for row in lenient]
