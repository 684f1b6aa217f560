"""srsly's msgpack registries with their entry points loaded once (clin_distill/msgpack_registries.py):
the same encoders and decoders as srsly's own lookup, the same DocBin bytes, and functions
registered or replaced later seen."""

from __future__ import annotations

import catalogue
import srsly
import srsly.msgpack
from spacy.tokens import DocBin

from clin_distill.msgpack_registries import _ORIGINAL, cache_msgpack_registries

REGISTRIES = (srsly.msgpack.msgpack_encoders, srsly.msgpack.msgpack_decoders)
cache_msgpack_registries()  # as the modules that read teacher DocBins do when imported


def _uncached(registry):
    return getattr(registry.get_all, _ORIGINAL)


def test_same_lookup_and_docbin_bytes_as_srsly_own(nlp, data_dir):
    for registry in REGISTRIES:
        assert registry.get_all() == _uncached(registry)()
    texts = [p.read_text() for p in sorted((data_dir / "maccrobat2020").glob("*.txt"))[:20]]
    docs = list(nlp.pipe(texts))
    for doc in docs:  # two span groups per note, as teachers write them
        doc.spans["a"] = [doc[i : i + 2] for i in range(0, len(doc) - 2, 7)]
        doc.spans["b"] = [doc[i : i + 1] for i in range(0, len(doc) - 1, 11)]
    cached = DocBin(docs=docs, store_user_data=True).to_bytes()
    originals = [registry.get_all for registry in REGISTRIES]
    try:
        for registry in REGISTRIES:
            registry.get_all = _uncached(registry)
        uncached = DocBin(docs=docs, store_user_data=True).to_bytes()
        back = list(DocBin().from_bytes(uncached).get_docs(nlp.vocab))
    finally:
        for registry, get_all in zip(REGISTRIES, originals, strict=True):
            registry.get_all = get_all
    assert cached == uncached
    again = list(DocBin().from_bytes(cached).get_docs(nlp.vocab))
    for a, b in zip(again, back, strict=True):
        assert [(s.start, s.end) for s in a.spans["a"]] == [(s.start, s.end) for s in b.spans["a"]]
        assert [(s.start, s.end) for s in a.spans["b"]] == [(s.start, s.end) for s in b.spans["b"]]


def test_an_encoder_registered_or_replaced_later_is_used():
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    def encoder(tag: str):
        def encode_point(obj, chain=None):
            if isinstance(obj, Point):
                return {tag: obj.x}
            return obj if chain is None else chain(obj)

        return encode_point

    srsly.msgpack.msgpack_encoders.get_all()  # looked up before the registration
    try:
        srsly.msgpack.msgpack_encoders.register("clin_test_point", func=encoder("first"))
        assert srsly.msgpack_loads(srsly.msgpack_dumps([Point(3)])) == [{"first": 3}]
        srsly.msgpack.msgpack_encoders.register("clin_test_point", func=encoder("second"))  # same name
        assert srsly.msgpack_loads(srsly.msgpack_dumps([Point(3)])) == [{"second": 3}]
    finally:
        del catalogue.REGISTRY[("srsly", "msgpack_encoders", "clin_test_point")]
    assert "clin_test_point" not in srsly.msgpack.msgpack_encoders.get_all()
