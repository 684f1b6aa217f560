"""`clin_linker`: codes for predicted entities, from the lexicons the ontology teachers use.

Sets `ent.kb_id_` (a CURIE such as "RXNORM:6809", "ICD10CM:E11.9", "DOID:9352", "HP:0002315"),
`ent._.code_system` ("RxNorm", "ICD-10-CM", ...) and `ent._.codes`: every code the lexicons and
their cross-references give the term (the first is kb_id; MeSH, UMLS and SNOMED CT ids follow where
known). A mention is looked up as written (lower-cased), singular and as the noun of an adjective;
the codes of its longest word n-gram the table knows follow ("severe essential hypertension" ->
"essential hypertension"), and are all it gets when no form of the whole mention is known; an
abbreviation defined in the note ("angiotensin-converting enzyme (ACE)") takes its long form's
codes. The table is built by `weasel run linker` (clin_distill/linking/table.py) and stored
inside the component (to_disk/from_disk), so the packaged model carries it.

This file ships inside the packaged model (`spacy package --code`), so it imports only spaCy,
NumPy and srsly, and registers its factory and extensions once when imported under two names.
The abbreviation finder is a short Schwartz & Hearst (2003) matcher written here because the
maintained one (scispaCy's AbbreviationDetector, used by the teachers) would make the model wheel
depend on scispaCy and its scikit-learn/nmslib stack.

The same finder drives `clin_abbreviations`, the student's pipe after `clin_merge_adjacent`
(configs/student.cfg): every occurrence of a short form defined in the note takes the label of the
entity that ends its long form, as the ontology teachers' abbreviation step does for their spans.
The student labels a short form from the words of its window, which often lack the definition
("streptozotocin (STZ)" early in an abstract, "STZ" alone later). On gold dev, over the three seeds
of the default student, the step lifted strict F1 on BC5CDR chemicals by .029, BC5CDR diseases .025,
NCBI .024 and MACCROBAT's labels .004-.011 (reports/experiments.md).
"""

import hashlib
import re
from pathlib import Path

import numpy as np
import srsly
from spacy.attrs import ORTH
from spacy.language import Language
from spacy.tokens import Doc, Span

FACTORY = "clin_linker"
ABBREVIATIONS_FACTORY = "clin_abbreviations"
DEFAULT_TABLES = {"MEDICATION": "rxnorm", "DISEASE": "snomed", "SYMPTOM": "snomed"}
CODE_SYSTEMS = {
    "RXNORM": "RxNorm",
    "ICD10CM": "ICD-10-CM",
    "DOID": "Disease Ontology",
    "HP": "HPO",
    "SYMP": "Symptom Ontology",
    "MESH": "MeSH",
    "MESH_CLASS": "MeSH class",  # a drug class or pharmacological action, not the drug itself
    "DRUGBANK": "DrugBank",
    "SNOMEDCT": "SNOMED CT",
    "UMLS": "UMLS",
}
MAX_NGRAM = 8
CACHE_LIMIT = 20_000  # cached lookups (a few MB), cleared when full
# Adjective -> noun suffix rules, each a further form of the mention (after as written, singular):
# hypertensive -> hypertension, ischemic -> ischemia, epileptic -> epilepsy, thrombotic ->
# thrombosis, diabetic -> diabetes, parkinsonian -> parkinsonism, nephrotoxic -> nephrotoxicity;
# and a chemical's anion -> its acid, the name drug lexicons use: lactate -> lactic acid.
DERIVATIONS = [
    ["tive", "tion"], ["sive", "sion"], ["ic", "ia"], ["tic", "sy"], ["tic", "sis"], ["ic", "es"],
    ["ian", "ism"], ["ic", "icity"], ["al", ""], ["ic", "y"], ["ate", "ic acid"],
]  # fmt: skip
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The table's key form: lower case, single spaces, no edge punctuation."""
    return _SPACE.sub(" ", text.lower()).strip(" ,;:.-")


def key_hash(table: str, text: str) -> int:
    """64-bit key of (table, normalised term): stable across processes and machines."""
    digest = hashlib.blake2b(f"{table}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def code_system(code: str) -> str:
    return CODE_SYSTEMS.get(code.split(":", 1)[0], code.split(":", 1)[0])


def singulars(text: str) -> list[str]:
    """Singular candidates of the last word ("cysts" -> "cyst", "arteries" -> "artery")."""
    out = []
    if text.endswith("ies") and len(text) > 4:
        out.append(text[:-3] + "y")
    if text.endswith("es") and len(text) > 4:
        out.append(text[:-2])
    if text.endswith("s") and not text.endswith("ss") and len(text) > 3:
        out.append(text[:-1])
    return out


def abbreviation_pairs(doc: Doc, max_long_words: int = 8) -> dict[str, Span]:
    """Short form (normalised) -> its long form, for "long form ( SF )" in the note.

    Schwartz & Hearst: the short form is one token of 2-10 characters starting with a letter or
    digit and holding a letter; the long form is the shortest span of words before "(" in which the
    short form's characters appear in order, its first character starting a word.
    """
    pairs: dict[str, Span] = {}
    orths = doc.to_array(ORTH)
    opens = orths[1:-2] == doc.vocab.strings["("]
    closes = orths[3:] == doc.vocab.strings[")"]
    for i in (np.flatnonzero(opens & closes) + 1).tolist():  # "(" at i, ")" at i + 2
        short = doc[i + 1].text
        if not (2 <= len(short) <= 10 and short[0].isalnum() and any(c.isalpha() for c in short)):
            continue
        start = max(doc[i].sent.start if doc.has_annotation("SENT_START") else 0, i - max_long_words)
        for first in range(i - 1, start - 1, -1):
            span = doc[first:i]
            if _sh_match(short.lower(), span.text.lower()):
                pairs.setdefault(normalise(short), span)
                break
    return pairs


def _sh_match(short: str, long: str) -> bool:
    """Schwartz & Hearst's right-to-left character match of a short form inside a long form."""
    s, lng = len(short) - 1, len(long) - 1
    while s >= 0:
        c = short[s]
        if not c.isalnum():
            s -= 1
            continue
        while lng >= 0 and (long[lng] != c or (s == 0 and lng > 0 and long[lng - 1].isalnum())):
            lng -= 1
        if lng < 0:
            return False
        lng -= 1
        s -= 1
    return long[0].isalnum() and len(long) > len(short)


class Linker:
    """Table lookup per entity label; the table is a sorted array of 64-bit keys into code lists."""

    def __init__(
        self,
        nlp: Language,
        name: str,
        tables: dict[str, str],
        abbreviations: bool,
        partial: bool,
        derivations: list[list[str]],
    ) -> None:
        self.name = name
        self.derivations = [(old, new) for old, new in derivations]
        self.tables = dict(tables)
        self.abbreviations = abbreviations
        self.partial = partial
        self.keys = np.zeros(0, dtype=np.uint64)
        self.starts = np.zeros(1, dtype=np.int64)
        self.code_ids = np.zeros(0, dtype=np.int32)
        self.codes: list[str] = []
        self.key_tables = np.zeros(0, dtype=np.int8)  # which table each key belongs to
        self.table_names: list[str] = []
        self._cache: dict[tuple[str, str], tuple[str, ...]] = {}

    # --- table -----------------------------------------------------------------------------

    def set_table(self, entries: dict[str, dict[str, list[str]]]) -> None:
        """entries: table name -> {normalised term: [codes, primary first]}."""
        index: dict[str, int] = {}
        rows = []
        self.table_names = sorted(entries)
        for t, table in enumerate(self.table_names):
            for text, codes in entries[table].items():
                ids = [index.setdefault(c, len(index)) for c in dict.fromkeys(codes)]
                rows.append((key_hash(table, text), t, ids))
        self._cache.clear()
        rows.sort(key=lambda r: r[0])
        keys = np.array([k for k, _, _ in rows], dtype=np.uint64)
        if len(keys) > 1 and (np.diff(keys) == 0).any():
            raise ValueError(f"{self.name}: two table keys share a 64-bit hash")
        self.keys = keys
        self.starts = np.cumsum([0] + [len(ids) for _, _, ids in rows], dtype=np.int64)
        self.code_ids = np.array([i for _, _, ids in rows for i in ids], dtype=np.int32)
        self.key_tables = np.array([t for _, t, _ in rows], dtype=np.int8)
        self.codes = sorted(index, key=index.__getitem__)

    def table_codes(self, table: str) -> set[str]:
        """Every code some term of one table carries (for coverage: which gold ids it knows)."""
        t = self.table_names.index(table)
        rows = np.flatnonzero(self.key_tables == t)
        ids = np.concatenate([self.code_ids[self.starts[i] : self.starts[i + 1]] for i in rows])
        return {self.codes[i] for i in np.unique(ids)}

    def lookup(self, table: str, text: str) -> tuple[str, ...]:
        """The table's codes for one normalised form (notes repeat their terms: answers are cached,
        as tuples, so no caller can change a cached answer)."""
        cached = self._cache.get((table, text))
        if cached is not None:
            return cached
        key = np.uint64(key_hash(table, text))
        i = int(np.searchsorted(self.keys, key))
        found: tuple[str, ...] = ()
        if i < len(self.keys) and self.keys[i] == key:
            found = tuple(self.codes[j] for j in self.code_ids[self.starts[i] : self.starts[i + 1]])
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[(table, text)] = found
        return found

    def link_text(self, table: str, span: Span) -> tuple[list[str], str | None]:
        """Codes for a mention and how the first were found: "exact", "singular", "derived", "partial".

        Every form of the mention itself (as written, singular, noun form of an adjective) adds
        the codes the table lists for it, in that order: "lactate" is RxNorm's ingredient as
        written and, as "lactic acid", the MeSH descriptor. The codes of its longest known word
        n-gram (a broader concept: "acute renal failure" -> "renal failure") come last.
        """
        mention = span.text  # Doc.text and Span.text join every token: read it once
        text = normalise(mention)
        codes: list[str] = []
        how = None
        forms = [("exact", text)] + [("singular", f) for f in singulars(text)]
        for method, form in forms + [("derived", f) for f in self.derived(text)]:
            found = self.lookup(table, form)
            if found and how is None:
                how = method
            codes += [c for c in found if c not in codes]
        if self.partial and (broader := self.head_codes(table, span, mention)):
            codes += [c for c in broader if c not in codes]
            how = how or "partial"
        return codes, how

    def head_codes(self, table: str, span: Span, mention: str) -> tuple[str, ...]:
        """Codes of the mention's longest word n-gram that the table knows, rightmost first
        (English noun phrases put the head last)."""
        words = [t for t in span if not t.is_punct]
        offset = span.start_char
        for n in range(min(len(words) - 1, MAX_NGRAM), 0, -1):
            for start in range(len(words) - n, -1, -1):
                first, last = words[start], words[start + n - 1]
                gram = normalise(mention[first.idx - offset : last.idx + len(last) - offset])
                if len(gram) < 3:
                    continue
                for form in [gram, *singulars(gram)]:
                    if codes := self.lookup(table, form):
                        return codes
        return ()

    def derived(self, text: str) -> list[str]:
        """Noun forms of an adjective by the configured suffix rules ("hypertensive" -> "hypertension")."""
        return [
            text[: -len(old)] + new for old, new in self.derivations if text.endswith(old) and len(text) > 5
        ]

    # --- pipeline --------------------------------------------------------------------------

    def __call__(self, doc: Doc) -> Doc:
        pairs = abbreviation_pairs(doc) if self.abbreviations and doc.ents else {}
        ents = []
        for ent in doc.ents:
            table = self.tables.get(ent.label_)
            if table is None:
                ents.append(ent)
                continue
            codes, how = [], None
            long = pairs.get(normalise(ent.text))
            if long is not None:
                codes, how = self.link_text(table, long)
                how = "abbreviation" if codes else None
            if not codes:
                codes, how = self.link_text(table, ent)
            # doc.ents hands out new Span objects: the kb_id is written back through set_ents;
            # extension values live in doc.user_data under the span's offsets.
            linked = Span(doc, ent.start, ent.end, ent.label, kb_id=codes[0] if codes else "")
            linked._.codes = codes
            linked._.link = how
            linked._.code_system = code_system(codes[0]) if codes else None
            ents.append(linked)
        doc.set_ents(ents)
        return doc

    def pipe(self, docs, batch_size: int = 128):
        for doc in docs:
            yield self(doc)

    def to_disk(self, path, exclude=()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "keys.npy", self.keys)
        np.save(path / "starts.npy", self.starts)
        np.save(path / "code_ids.npy", self.code_ids)
        np.save(path / "key_tables.npy", self.key_tables)
        srsly.write_msgpack(path / "codes.msgpack", {"codes": self.codes, "tables": self.table_names})

    def from_disk(self, path, exclude=()) -> "Linker":
        path = Path(path)
        self.keys = np.load(path / "keys.npy")
        self.starts = np.load(path / "starts.npy")
        self.code_ids = np.load(path / "code_ids.npy")
        self.key_tables = np.load(path / "key_tables.npy")
        names = srsly.read_msgpack(path / "codes.msgpack")
        self.codes, self.table_names = list(names["codes"]), list(names["tables"])
        self._cache.clear()
        return self


class AbbreviationLabels:
    """Labels every occurrence of an in-note short form (same text) with the label of the entity
    that ends its long form, where no entity covers it. Entities are only added: taking the label
    off short forms whose long form is no entity lowered dev F1 (MACCROBAT DISEASE .416 -> .406)."""

    def __init__(self, nlp: Language, name: str) -> None:
        self.name = name

    def __call__(self, doc: Doc) -> Doc:
        ents = doc.ents
        if not ents:
            return doc
        added: list[Span] = []
        taken: set[int] = set()
        orths = None
        for long in abbreviation_pairs(doc).values():
            heads = [e for e in ents if long.start <= e.start and e.end == long.end]
            if not heads:
                continue
            if orths is None:
                orths = doc.to_array(ORTH)
                taken = {i for e in ents for i in range(e.start, e.end)}
            label = max(heads, key=len).label
            short = orths[long.end + 1]  # the finder's short form: "long form ( SF )"
            for i in np.flatnonzero(orths == short).tolist():
                if i not in taken:
                    added.append(Span(doc, i, i + 1, label=label))
                    taken.add(i)
        if added:
            doc.set_ents(added, default="unmodified")
        return doc

    def pipe(self, docs, batch_size: int = 128):
        for doc in docs:
            yield self(doc)


for _attr in ("codes", "code_system", "link"):
    if not Span.has_extension(_attr):
        Span.set_extension(_attr, default=None)


if not Language.has_factory(FACTORY):
    Language.factory(
        FACTORY,
        default_config={
            "tables": DEFAULT_TABLES,
            "abbreviations": True,
            "partial": True,
            "derivations": DERIVATIONS,
        },
    )(Linker)


if not Language.has_factory(ABBREVIATIONS_FACTORY):
    Language.factory(ABBREVIATIONS_FACTORY)(AbbreviationLabels)
