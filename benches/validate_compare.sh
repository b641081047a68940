#!/usr/bin/env bash
# `clnrm validate` of this checkout against another revision, in the same run: builds REV
# (default: the merge-base with `main`, the commit this branch started from) in a worktree
# of its own (target/compare/worktree) with its own release target dir, builds this checkout,
# generates the 1,000-test project (gen_project.py), then times `validate -q --no-cache`
# with each binary, alternating, REPS times. Prints both medians and their ratio.
#   bash benches/validate_compare.sh [REV] [N] [REPS]
# The worktree and target/compare/target stay for the next run: a worktree already at REV is
# kept as it is, since a fresh checkout's new mtimes would make cargo rebuild every crate of
# the workspace. `git worktree remove --force target/compare/worktree` drops it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rev=${1:-$(git -C "$root" merge-base main HEAD)}
n=${2:-1000}
reps=${3:-5}
base_rev=$(git -C "$root" rev-parse --verify "$rev^{commit}")
compare="$root/target/compare"
worktree="$compare/worktree"
base_target="$compare/target"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$compare"
if [ "$(git -C "$worktree" rev-parse HEAD 2>/dev/null)" != "$base_rev" ] \
  || [ -n "$(git -C "$worktree" status --porcelain 2>/dev/null)" ]; then
  git -C "$root" worktree remove --force "$worktree" >/dev/null 2>&1 || true
  git -C "$root" worktree add --detach "$worktree" "$base_rev" >/dev/null
fi
# A first run copies this checkout's compiled dependencies to start from; cargo still
# rebuilds the workspace crates and some dependencies (those with build scripts, and what
# depends on them), which took more than 25 minutes on the shared 2-core machine.
if [ ! -d "$base_target/release/deps" ] && [ -d "$root/target/release/deps" ]; then
  mkdir -p "$base_target/release"
  cp -a "$root/target/release/deps" "$root/target/release/build" \
    "$root/target/release/.fingerprint" "$base_target/release/"
fi
echo "building $(git -C "$root" rev-parse --short "$base_rev") (base) and this checkout, release..." >&2
(cd "$worktree" && CARGO_TARGET_DIR="$base_target" cargo build --release --locked --bin clnrm -q)
(cd "$root" && cargo build --release --locked --bin clnrm -q)
base_bin="$work/clnrm-base"
new_bin="$work/clnrm-new"
cp "$base_target/release/clnrm" "$base_bin"
cp "$root/target/release/clnrm" "$new_bin"

python3 "$here/gen_project.py" "$n" "$work/project"
cd "$work/project"

ms() { # wall time in ms of one `validate` by binary $2 with cache dir $1
  local start end
  start=$(date +%s%N)
  CLNRM_CACHE_DIR="$1" "$2" validate -q --no-cache >/dev/null
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

# One untimed run each: the page cache holds the project and both binaries.
CLNRM_CACHE_DIR="$work/cache-base" "$base_bin" validate -q --no-cache >/dev/null
CLNRM_CACHE_DIR="$work/cache-new" "$new_bin" validate -q --no-cache >/dev/null
base_times=()
new_times=()
for _ in $(seq "$reps"); do
  base_times+=("$(ms "$work/cache-base" "$base_bin")")
  new_times+=("$(ms "$work/cache-new" "$new_bin")")
done
base_ms=$(median "${base_times[@]}")
new_ms=$(median "${new_times[@]}")
echo "clnrm validate -q --no-cache, $n tests ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)), $reps runs each, alternating:"
echo "  base $(git -C "$root" rev-parse --short "$base_rev"):  median ${base_ms} ms   (${base_times[*]})"
echo "  this checkout:  median ${new_ms} ms   (${new_times[*]})"
echo "  this / base = $(python3 -c "print(round($new_ms / $base_ms, 3))")"
