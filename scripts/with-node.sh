#!/usr/bin/env bash
# Runs one command with a pinned Node line first on PATH (see node-lines.sh):
#
#   bash scripts/with-node.sh lts npm run bench     the active LTS line (npm run bench:lts)
#   bash scripts/with-node.sh 22 npm test           the Node 22 line
set -euo pipefail
source "$(dirname "$0")/node-lines.sh"
if [[ $# -lt 2 ]]; then
  echo "usage: with-node.sh <lts | version prefix> <command> [args...]" >&2
  exit 2
fi
node_lines_check_platform
node_lines_select "$1"
if [[ ${#selected[@]} -ne 1 ]]; then
  echo "with-node: '$1' matches ${#selected[@]} Node lines; name one" >&2
  exit 2
fi
shift
read -r version integrity <<<"${selected[0]}"
node_lines_install "$version" "$integrity"
export PATH="$node_lines_cache/$version/bin:$PATH"
echo "with-node: Node $(node --version) ($node_lines_cache/$version/bin/node)" >&2
exec "$@"
