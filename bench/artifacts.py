"""Packaging a 10k-file bundle: time and digest stability, beside `tar czf` of the same tree in the same run.

Generates a bundle of N files (default 10,000: scenario YAML of 0.5-4 KB in 100 directories, ~20 MB), then:

- ours: `build_artifact` (sources/artifact.py — what the operator builds for an ArenaSource and `arena push`
  uploads as its one layer), three times: on the tree, on the tree after every mtime changed, and on a copy made in
  another directory in reverse order (other inode order, other times): the digest must be the same all three times;
- the worker's way back: `safe_extract` of the archive (path checks, byte budget);
- reference: `tar czf` of the same tree (GNU tar + gzip -6, the defaults), three times the same way, and the
  reproducible-build spelling `tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=pax`
  compressed by `gzip -n` (no name, no time); and `tar xzf`.

`ratio:` is build_artifact's time over `tar czf`'s (the faster of the runs each).

    .venv/bin/python bench/artifacts.py [--files 10000] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(BENCH.parent))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from arena_operator.sources.artifact import build_artifact, safe_extract  # noqa: E402
from bench.benchlib import machine  # noqa: E402

REPRODUCIBLE = ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "--format=pax",
                "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"]


def write_tree(root: Path, files: int) -> int:
    rng = random.Random(18)
    words = ["customer", "refund", "order", "assistant", "policy", "escalate", "ticket", "hours", "return", "help"]
    size = 0
    for index in range(files):
        directory = root / "scenarios" / f"group-{index % 100:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        body = " ".join(rng.choice(words) for _ in range(rng.randint(60, 500)))
        text = (f"apiVersion: promptkit.altairalabs.ai/v1alpha1\nkind: Scenario\nmetadata:\n  name: s{index:05d}\n"
                f"spec:\n  task_type: support\n  turns:\n    - role: user\n      content: {body}\n")
        (directory / f"s{index:05d}.scenario.yaml").write_text(text)
        size += len(text)
    (root / "config.arena.yaml").write_text("apiVersion: promptkit.altairalabs.ai/v1alpha1\nkind: Arena\n")
    return size


def touch_all(root: Path, when: float) -> None:
    for path in root.rglob("*"):
        os.utime(path, (when, when))


def reverse_copy(src: Path, dest: Path) -> None:
    """The same files created in reverse order (other inode and directory order), with other times."""
    for path in sorted(src.rglob("*"), reverse=True):
        if path.is_file():
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    touch_all(dest, 1_234_567_890)


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def three_ways(tree: Path, copy: Path, pack: Callable[[Path, Path], None], out: Path) -> tuple[float, list[str]]:
    """The fastest of three packs (tree, tree with new mtimes, reverse copy) and the three digests."""
    times, digests = [], []
    for step, source in enumerate((tree, tree, copy)):
        if step == 1:
            touch_all(tree, time.time() - 3600)
        target = out / f"pack-{step}.tar.gz"
        started = time.perf_counter()
        pack(source, target)
        times.append(time.perf_counter() - started)
        digests.append(sha256(target))
        time.sleep(1.1 if step == 0 else 0)  # a second later: gzip's header time (if any) differs
    return min(times), digests


def tar_czf(*flags: str) -> Callable[[Path, Path], None]:
    def pack(source: Path, target: Path) -> None:
        subprocess.run(["tar", *(flags or ["-z"]), "-cf", str(target), "-C", str(source), "."], check=True)
    return pack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 files")
    args = parser.parse_args()
    files = 2_000 if args.quick else args.files
    print(machine())
    with tempfile.TemporaryDirectory(prefix="arena-artifacts-") as tmp:
        work = Path(tmp)
        tree, copy, out = work / "bundle", work / "copy", work / "out"
        out.mkdir()
        size = write_tree(tree, files)
        reverse_copy(tree, copy)
        print(f"bundle: {files:,} files in 100 directories, {size / 1e6:.1f} MB")
        print(f"{'what':<52} {'time':>8} {'archive':>9}  digests (tree, new mtimes, reverse copy)")
        rows = [("build_artifact (operator, arena push)", lambda s, t: build_artifact(s, t), None),
                ("tar czf", tar_czf(), None),
                ("tar cf -I 'gzip -n', reproducible flags", tar_czf(*REPRODUCIBLE, "-I", "gzip -n"), None)]
        best: dict[str, float] = {}
        for label, pack, _ in rows:
            best[label], digests = three_ways(tree, copy, pack, out)
            stable = "stable" if len(set(digests)) == 1 else "differ"
            print(f"{label:<52} {best[label]:>7.2f}s {(out / 'pack-0.tar.gz').stat().st_size / 1e6:>6.1f} MB  "
                  f"{stable}: {' '.join(digests)}", flush=True)
            if label.startswith("build"):
                shutil.copyfile(out / "pack-0.tar.gz", work / "ours.tar.gz")
        for label, unpack in (("safe_extract (worker)", lambda d: safe_extract(work / "ours.tar.gz", d)),
                              ("tar xzf", lambda d: subprocess.run(["tar", "-xzf", str(work / "ours.tar.gz"), "-C",
                                                                    str(d)], check=True))):
            dest = work / f"x-{label.split()[0]}"
            dest.mkdir()
            started = time.perf_counter()
            unpack(dest)
            print(f"{label:<52} {time.perf_counter() - started:>7.2f}s", flush=True)
    print(f"ratio: {best['build_artifact (operator, arena push)'] / best['tar czf']:.2f} (build_artifact time / "
          "tar czf time)")


if __name__ == "__main__":
    main()
