"""Malformed input fails naming file and line; empty documents are skipped and counted."""

from __future__ import annotations

import pytest

from clin_distill.corpora.brat import read_brat_dir
from clin_distill.corpora.notes import NoteSource, read_notes
from clin_distill.corpora.pubtator import BC5CDR_LABELS, read_pubtator
from clin_distill.corpora.stats import CorpusStats
from clin_distill.errors import CorpusFormatError

GOOD_ANN = "T1\tSign_symptom 0 8\tHeadache\nT2\tMedication 23 32\tibuprofen\n"


def write_brat(folder, doc_id, text, ann):
    (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    (folder / f"{doc_id}.ann").write_text(ann, encoding="utf-8")


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("T3\tSign_symptom 0 x\tHeadache", "offsets are not integers"),
        ("T3\tSign_symptom 0 8", "3 tab-separated fields"),
        ("T3\tSign_symptom\tHeadache", "missing entity type or offsets"),
        ("T3\tSign_symptom 8 0\tHeadache", "start <= end"),
        ("T3\tSign_symptom 0 8\tHeartburn", "does not match the document"),
        ("T3\tSign_symptom 0 99\tHeadache", "past the end of the text"),
    ],
)
def test_malformed_ann_line_names_file_and_line(nlp, tmp_path, bad_line, message):
    write_brat(
        tmp_path,
        "d1",
        "Headache, treated with ibuprofen.",
        GOOD_ANN + "R1\tX Arg1:T1 Arg2:T2\n" + bad_line + "\n",
    )
    with pytest.raises(CorpusFormatError, match=message) as err:
        list(read_brat_dir(nlp, tmp_path, ["d1"], CorpusStats()))
    assert str(err.value).startswith(f"{tmp_path / 'd1.ann'}:4:")
    assert err.value.line == 4


def test_brat_reads_good_file_and_counts_empty_document(nlp, tmp_path):
    write_brat(tmp_path, "d1", "Headache, treated with ibuprofen.", GOOD_ANN)
    write_brat(tmp_path, "d2", "  \n", "")
    stats = CorpusStats()
    docs = list(read_brat_dir(nlp, tmp_path, ["d1", "d2"], stats))
    assert [(e.text, e.label_) for e in docs[0].ents] == [
        ("Headache", "SYMPTOM"),
        ("ibuprofen", "MEDICATION"),
    ]
    assert stats.docs == 1 and stats.skipped["empty_document"] == 1


def test_offsets_inside_tokens_are_expanded_and_counted(nlp, tmp_path):
    # "ibuprof" ends inside the token "ibuprofen": widened to the whole token, counted.
    write_brat(tmp_path, "d1", "Headache, treated with ibuprofen.", "T1\tMedication 23 30\tibuprof\n")
    stats = CorpusStats()
    doc = next(read_brat_dir(nlp, tmp_path, ["d1"], stats))
    assert doc.ents[0].text == "ibuprofen"
    assert stats.adjustments["expanded_to_tokens"] == 1 and stats.adjusted_spans == 1


def test_non_utf8_names_the_file(nlp, tmp_path):
    (tmp_path / "d1.txt").write_bytes("Fi\xe8vre".encode("latin-1"))
    (tmp_path / "d1.ann").write_text("", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="not valid UTF-8") as err:
        list(read_brat_dir(nlp, tmp_path, ["d1"], CorpusStats()))
    assert str(tmp_path / "d1.txt") in str(err.value)


PUBTATOR = (
    "1|t|Famotidine delirium.\n1|a|Six cases.\n"
    "1\t0\t10\tFamotidine\tChemical\tD015738\n1\t11\t19\tdelirium\tDisease\tD003693\n"
    "1\tCID\tD015738\tD003693\n\n"
    "2|t|\n2|a|\n\n"
)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1\t0\tten\tFamotidine\tChemical\tD015738", "offsets are not integers"),
        ("1\t0\t10\tFamotidine\tChemical", "6 or 7 tab-separated fields"),
        ("1\t0\t10\tFamotidinX\tChemical\tD015738", "does not match"),
        ("1\t0\t99\tFamotidine\tChemical\tD015738", "outside the document"),
        ("9\t0\t10\tFamotidine\tChemical\tD015738", "outside its document"),
        ("1|x|what", "PMID|t|title"),
    ],
)
def test_malformed_pubtator_line_names_file_and_line(nlp, tmp_path, bad_line, message):
    path = tmp_path / "x.PubTator.txt"
    lines = PUBTATOR.split("\n")
    lines.insert(4, bad_line)
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=message) as err:
        list(read_pubtator(nlp, path, BC5CDR_LABELS, CorpusStats()))
    assert f"{path}:5:" in str(err.value)


def test_pubtator_good_file_and_empty_document(nlp, tmp_path):
    path = tmp_path / "x.PubTator.txt"
    path.write_text(PUBTATOR, encoding="utf-8")
    stats = CorpusStats()
    docs = list(read_pubtator(nlp, path, BC5CDR_LABELS, stats))
    assert [(e.text, e.label_, e.kb_id_) for e in docs[0].ents] == [
        ("Famotidine", "MEDICATION", "D015738"),
        ("delirium", "DISEASE", "D003693"),
    ]
    assert stats.docs == 1 and stats.skipped["empty_document"] == 1


def test_notes_missing_column_and_empty_rows(nlp, tmp_path):
    (tmp_path / "n.csv").write_text("id,note\n1,Chest pain.\n2,\n3,Chest pain.\n", encoding="utf-8")
    stats = CorpusStats()
    docs = list(read_notes(nlp, tmp_path, [NoteSource("x", ("n.csv",), "note", "id")], stats))
    assert [d.user_data["doc_id"] for d in docs] == ["n:1"]
    assert dict(stats.skipped) == {"empty_document": 1, "duplicate_text": 1}
    with pytest.raises(CorpusFormatError, match="no column 'text'") as err:
        list(read_notes(nlp, tmp_path, [NoteSource("x", ("n.csv",), "text")], CorpusStats()))
    assert str(tmp_path / "n.csv") in str(err.value)
