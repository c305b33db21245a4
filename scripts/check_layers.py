#!/usr/bin/env python3
"""gm's include rule: a header includes only headers of its own layer or of layers below it.

The layers, lowest first, are named in docs/architecture.md.  Prints each include that runs up the layers
(file:line: what it includes) and exits 1 if there is one; `--list` prints every header's layer.

    scripts/check_layers.py [include-dir] [--list]
"""
import re
import sys
from pathlib import Path

# Lowest first.  "base" holds gm's own vocabulary (errors, seeds, metrics, the type list), detail/ and io/.
LAYERS = ["base", "process", "prediction", "time", "sampler", "data", "nn", "eval", "dist", "train", "experiment",
          "umbrella"]
BASE_FILES = {"error.hpp", "metric.hpp", "random.hpp", "runtime.hpp", "type_list.hpp", "version.hpp"}
UMBRELLAS = {"core.hpp", "experiment.hpp", "gm.hpp", "sampler.hpp", "trainer.hpp"}
FOLDERS = {"detail": "base", "io": "base"} | {name: name for name in LAYERS[1:-1]}


def layer(rel: Path) -> str:
    """The layer of a header, from its path below include/gm."""
    if len(rel.parts) == 1:
        if rel.name in BASE_FILES:
            return "base"
        if rel.name in UMBRELLAS:
            return "umbrella"
        raise SystemExit(f"gm/{rel}: a top-level header in no layer; add it to scripts/check_layers.py")
    folder = rel.parts[0]
    if folder not in FOLDERS:
        raise SystemExit(f"gm/{rel}: the folder '{folder}' is in no layer; add it to scripts/check_layers.py")
    return FOLDERS[folder]


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "include"
    gm = root / "gm"
    headers = sorted(p.relative_to(gm) for p in gm.rglob("*.hpp"))
    if not headers:
        print(f"no headers under {gm}")
        return 1
    include = re.compile(r'^\s*#\s*include\s*[<"]gm/([^>"]+)[>"]')
    bad = 0
    for rel in headers:
        mine = layer(rel)
        if "--list" in sys.argv:
            print(f"{mine:10} gm/{rel}")
        for number, line in enumerate((gm / rel).read_text().splitlines(), 1):
            m = include.match(line)
            if not m:
                continue
            theirs = layer(Path(m.group(1)))
            if LAYERS.index(theirs) > LAYERS.index(mine):
                print(f"include/gm/{rel}:{number}: the {mine} layer includes gm/{m.group(1)} of the {theirs} layer above it")
                bad += 1
    print(f"{len(headers)} headers, {bad} include(s) up the layers")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
