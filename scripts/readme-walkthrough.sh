#!/usr/bin/env bash
# Run the shell blocks of one README section as a reader would: in order,
# in one shell, from the repository root (a block that starts with `cd`
# starts from the root again), stopping at the first failing command.
# `bpfc` must be on PATH (`cargo install --path cli`, or target/debug).
#
#   scripts/readme-walkthrough.sh "Host applications"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
section=${1:?usage: $0 SECTION-TITLE}
command -v bpfc >/dev/null || { echo "readme-walkthrough: bpfc is not on PATH" >&2; exit 1; }

script=$(awk -v want="## $section" -v root="$root" '
  /^## / { inside = ($0 == want) }
  inside && /^```sh$/ { block = 1; first = 1; next }
  inside && block && /^```$/ { block = 0; next }
  inside && block {
    if (first && $0 ~ /^cd /) print "cd \"" root "\""
    first = 0
    print
  }
' "$root/README.md")
[ -n "$script" ] || { echo "readme-walkthrough: no sh blocks under \"## $section\"" >&2; exit 1; }

cd "$root"
printf '%s\n' "$script" | sed 's/^/+ /'
bash -euo pipefail -c "$script"
