#!/usr/bin/env python3
"""libgm_runtime defines what every header's `#if GM_HEADER_DEFINITIONS` block holds: check that
src/runtime.cpp includes each header that has such a block (else gm::runtime users get undefined symbols).

    scripts/check_runtime.py [repo root]
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
include = root / 'include'
runtime = (root / 'src' / 'runtime.cpp').read_text()
included = set(re.findall(r'^#include <(gm/[^>]+)>', runtime, re.M))
missing = []
for h in sorted(include.rglob('*.hpp')):
    name = h.relative_to(include).as_posix()
    if name == 'gm/detail/compiled.hpp':
        continue
    if '#if GM_HEADER_DEFINITIONS' in h.read_text() and name not in included:
        missing.append(name)
for name in missing:
    print(f'src/runtime.cpp: does not include {name}, which has GM_HEADER_DEFINITIONS definitions')
print(f'{len(missing)} header(s) with definitions missing from src/runtime.cpp')
sys.exit(1 if missing else 0)
