#!/usr/bin/env bash
# Runs the README's `npm test` once on every Node line the package supports:
# the pinned official binaries of scripts/node-lines.txt (see node-lines.sh).
# That line's bin/ goes first on PATH, so npm's scripts, tsc, Jest and every
# child process a spec starts run on that Node.
#
#   npm run test:matrix              every line in scripts/node-lines.txt
#   npm run test:matrix -- 26        only the lines whose version starts with 26
#
# Prints one result line per Node line, then the totals, and exits non-zero
# if any line failed.
set -uo pipefail
source "$(dirname "$0")/node-lines.sh"
cd "$node_lines_root"
cache=$node_lines_cache
node_lines_check_platform || exit 2
node_lines_select "${1:-}" || exit 2

mkdir -p "$cache"
began=$SECONDS
results=()
passed_total=0
failed_total=0
status=0
for line in "${selected[@]}"; do
  read -r version integrity <<<"$line"
  if ! node_lines_install "$version" "$integrity"; then
    results+=("node $version: FAILED (could not install the binary)")
    status=1
    continue
  fi
  bin="$cache/$version/bin"
  echo
  echo "=== npm test on Node $("$bin/node" --version) ($bin/node) ==="
  log=$(mktemp)
  start=$SECONDS
  PATH="$bin:$PATH" npm test 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  took=$((SECONDS - start))
  # The suite's own closing line (test/support/summary-reporter.cjs): "tests: N passed, N failed[, N skipped]".
  summary=$(grep -E '^tests: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  rm -f "$log"
  passed=$(sed -nE 's/^tests: ([0-9]+) passed.*/\1/p' <<<"$summary")
  failed=$(sed -nE 's/^tests: [0-9]+ passed, ([0-9]+) failed.*/\1/p' <<<"$summary")
  passed_total=$((passed_total + ${passed:-0}))
  if [[ $code -eq 0 && -n "$summary" ]]; then
    results+=("node $version: ok    ${summary#tests: } in $((took / 60))m$((took % 60))s")
  else
    # A run that died before Jest's summary (typecheck, build) counts as one failure.
    [[ -z "$failed" || "$failed" == 0 ]] && failed=1
    failed_total=$((failed_total + failed))
    counted=${summary#tests: }
    results+=("node $version: FAIL  ${counted:-no test summary (exit $code)} in $((took / 60))m$((took % 60))s")
    status=1
    continue
  fi
  failed_total=$((failed_total + ${failed:-0}))
done

echo
echo "=== Node matrix ==="
printf '%s\n' "${results[@]}"
echo "($(( (SECONDS - began) / 60 ))m$(( (SECONDS - began) % 60 ))s for the matrix)"
echo "matrix: $passed_total passed, $failed_total failed"
exit $status
