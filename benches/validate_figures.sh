#!/usr/bin/env bash
# `clnrm validate` over a generated 1,000-test project (half templates sharing a macro
# library): cold with -j1 and with every core, then all hits from the cache, and
# `cache stats`. Prints the median wall time of each.
#   cargo build --release && bash benches/validate_figures.sh [path/to/clnrm] [N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
clnrm=$(realpath "${1:-$here/../target/release/clnrm}")
n=${2:-1000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 "$here/gen_project.py" "$n" "$dir/project"
cd "$dir/project"
export CLNRM_CACHE_DIR="$dir/cache"

median_ms() { # runs "$@" 5 times, prints the median wall time in ms
  local times=()
  for _ in 1 2 3 4 5; do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}

"$clnrm" validate -q >/dev/null   # fill the cache
j1=$(median_ms "$clnrm" validate -q --no-cache -j1)
all=$(median_ms "$clnrm" validate -q --no-cache)
hits=$(median_ms "$clnrm" validate -q)
stats=$(median_ms "$clnrm" cache stats)
echo "clnrm validate, $n tests ($(nproc) CPUs), median of 5 wall times:"
echo "  no cache, -j1:          ${j1} ms"
echo "  no cache, all cores:    ${all} ms   (-j1 / all cores = $(python3 -c "print(round($j1/$all, 2))"))"
echo "  all hits from the cache: ${hits} ms   (no cache / all hits = $(python3 -c "print(round($all/$hits, 2))"))"
echo "  cache stats:            ${stats} ms"
