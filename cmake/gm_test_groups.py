#!/usr/bin/env python3
"""Write the ctest file that runs gm_tests' doctest cases a few to a process.

Starting a process that links LibTorch costs about 0.4 s on 2 cores (its operator registrations), which is
more than most unit test cases take: one ctest test per case spent about 120 s of the suite's CPU time on
starting processes.  So the cases of one source file run together, `--group` at a time and in file order,
each group one ctest test named after its file and lines; a case in the doctest test suite "own_process"
(a heavy one, declared with `* gm::test::own_process`) runs alone under its own name.  Every case still
starts from torch seed 0 (tests/main.cpp), so a case's inputs do not depend on its group.  A test passes only
when exactly its cases ran and passed (`--gm-cases=N`, tests/main.cpp).  Names go into doctest's filter escaped (',' and '\\')
and into CMake as bracket arguments, so a ';' in a name (a CMake list separator) stays in it.

Usage (tests/CMakeLists.txt runs it after each build of gm_tests):
  gm_test_groups.py --binary BIN --out CTEST_FILE --group 8 --label unit --label quick --env A=1 --env B=2
"""
import argparse
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def listed(binary, *extra):
    """The test cases the binary lists (with the extra filters): (name, file, line) in file order."""
    run = subprocess.run([binary, "--list-test-cases", "--reporters=xml", "--order-by=file", *extra],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"gm_test_groups.py: {binary} --list-test-cases failed (exit {run.returncode}): "
                 f"{run.stderr.strip().splitlines()[-1] if run.stderr.strip() else 'no message'}")
    root = ET.fromstring(run.stdout)
    return [(c.get("name"), os.path.basename(c.get("filename")), int(c.get("line")))
            for c in root.iter("TestCase") if c.get("skipped") != "true"]


def escaped(name):
    """One name in doctest's comma-separated --test-case filter."""
    return name.replace("\\", "\\\\").replace(",", "\\,")


def cmake_arg(s):
    """A CMake bracket argument, which takes any text as it is."""
    eq = "=" * 1
    while f"]{eq}]" in s:
        eq += "="
    return f"[{eq}[{s}]{eq}]"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--workdir", default=os.getcwd())
    a = p.parse_args()
    cases = listed(a.binary)
    alone = {c[0] for c in listed(a.binary, "--test-suite=own_process")}
    tests = []  # (ctest name, the cases it runs)
    group = []

    def close():
        if group:
            first, last = group[0], group[-1]
            tests.append((f"{first[1]}:{first[2]}-{last[2]} ({len(group)} case{'s' if len(group) > 1 else ''})", [c[0] for c in group]))
            group.clear()

    for case in cases:
        name, file, _ = case
        # A wildcard in a name would make doctest's filter match other cases too: such a case runs alone.
        if name in alone or "*" in name or "?" in name:
            close()
            tests.append((name, [name]))
            continue
        if group and (group[0][1] != file or len(group) == a.group):
            close()
        group.append(case)
    close()
    names = [t[0] for t in tests]
    if len(set(names)) != len(names):
        sys.exit("gm_test_groups.py: two ctest tests would share a name; rename a test case")
    lines = []
    for name, members in tests:
        filt = "--test-case=" + ",".join(escaped(m) for m in members)
        # --gm-cases: gm_tests fails unless exactly these cases ran (tests/main.cpp), so a filter that matched
        # fewer (as one with a ';' in a name did under doctest_discover_tests, running 0 cases and passing)
        # fails; the exit code stays the verdict (a crash or a sanitizer's report after the cases fails too).
        lines.append(f"add_test({cmake_arg(name)} {cmake_arg(a.binary)} {cmake_arg(filt)} --gm-cases={len(members)})")
        lines.append(f"set_tests_properties({cmake_arg(name)} PROPERTIES WORKING_DIRECTORY {cmake_arg(a.workdir)} "
                     f"LABELS {cmake_arg(';'.join(a.label))} ENVIRONMENT {cmake_arg(';'.join(a.env))})")
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"# {len(cases)} doctest cases of {os.path.basename(a.binary)} in {len(tests)} ctest tests "
                f"(cmake/gm_test_groups.py)\n")
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
