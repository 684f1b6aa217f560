"""Step `patterns`: lexicons -> assets/patterns/<teacher>.jsonl, counts -> reports/patterns.{json,md}."""

import json
from pathlib import Path

import srsly
import typer
from spacy.util import load_config, registry

from clin_distill.teachers.patterns import build_patterns, load_stop_list


def main(config_path: Path, out_dir: Path, report: Path) -> None:
    config = load_config(config_path, interpolate=True)
    stop = load_stop_list(Path(config["paths"]["stop_list"]))
    resolved = registry.resolve({k: v for k, v in config.items() if k != "paths"})
    summary = {}
    for teacher, spec in resolved.items():
        terms = [t for source_terms in spec["sources"].values() for t in source_terms]
        patterns, counts = build_patterns(
            terms, stop, spec["source_priority"], spec.get("add_plurals", False)
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(out_dir / f"{teacher}.jsonl", patterns)
        summary[teacher] = {source: dict(sorted(c.items())) for source, c in sorted(counts.items())}
        typer.echo(f"{teacher}: {len(patterns):,} patterns {dict(counts['_patterns'])}")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Ontology teacher patterns",
        "",
        "Written by `weasel run patterns`.",
        "",
        "| teacher | source | terms | kept as patterns or merged | rejected |",
        "|---|---|---|---|---|",
    ]
    for teacher, sources in summary.items():
        for source, c in sources.items():
            if source.startswith("_"):
                continue
            rejected = {k.removeprefix("rejected_"): v for k, v in c.items() if k.startswith("rejected_")}
            kept = c["terms"] - sum(rejected.values())
            lines.append(f"| {teacher} | {source} | {c['terms']:,} | {kept:,} | {rejected or '-'} |")
        conflicts = sources.get("_conflicts", {})
        lines.append(f"| {teacher} | **patterns** | | {sources['_patterns']} | conflicts: {conflicts} |")
    report.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    typer.run(main)
