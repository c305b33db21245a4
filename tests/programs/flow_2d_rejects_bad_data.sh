# Bad data files are one line naming the file (and row), exit code 2, and nothing written: NaN, inf and
# huge values, no rows, no columns, a garbage or overflowing shape, a folder, a CSV whose first row has a
# typo.  A CSV with a byte-order mark and a header trains, and the log says the header was skipped.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || fail "no Python at $python (scripts/setup.sh makes it)"
d=$(fresh bad_data_files)
mkdir -p "$d"
"$python" - "$d" <<'PY'
import struct, sys
d = sys.argv[1]
def npy(name, shape, values, descr="<f8"):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    fmt = "<%d%s" % (len(values), "d" if descr == "<f8" else "f")
    open(f"{d}/{name}", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack(fmt, *values))
npy("nan.npy", "(3, 2)", [1, 2, 3, float("nan"), 5, 6])
npy("inf.npy", "(2, 2)", [1, float("inf"), 3, 4])
npy("huge.npy", "(2, 2)", [1, 2, 1e30, 4], "<f4")
npy("big64.npy", "(2, 2)", [1, 2, 3, 1e300])
npy("rows0.npy", "(0, 2)", [])
npy("cols0.npy", "(3, 0)", [])
npy("shape.npy", "(3, abc)", [1, 2, 3, 4, 5, 6])
npy("overflow.npy", "(99999999999999999999, 2)", [1, 2])
npy("toolarge.npy", "(4611686018427387904, 4)", [1, 2])
open(f"{d}/typo.csv", "w").write("1.0,2.x\n3,4\n5,6\n")
open(f"{d}/bom.csv", "wb").write(b"\xef\xbb\xbfx,y\n" + b"".join(b"%d,%d\n" % (i % 3, i % 5) for i in range(50)))
PY
mkdir -p "$d/folder.npy"
check() {  # check FILE REGEX
  w=$(fresh "bad_data_run")
  capture "$flow_2d" --config "$small" --data.name=file --data.path="$d/$1" --workdir "$w"
  expect_rc 2
  expect_one_line
  expect_match "$out" "$d/$1"
  expect_match "$out" "$2"
  expect_absent "$w"
}
check nan.npy "row 2, column 2 is nan"
check inf.npy "row 1, column 2 is inf"
check huge.npy "row 2, column 1 .*\|x\| <= 1e18"
check big64.npy "row 2, column 2"
check rows0.npy "no rows"
check cols0.npy "no columns"
check shape.npy "bad shape entry 'abc'"
check overflow.npy "bad shape entry"
check toolarge.npy "needs more than"
check folder.npy "is a folder"
check typo.csv "typo.csv:1: not a number"
w=$(fresh bom_run)
capture "$flow_2d" --config "$small" --data.name=file --data.path="$d/bom.csv" --workdir "$w"
expect_rc 0
expect_match "$out" "header row skipped: x,y"
ok "bad data files refused in one line; a BOM and a header are handled"
