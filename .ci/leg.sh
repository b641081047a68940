#!/usr/bin/env bash
# Runs one CI test leg and prints its counts: `bash .ci/leg.sh NAME COMMAND...`, where
# each COMMAND is one shell command line (a cargo test invocation). All commands run
# even when one fails; the exit status is non-zero when any failed. Output goes to a
# file that is shown as it grows, not through a pipe: a process a failing test leaves
# behind holding the output open cannot keep the leg from ending.
set -uo pipefail
name=$1
shift
log=$(mktemp "${TMPDIR:-/tmp}/clnrm-ci-$name.XXXXXX")
started=$SECONDS
(
  failed=0
  for command in "$@"; do
    echo "+ $command"
    bash -c "$command" || failed=1
  done
  exit "$failed"
) >"$log" 2>&1 </dev/null &
runner=$!
tail -n +1 -f --pid="$runner" "$log"
wait "$runner"
status=$?
awk -v leg="$name" -v secs=$((SECONDS - started)) '
  /^test result:/ { p += $4; f += $6; i += $8 }
  END { printf "\n%s leg: %d passed, %d failed, %d ignored in %d s\n", leg, p, f, i, secs }
' "$log"
rm -f "$log"
exit "$status"
