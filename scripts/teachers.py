"""Step `teachers`: one pipeline per ontology source (corpus/patterns/<name>.jsonl, ontology.cfg) and
per rule file (configs/teachers/rules/<name>.jsonl, rules.cfg), each assembled by `spacy assemble`
into training/teachers/<name>; the folder name is the teacher's name and span key. Assemblies run
side by side (up to MAX_PARALLEL): each is its own process, and much of each one's time is the
import of spaCy and its plugins, so on 2 cores the step took 84 s one at a time."""

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import typer

from clin_distill.parallel import cores

MAX_PARALLEL = 4  # each assembly holds its lexicon's patterns in memory (the largest peaked at 768 MB)


def main(patterns_dir: Path, rules_dir: Path, ontology_cfg: Path, rules_cfg: Path, out_dir: Path) -> None:
    jobs = [(p, ontology_cfg) for p in sorted(patterns_dir.glob("*.jsonl"))]
    jobs += [(p, rules_cfg) for p in sorted(rules_dir.glob("*.jsonl"))]
    if not jobs:
        raise typer.BadParameter(f"no *.jsonl in {patterns_dir} or {rules_dir}")
    names = [p.stem for p, _ in jobs]
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"two teachers share a name: {sorted(names)}")
    shutil.rmtree(out_dir, ignore_errors=True)  # a teacher whose source was removed goes too

    def assemble(job: tuple[Path, Path]) -> None:
        patterns, config = job
        cmd = [
            sys.executable, "-m", "spacy", "assemble", str(config), str(out_dir / patterns.stem),
            "--paths.patterns", str(patterns), "--paths.key", patterns.stem,
        ]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    workers = max(1, min(MAX_PARALLEL, cores(), len(jobs)))
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(assemble, job) for job in jobs]
        try:
            for (patterns, config), future in zip(jobs, futures, strict=True):
                future.result()  # a failed assembly raises here, in job order
                typer.echo(f"teacher {patterns.stem}: {config.name} + {patterns}")
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the queued ones do not start
            raise


if __name__ == "__main__":
    typer.run(main)
