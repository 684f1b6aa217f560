"""Step `patterns`: lexicons -> corpus/patterns/<source>.jsonl, one ontology teacher per lexicon source
(named after it), counts -> reports/patterns.{json,md}. A group of lexicons.cfg (rxnorm, snomed) sets
the options its sources share and is one table of the linker."""

from pathlib import Path

import srsly
import typer
from spacy.util import load_config, registry

from clin_distill.reports import write_report
from clin_distill.teachers.patterns import build_patterns, load_stop_list


def main(config_path: Path, out_dir: Path, report: Path) -> None:
    config = load_config(config_path, interpolate=True)
    stop = load_stop_list(Path(config["paths"]["stop_list"]))
    resolved = registry.resolve({k: v for k, v in config.items() if k != "paths"})
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.jsonl"):  # a source taken out of lexicons.cfg stops being a teacher
        stale.unlink()
    summary = {}
    for spec in resolved.values():
        for teacher, terms in spec["sources"].items():
            patterns, counts = build_patterns(terms, stop, [teacher], spec.get("add_plurals", False))
            srsly.write_jsonl(out_dir / f"{teacher}.jsonl", patterns)
            summary[teacher] = {source: dict(sorted(c.items())) for source, c in sorted(counts.items())}
            typer.echo(f"{teacher}: {len(patterns):,} patterns {dict(counts['_patterns'])}")
    rows = []
    for teacher, sources in summary.items():
        for source, c in sources.items():
            if source.startswith("_"):
                continue
            rejected = {k.removeprefix("rejected_"): v for k, v in c.items() if k.startswith("rejected_")}
            kept = c["terms"] - sum(rejected.values())
            rows.append([teacher, source, f"{c['terms']:,}", f"{kept:,}", rejected or "-"])
        rows.append(
            [teacher, "**patterns**", "", sources["_patterns"], f"conflicts: {sources.get('_conflicts', {})}"]
        )
    write_report(
        report,
        summary,
        "Ontology teacher patterns",
        "Written by `weasel run patterns`.",
        ["teacher", "source", "terms", "kept as patterns or merged", "rejected"],
        rows,
    )


if __name__ == "__main__":
    typer.run(main)
