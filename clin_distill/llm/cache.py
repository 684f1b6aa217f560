"""spacy-llm's batch cache, keyed by the note's exact text and the prompt, private, and tolerant of
damage: a lost entry is reported and its note asked again.

Why not `spacy.BatchCache.v1` as it is: it keys a document by the sum of its token hashes, which
ignores token order and whitespace, so "No fever. No cough." and "No cough. No fever." share an
entry and the second note gets the first one's answer; it knows neither the label definitions
nor the examples, so a changed prompt reuses old answers; a deleted or truncated batch file, or an
index line cut by a crash, stops the run or the teacher's loading; and its files are readable by
every user, though they hold the notes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from spacy_llm.cache import BatchCache
from spacy_llm.registry import registry

from .task import ACCOUNTING_KEY

log = logging.getLogger(__name__)
PROBE_TEXT = "NOTE"  # rendered into a prompt to fingerprint everything else in it


def _private_dir(path: Path) -> None:
    for folder in reversed([path, *[p for p in path.parents if not p.exists()]]):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)


def _write_private(path: Path, data: bytes) -> None:
    """Atomically (a crash leaves the old file or the new one), readable by the owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _append_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _id(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") or 1  # 0 reads as "absent"


class NoteCache(BatchCache):
    """One entry per exact note text and prompt version; everything else as in BatchCache."""

    def __init__(
        self, path: str | Path | None, batch_size: int, max_batches_in_mem: int, cache_empty_answers: bool
    ):
        self._cache_empty_answers = cache_empty_answers
        self._salt = b""
        super().__init__(path=path, batch_size=batch_size, max_batches_in_mem=max_batches_in_mem)

    def initialize(self, vocab: Vocab, task: Any) -> None:
        """The key's salt: the prompt rendered around a placeholder note, i.e. the template, label
        definitions, description and examples (the model settings are in the config, whose hash
        names the cache folder)."""
        super().initialize(vocab, task)
        [(prompts, _)] = list(task.generate_prompts([Doc(vocab, words=[PROBE_TEXT])]))
        self._salt = hashlib.sha256("\0".join([self.prompt_template or "", *prompts]).encode()).digest()

    @property
    def prompt_template(self) -> str | None:
        return self._prompt_template

    @prompt_template.setter
    def prompt_template(self, prompt_template: str) -> None:
        """Kept for reading, as spacy-llm does; another template there is reported and replaced,
        not an error: entries are keyed by the prompt, so none made with it can be used."""
        self._prompt_template = prompt_template
        if not self._path:
            return
        path = self._path / "prompt_template.txt"
        if path.exists() and path.read_text(errors="replace") == prompt_template:
            return
        if path.exists():
            log.warning("LLM cache: %s held another prompt template; replaced", path)
        _write_private(path, prompt_template.encode())

    def _doc_id(self, doc: Doc) -> int:  # type: ignore[override]
        return _id(self._salt + doc.text.encode())

    @staticmethod
    def _batch_id(doc_ids: Iterable[int]) -> int:
        return _id(",".join(map(str, sorted(doc_ids))).encode())

    def _init_cache_dir(self) -> None:
        """Private folders and files; an index line that does not parse (a write cut by a crash)
        is reported, dropped and the index rewritten, so that only its notes are asked again."""
        if self._path is None:
            return
        if self._path.exists() and not self._path.is_dir():
            raise ValueError(f"LLM cache {self._path} exists and is not a directory")
        _private_dir(self._path)
        for path in self._path.iterdir():
            if path.name.endswith(".tmp"):  # left by a crash before its rename
                path.unlink()
            elif path.is_file():
                path.chmod(0o600)
        index = self._index_path
        if not index.exists():
            return
        good, bad = [], 0
        for line in index.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                entries = {int(k): int(v) for k, v in json.loads(line).items()}
            except (ValueError, AttributeError, TypeError):
                bad += 1
                continue
            good.append(line)
            self._doc2batch.update(entries)
        if bad:
            log.warning(
                "LLM cache: %s had %d unreadable line(s); rewritten without them, their notes will be "
                "requested again",
                index,
                bad,
            )
            _write_private(index, "".join(line + "\n" for line in good).encode())

    def _persist(self) -> None:
        assert self._path
        doc_ids = [self._doc_id(doc) for doc in self._cache_queue]
        batch_id = self._batch_id(doc_ids)
        docs = DocBin(docs=self._cache_queue, store_user_data=True).to_bytes()
        _write_private(self._batch_path(batch_id), docs)  # the file first, then the index names it
        _append_private(
            self._index_path, "".join(json.dumps({str(i): str(batch_id)}) + "\n" for i in doc_ids)
        )
        self._doc2batch.update(dict.fromkeys(doc_ids, batch_id))
        self._stats["persisted"] += len(self._cache_queue)
        self._cache_queue = []

    def add(self, doc: Doc) -> None:
        """A failed request is never kept, an empty answer not unless configured: a rerun asks again."""
        acct = doc.user_data.get(ACCOUNTING_KEY, {})
        if acct.get("failed_requests") or (acct.get("empty_answers") and not self._cache_empty_answers):
            return
        super().add(doc)

    def _load_batch(self, batch_id: int) -> dict[int, Doc] | None:
        if batch_id in self._loaded_docs:
            return self._loaded_docs[batch_id]
        if self._vocab is None:
            raise ValueError("the cache must be initialized before it is read")
        path = self._batch_path(batch_id)
        try:
            docs = {self._doc_id(d): d for d in DocBin().from_disk(path).get_docs(self._vocab)}
        except Exception as err:  # noqa: BLE001 - missing, truncated, not a DocBin: all mean "ask again"
            problem = (
                "is missing"
                if isinstance(err, FileNotFoundError)
                else f"is unreadable ({type(err).__name__})"
            )
            log.warning("LLM cache: %s %s; its notes will be requested again", path, problem)
            return None
        if len(self._loaded_docs) >= self.max_batches_in_mem:
            self._loaded_docs.pop(self._batch_hashes.pop(0))
        self._batch_hashes.append(batch_id)
        self._loaded_docs[batch_id] = docs
        return docs

    def _lookup(self, doc: Doc) -> Doc | None:
        """The cached doc with exactly this text, or None (a damaged entry is dropped and reported)."""
        doc_id = self._doc_id(doc)
        batch_id = self._doc2batch.get(doc_id)
        if batch_id is None or self._path is None:
            return None
        docs = self._load_batch(batch_id)
        cached = docs.get(doc_id) if docs is not None else None
        if cached is not None and cached.text == doc.text:
            return cached
        if docs is not None:
            log.warning(
                "LLM cache: %s lacks a note its index names; requested again", self._batch_path(batch_id)
            )
        del self._doc2batch[doc_id]
        return None

    def __contains__(self, doc: Doc) -> bool:
        found = self._lookup(doc) is not None
        self._stats["hit_contains" if found else "missed_contains"] += 1
        return found

    def __getitem__(self, doc: Doc) -> Doc | None:
        cached = self._lookup(doc)
        self._stats["hit" if cached is not None else "missed"] += 1
        return cached


@registry.llm_misc("clin_distill.NoteCache.v1")
def make_note_cache(
    path: str | None,
    batch_size: int = 1,
    max_batches_in_mem: int = 4,
    cache_empty_answers: bool = False,
) -> NoteCache:
    """spacy-llm's cache (`path` None: none) keyed by exact note text and prompt; see NoteCache."""
    return NoteCache(path, batch_size, max_batches_in_mem, cache_empty_answers)
