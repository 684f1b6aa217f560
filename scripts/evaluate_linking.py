"""Step `linker`, part 2: code accuracy of the linker on BC5CDR gold mentions -> reports/linking.{json,md}.

Settings (abbreviations, partial matches) are compared on the dev set; test is reported for the
shipped settings (the component's config), which were chosen on dev.
"""

from pathlib import Path

import spacy
import typer
from spacy.tokens import DocBin

from clin_distill.labels import DISEASE, MEDICATION
from clin_distill.linking import linker as linker_module
from clin_distill.linking.evaluation import link_scores
from clin_distill.reports import write_report

VARIANTS = {
    "shipped": {},
    "no abbreviations": {"abbreviations": False},
    "exact only": {"abbreviations": False, "partial": False},
}


def main(linker_dir: Path, dev: Path, test: Path, report: Path) -> None:
    nlp = spacy.load(linker_dir)
    component = nlp.get_pipe(linker_module.FACTORY)
    shipped = {"abbreviations": component.abbreviations, "partial": component.partial}
    data: dict = {"settings": shipped, "terms": len(component.keys), "codes": len(component.codes)}
    rows = []
    for split, path in (("dev", dev), ("test", test)):
        docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
        for variant, change in VARIANTS.items():
            if split == "test" and change:
                continue
            component.abbreviations = change.get("abbreviations", shipped["abbreviations"])
            component.partial = change.get("partial", shipped["partial"])
            scores = link_scores(component, docs, [MEDICATION, DISEASE])
            data.setdefault(split, {})[variant] = scores
            for label, s in scores.items():
                rows.append(
                    [
                        f"bc5cdr_{split}", variant, label, s["mentions"], f"{s['coverage']:.3f}",
                        f"**{s['accuracy']:.3f}**" if variant == "shipped" else f"{s['accuracy']:.3f}",
                        f"{s['accuracy_all_mentions']:.3f}", f"{s['listed']:.3f}",
                    ]
                )  # fmt: skip
            typer.echo(
                f"{split} {variant}: " + ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in scores.items())
            )
    write_report(
        report,
        data,
        "Entity linking: code accuracy on BC5CDR gold mentions",
        "Written by `weasel run linker`. The `clin_linker` component of `en_clin_distilled` runs on the "
        "gold spans; its first MeSH code (from drug-named-entity-recognition and the Disease Ontology's "
        "cross-references) is compared with the gold MeSH id. *coverage*: share of gold mentions whose "
        "id the shipped lexicons know; *accuracy*: correct among those; *of all*: correct among all "
        "mentions. Settings compared on dev; test reported for the shipped ones "
        f"({shipped}). BC5CDR `Chemical` is scored as MEDICATION. No shipped lexicon holds MeSH's own "
        "descriptors for most drugs: drug-named-entity-recognition's `mesh_id` is usually a "
        "class that several drugs share (a pharmacological action such as D018726 Dopamine "
        "Antagonists for haloperidol, gold D006220); those ids are kept as `MESH_CLASS:` and not "
        "counted as the drug's MeSH code, hence the low MEDICATION coverage. *listed*: share of the "
        "known mentions whose gold id is anywhere among the linker's codes, the most any ranking of "
        "them could reach. For DISEASE it stays near 0.6: a gold id counts as known when the "
        "Disease Ontology lists it for any term (D012640 Seizures only as the cross-reference of "
        "'visual epilepsy'), while the lexicon terms the mention matches carry none (seizures: "
        "ICD-10-CM, HPO, Symptom Ontology ids; nephrotoxicity: no term at all). MeSH's own "
        "descriptors and entry terms are not among the shipped lexicons.",
        ["set", "settings", "label", "gold mentions", "coverage", "accuracy", "of all", "listed"],
        rows,
    )


if __name__ == "__main__":
    typer.run(main)
