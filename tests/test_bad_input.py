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


def read_csv_notes(nlp, folder, content):
    """Write `content` as `n.csv` (columns id, note) and read it: (docs, stats)."""
    (folder / "n.csv").write_text(content, encoding="utf-8")
    stats = CorpusStats()
    docs = list(read_notes(nlp, folder, [NoteSource("x", ("n.csv",), "note", "id")], stats))
    return docs, stats


def assert_csv_fails(nlp, folder, content, message, line):
    with pytest.raises(CorpusFormatError, match=message) as err:
        read_csv_notes(nlp, folder, content)
    assert str(err.value).startswith(f"{folder / 'n.csv'}:{line}:")


def test_notes_unclosed_quote_names_file_and_line(nlp, tmp_path):
    # The quote opened on line 2 is never closed: csv would read lines 2-4 as one note.
    assert_csv_fails(nlp, tmp_path, 'id,note\n1,"Chest pain.\n2,Fever.\n3,Cough.\n', "unclosed quote", 2)


def test_notes_quote_closed_inside_a_field_names_the_line(nlp, tmp_path):
    content = 'id,note\n1,"Chest pain.\n2,Fever.\n3,"Cough."\n'
    assert_csv_fails(nlp, tmp_path, content, "record starting at line 2", 4)


@pytest.mark.parametrize(
    ("row", "message"),
    [("2,Fever.,extra", "has 3 fields, the header has 2"), ("2", "has 1 field, the header has 2")],
)
def test_notes_wrong_field_count_names_file_and_line(nlp, tmp_path, row, message):
    assert_csv_fails(nlp, tmp_path, f"id,note\n1,Chest pain.\n{row}\n3,Cough.\n", message, 3)


def test_notes_duplicate_id_fails_unless_an_exact_repeat(nlp, tmp_path):
    docs, stats = read_csv_notes(nlp, tmp_path, "id,note\n1,Chest pain.\n1,Chest pain.\n2,Fever.\n")
    assert [d.user_data["doc_id"] for d in docs] == ["n:1", "n:2"]
    assert dict(stats.skipped) == {"duplicate_text": 1}
    content = "id,note\n1,Chest pain.\n2,Fever.\n1,Cough.\n"
    assert_csv_fails(nlp, tmp_path, content, "id '1' already on line 2, with a different note", 4)


def test_notes_missing_id_column_and_repeated_column_fail(nlp, tmp_path):
    assert_csv_fails(nlp, tmp_path, "ID,note\n1,Chest pain.\n", "no column 'id'", 1)
    twice = "id,note,note\n1,Chest pain.,Fever.\n"
    assert_csv_fails(nlp, tmp_path, twice, "column 'note' appears 2 times", 1)


def test_notes_blank_lines_are_counted(nlp, tmp_path):
    docs, stats = read_csv_notes(nlp, tmp_path, "id,note\n1,Chest pain.\n\n2,Fever.\n\n")
    assert len(docs) == 2 and dict(stats.skipped) == {"blank_line": 2}


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("T3\tMedication 23 32;0 8\tibuprofen Headache", "ascending order"),
        ("T3\tSign_symptom 0 8;4 8\tHeadache ache", "ascending order"),
        ("T3\tMedication -10 -1\tibuprofen", "negative offset"),
        ("T3\tSign_symptom 0 0_8\tHeadache", "offsets are not integers"),  # int() reads "0_8" as 8
        ("T3\tMedication 23 32;-33 -25\tibuprofen Headache", "negative offset"),
        ("T1\tMedication 23 32\tibuprofen", "annotation id T1 already on line 1"),
    ],
)
def test_bad_fragments_name_file_and_line(nlp, tmp_path, bad_line, message):
    # Reversed fragments used to raise spaCy's IndexError E035; negative ones passed validation.
    write_brat(tmp_path, "d1", "Headache, treated with ibuprofen.", GOOD_ANN + bad_line + "\n")
    with pytest.raises(CorpusFormatError, match=message) as err:
        list(read_brat_dir(nlp, tmp_path, ["d1"], CorpusStats()))
    assert str(err.value).startswith(f"{tmp_path / 'd1.ann'}:3:")


LONG = "pain " * 200_001  # 1,000,005 characters: spaCy's E088, without a file name, before


def test_long_brat_text_names_the_file(nlp, tmp_path):
    write_brat(tmp_path, "d1", LONG, "")
    with pytest.raises(CorpusFormatError, match="1,000,005 characters, over nlp.max_length") as err:
        list(read_brat_dir(nlp, tmp_path, ["d1"], CorpusStats()))
    assert str(err.value).startswith(f"{tmp_path / 'd1.txt'}:1:")


def test_long_pubtator_and_note_texts_name_file_and_line(nlp, tmp_path):
    path = tmp_path / "x.PubTator.txt"
    path.write_text(PUBTATOR + f"3|t|Title\n3|a|{LONG}\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="document 3 has 1,000,011 characters") as err:
        list(read_pubtator(nlp, path, BC5CDR_LABELS, CorpusStats()))
    assert str(err.value).startswith(f"{path}:10:")
    long_note = f"id,note\n1,Chest pain.\n2,{LONG}\n"
    assert_csv_fails(nlp, tmp_path, long_note, "document 2 has 1,000,005 characters", 3)


def test_raised_max_length_is_followed(tmp_path):
    import spacy

    small = spacy.blank("en")
    small.max_length = 20
    write_brat(tmp_path, "d1", "Headache, treated with ibuprofen.", GOOD_ANN)
    with pytest.raises(CorpusFormatError, match="over nlp.max_length"):
        list(read_brat_dir(small, tmp_path, ["d1"], CorpusStats()))
    small.max_length = 33
    assert len(list(read_brat_dir(small, tmp_path, ["d1"], CorpusStats()))) == 1


@pytest.mark.parametrize("char", ["\x00", "\x0c", "\x1b", "\x7f", "\x85"])
def test_control_character_in_brat_text_is_rejected(nlp, tmp_path, char):
    text = f"Headache, treated\nwith chest{char}pain."
    write_brat(tmp_path, "d1", text, "T1\tSign_symptom 0 8\tHeadache\n")
    with pytest.raises(CorpusFormatError, match=f"control character U\\+{ord(char):04X} at character 28"):
        list(read_brat_dir(nlp, tmp_path, ["d1"], CorpusStats()))
    with pytest.raises(CorpusFormatError) as err:
        list(read_brat_dir(nlp, tmp_path, ["d1"], CorpusStats()))
    assert str(err.value).startswith(f"{tmp_path / 'd1.txt'}:2:")
    assert "chest" not in str(err.value)  # the place, never the text


def test_tab_and_line_breaks_are_not_control_characters(nlp, tmp_path):
    write_brat(tmp_path, "d1", "Headache,\ttreated\r\nwith\nibuprofen.", "T1\tSign_symptom 0 8\tHeadache\n")
    assert len(list(read_brat_dir(nlp, tmp_path, ["d1"], CorpusStats()))) == 1


@pytest.mark.parametrize(("kind", "line"), [("t", 10), ("a", 11)])
def test_control_character_in_pubtator_is_rejected(nlp, tmp_path, kind, line):
    path = tmp_path / "x.PubTator.txt"
    title, abstract = ("chest\x00pain", "Six.") if kind == "t" else ("Title", "chest\x00pain")
    path.write_text(PUBTATOR + f"3|t|{title}\n3|a|{abstract}\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="document 3: control character U\\+0000") as err:
        list(read_pubtator(nlp, path, BC5CDR_LABELS, CorpusStats()))
    assert str(err.value).startswith(f"{path}:{line}:")


def test_control_character_in_note_is_rejected(nlp, tmp_path):
    content = 'id,note\n1,Fever.\n7,"Line one\r\nchest\x00pain"\n'  # the NUL is on line 4
    assert_csv_fails(nlp, tmp_path, content, "document 7: control character U\\+0000 at character 15", 4)


def test_pubtator_repeated_pmid_fails_unless_an_exact_repeat(nlp, tmp_path):
    path = tmp_path / "x.PubTator.txt"
    path.write_text(PUBTATOR + PUBTATOR.split("\n\n")[0] + "\n\n", encoding="utf-8")
    stats = CorpusStats()
    assert len(list(read_pubtator(nlp, path, BC5CDR_LABELS, stats))) == 1
    assert stats.skipped["duplicate_pmid"] == 1 and stats.skipped["mention_in_duplicate_pmid"] == 2
    path.write_text(PUBTATOR + "1|t|Famotidine.\n1|a|Other.\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="PMID 1 already on line 1 with other content") as err:
        list(read_pubtator(nlp, path, BC5CDR_LABELS, CorpusStats()))
    assert str(err.value).startswith(f"{path}:10:")
