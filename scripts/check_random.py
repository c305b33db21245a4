#!/usr/bin/env python3
"""gm's device rule for random draws: every draw that takes a generator draws on the generator's device.

A CUDA generator draws only CUDA tensors and a CPU generator only CPU tensors, so a draw such as
`torch::randn(shape, gen, x.options())` works on the CPU and fails the first time `gen` is a CUDA generator
and `x` is not (or the reverse).  gm's draws therefore take their options from `gm::on_generator(gen, o)`
(include/gm/random.hpp), then move the result where it is needed.  This script finds, in every header under
include/gm, each call of torch's draws (rand, randn, randint, randperm, normal, bernoulli, multinomial, ...)
and of the in-place draws (normal_, uniform_, ...) that passes a generator, and accepts it when:
  - its text holds `on_generator(<gen>` or `<gen>.device()`, or
  - its options argument is a name assigned from `on_generator(<gen>` earlier in the same header.
An in-place draw with a generator is never accepted: its tensor's device is not visible here.

Prints each draw that breaks the rule (file:line: the call) and a closing count; exits 1 if there is one.

    scripts/check_random.py [include-dir]
"""
import re
import sys
from pathlib import Path

FREE = re.compile(r"\b(?:torch|at)::(rand|randn|randint|randperm|normal|bernoulli|multinomial|poisson|rand_like|"
                  r"randn_like|randint_like)\s*\(")
INPLACE = re.compile(r"\.(normal_|uniform_|bernoulli_|random_|exponential_|cauchy_|log_normal_|geometric_)\s*\(")
GENERATOR = re.compile(r"(?:\w+\.)*(?:gen|\w*generator\w*)|make_generator\(.*")


def call_args(text: str, open_paren: int) -> tuple[list[str], int]:
    """The top-level arguments of the call whose '(' is at open_paren, and the index after its ')'."""
    depth, args, start = 0, [], open_paren + 1
    i = open_paren
    while i < len(text):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(text[start:i].strip())
                return args, i + 1
        elif c == "," and depth == 1:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    return args, len(text)


def strip_comments(text: str) -> str:
    """The text with // comments blanked (same length, so offsets and line numbers hold)."""
    return re.sub(r"//[^\n]*", lambda m: " " * len(m.group(0)), text)


def problems(path: Path, rel: str) -> tuple[int, list[str]]:
    text = strip_comments(path.read_text())
    found, bad = 0, []
    for pattern, inplace in ((FREE, False), (INPLACE, True)):
        for m in pattern.finditer(text):
            args, end = call_args(text, m.end() - 1)
            gens = [a for a in args if GENERATOR.fullmatch(a)]
            if not gens:
                continue
            found += 1
            call = " ".join(text[m.start():end].split())
            line = text.count("\n", 0, m.start()) + 1
            if inplace:
                bad.append(f"{rel}:{line}: {call}: an in-place draw with a generator; draw a new tensor with "
                           f"gm::on_generator(gen, options) instead")
                continue
            gen = gens[0]
            g = re.escape(gen)
            ok = re.search(r"on_generator\(\s*" + g + r"\b", text[m.start():end]) or (gen + ".device()") in call
            if not ok:  # options named earlier: `const auto o = on_generator(gen, ...)`, then o, o.dtype(..), o.device()
                before = text[max(0, m.start() - 3000):m.start()]
                names = re.findall(r"\b([A-Za-z_]\w*)\s*=\s*on_generator\(\s*" + g + r"\b", before)
                ok = any(re.search(r"(?<![\w.])" + n + r"\b(?!\s*\()", " ".join(a for a in args if a != gen)) for n in names)
            if not ok:
                bad.append(f"{rel}:{line}: {call}: a draw from '{gen}' whose options do not come from "
                           f"gm::on_generator({gen}, ...): it fails when the generator and the options are on "
                           f"different devices")
    return found, bad


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "include"
    headers = sorted((root / "gm").rglob("*.hpp"))
    if not headers:
        print(f"no headers under {root / 'gm'}")
        return 2
    total, bad = 0, []
    for h in headers:
        n, b = problems(h, "gm/" + str(h.relative_to(root / "gm")))
        total += n
        bad += b
    for line in bad:
        print(line)
    print(f"{total} draw(s) with a generator in {len(headers)} headers, {len(bad)} off the generator's device")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
