"""Fill `assets/` from the local shared copy when present, else download what project.yml names.

The local copy mirrors `assets/` (assets/bc5cdr/X.txt <-> <shared>/bc5cdr/X.txt) and ships a
SHA256SUMS file; every copied file is checked against it and against the asset's MD5 checksum in
project.yml (Weasel's checksum), so a local copy can never silently differ from the public source.
Downloading reuses Weasel's own fetchers.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from weasel.cli.assets import fetch_asset
from weasel.util import get_checksum, git_checkout, load_project_config


class AssetError(RuntimeError):
    pass


def read_sha256sums(path: Path) -> dict[str, str]:
    """`<sha256>  ./relative/path` lines -> {relative/path: sha256}."""
    sums = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise AssetError(f"{path}:{lineno}: expected '<sha256>  <path>'")
        sums[name.removeprefix("./")] = digest
    return sums


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_verified(src: Path, dest: Path, rel: str, sums: dict[str, str]) -> int:
    """Copy a file or folder from the local copy, checking each file's SHA-256; returns files copied."""
    files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
    for f in files:
        key = rel if f == src else f"{rel}/{f.relative_to(src).as_posix()}"
        if key not in sums:
            raise AssetError(f"{f}: not listed in SHA256SUMS")
        if _sha256(f) != sums[key]:
            raise AssetError(f"{f}: SHA-256 differs from SHA256SUMS")
    if dest.exists():
        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copyfile(src, dest)
    return len(files)


def fetch_assets(
    project_dir: Path, shared: Path | None, overrides: dict[str, Any] | None = None
) -> list[str]:
    """Make every asset of project.yml present and verified; returns one line per asset."""
    config = load_project_config(project_dir, overrides=overrides or {})
    sums_path = shared / "SHA256SUMS" if shared else None
    sums = read_sha256sums(sums_path) if sums_path and sums_path.exists() else {}
    done = []
    for asset in config.get("assets", []):
        dest = project_dir / asset["dest"]
        rel = Path(asset["dest"]).relative_to("assets").as_posix()
        checksum = asset.get("checksum")
        src = shared / rel if shared else None
        if src is not None and src.exists() and sums:
            n = copy_verified(src, dest, rel, sums)
            how = f"copied from {src} ({n} file(s), SHA-256 verified)"
        elif "git" in asset:
            git = asset["git"]
            if dest.exists() and checksum and get_checksum(dest) == checksum:
                done.append(f"{asset['dest']}: present")
                continue
            if dest.exists():
                shutil.rmtree(dest)
            git_checkout(git["repo"], git["path"], dest, branch=git.get("branch", "main"))
            how = f"cloned from {git['repo']}"
        elif asset.get("url"):
            fetch_asset(project_dir, asset["url"], dest, checksum)
            how = f"from {asset['url']}"
        else:  # no public URL: the user places it (see its description); optional downstream
            done.append(f"{asset['dest']}: missing, no URL (optional; see project.yml)")
            continue
        if checksum and get_checksum(dest) != checksum:
            raise AssetError(f"{asset['dest']}: MD5 checksum differs from project.yml ({how})")
        done.append(f"{asset['dest']}: {how}")
    return done
