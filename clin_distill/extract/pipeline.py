"""The extraction pipeline: the packaged model (its NER and `clin_linker`), then medspaCy.

medspaCy's sectionizer and ConText run after the model, on the sentences of its `sentencizer`
(ConText scopes its cues by sentence; one is added for a model without sentences). One record per
note: its id, and per entity the offsets, label, text, code, code system, ConText flags and the
section it is in.
"""

from __future__ import annotations

import json
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc

# The packaged model's own components, registered here too, so that a model may also be given as
# a pipeline folder (training/..., or the data folder inside the package) rather than a package.
from ..linking import linker  # noqa: F401
from ..student import memory, precision, tokenizer, windows  # noqa: F401
from .context_rules import phrase_rules

DEFAULT_MODEL = "en_clin_distilled"
CONTEXT_FLAGS = {
    "negated": "is_negated",
    "historical": "is_historical",
    "hypothetical": "is_hypothetical",
    "family": "is_family",
}
ENTITY_FIELDS = [
    "start", "end", "label", "text", "code", "code_system",
    "negated", "historical", "hypothetical", "family", "section", "section_title",
]  # fmt: skip


def build_pipeline(model: str = DEFAULT_MODEL, context: bool = True, sections: bool = True) -> Language:
    """`spacy.load(model)` plus sentences, medspaCy's sectionizer and ConText (its default rules,
    the plain word patterns among them matched as phrases: same modifiers, a tenth of the time), and
    `clin_extract_entities`, which turns each doc's entities into plain records."""
    nlp = spacy.load(model)
    if context or sections:
        import medspacy  # noqa: F401 - registers medspaCy's factories

        if not {"sentencizer", "senter", "parser"} & set(nlp.pipe_factories.values()):
            nlp.add_pipe("sentencizer", name="clin_sentences")
        if sections:
            nlp.add_pipe("medspacy_sectionizer")
        if context:
            from medspacy.context import ConTextRule

            ctx = nlp.add_pipe("medspacy_context", config={"rules": None})
            ctx.add(phrase_rules(ConTextRule.from_json(ctx.DEFAULT_RULES_FILEPATH), nlp.tokenizer))
    nlp.add_pipe(RECORDS_FACTORY)
    return nlp


RECORDS_FACTORY = "clin_extract_entities"


@Language.component(RECORDS_FACTORY)
def extract_entities(doc: Doc) -> Doc:
    """Last pipe: the entity records into `doc.user_data["clin_entities"]`, and nothing else there.

    medspaCy keeps Section objects in user_data, which `nlp.pipe(n_process>1)` and Ray cannot send
    between processes; the records are all the output needs.
    """
    records = [entity_record(e) for e in doc.ents]
    doc.user_data.clear()
    doc.user_data["clin_entities"] = records
    doc.user_data["clin_words"] = sum(1 for t in doc if not t.is_space)  # as every report counts words
    return doc


def entity_record(ent: Any) -> dict[str, Any]:
    span_ext = ent._
    section_title = getattr(span_ext, "section_title", None) if ent.has_extension("section_title") else None
    record: dict[str, Any] = {
        "start": ent.start_char,
        "end": ent.end_char,
        "label": ent.label_,
        "text": ent.text,
        "code": ent.kb_id_ or None,
        "code_system": span_ext.code_system if ent.has_extension("code_system") else None,
    }
    for field, attr in CONTEXT_FLAGS.items():
        record[field] = bool(getattr(span_ext, attr)) if ent.has_extension(attr) else None
    record["section"] = span_ext.section_category if ent.has_extension("section_category") else None
    record["section_title"] = section_title.text.strip() if section_title is not None else None
    return record


def note_record(note_id: str, doc: Doc | None = None, error: str | None = None) -> str:
    """One output line: {"id", "entities"} or {"id", "error"} as compact JSON."""
    if error is not None:
        return json.dumps({"id": note_id, "error": error}, ensure_ascii=False)
    assert doc is not None
    return json.dumps({"id": note_id, "entities": doc.user_data["clin_entities"]}, ensure_ascii=False)
