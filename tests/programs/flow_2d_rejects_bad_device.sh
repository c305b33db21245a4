# A device that is not one, or is not available, is one line and exit 2, before anything is written.
. "$(dirname "$0")/lib.sh"
for dev in banana cuda cuda:7 mps; do
  w=$(fresh "device_$dev")
  capture "$flow_2d" --config "$small" --device="$dev" --workdir "$w"
  expect_rc 2
  expect_one_line
  expect_match "$out" "device '$dev'"
  expect_absent "$w"
done
ok "bad and unavailable devices refused"
