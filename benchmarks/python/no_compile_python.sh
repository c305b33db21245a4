#!/bin/sh
# A Python for bench_train's tests (test bench_train_baseline_fails): the real one, $GM_REAL_PYTHON, except that
# a torch.compile baseline fails at start-up, as where a machine lacks the compiler or headers inductor needs.
case " $* " in *" --compile "*) echo "no_compile_python.sh: torch.compile made to fail here" >&2; exit 1 ;; esac
exec "$GM_REAL_PYTHON" "$@"
