# An unknown key in the config file fails with the file position, exit code 2, and nothing written.
. "$(dirname "$0")/lib.sh"
w=$(fresh bad_key)
capture "$flow_2d" --config "$GM_SOURCE/tests/data/flow_2d_bad_key.toml" --workdir "$w"
expect_rc 2
expect_one_line
expect_match "$out" "flow_2d_bad_key.toml:2:1: key 'training.stepz': unknown key"
expect_absent "$w"
ok "unknown key rejected with its position"
