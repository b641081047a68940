#!/usr/bin/env bash
# Plays a sharded CI pipeline with a shared remote cache (docs/reference.md §10): a project of N
# passing tests, 4 shards (`--shard K/4`) run at once, each with its own empty local
# cache (as on fresh CI machines), one nginx (WebDAV PUT) as the remote.
#   1. the first pipeline runs every test exactly once across the shards;
#   2. a second pipeline on fresh local caches starts no container and reports
#      every test as cached;
#   3. after one test file changes, a third pipeline runs that test alone.
# Prints, for each pipeline, tests run, containers started and wall time; exits 1
# when a pipeline does not do what it should.
#   cargo build --release && bash benches/ci_pipeline.sh [path/to/clnrm] [N]
# Needs: a Docker engine, the fixture image (fixtures/images/build.sh), nginx, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
clnrm=$(realpath "${1:-$here/../target/release/clnrm}")
n=${2:-16}
shards=4
image="clnrm-fixture/busybox:latest"

dir=$(mktemp -d)
nginx_pid=""
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# --- the remote: nginx on a free loopback port, everything in $dir/nginx
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$dir/nginx/root" "$dir/nginx/body"
cat > "$dir/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 256; }
http {
  access_log $dir/nginx/access.log;
  client_body_temp_path $dir/nginx/body;
  server {
    listen 127.0.0.1:$port;
    root $dir/nginx/root;
    location / { dav_methods PUT; create_full_put_path on; client_max_body_size 64m; }
  }
}
CONF
nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" &
nginx_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
export CLNRM_REMOTE_CACHE="http://127.0.0.1:$port/clnrm"

# --- the project
mkdir -p "$dir/project/tests"
write_test() { # name marker
  cat > "$dir/project/tests/$1.clnrm.toml" <<TEST
[meta]
name = "$1"
version = "1"

[service.box]
image = "$image"

[[steps]]
name = "say"
command = ["echo", "$2"]
expected_output_regex = "$2"
TEST
}
for i in $(seq -w 1 "$n"); do write_test "t$i" "first-$i"; done
cd "$dir/project"

# Containers the engine created for the clnrm process $2 since $1 (its sessions'
# labels start with its pid; other processes on the engine do not count).
containers_of() {
  docker events --since "$1" --until "$(date +%s.%N)" --filter type=container \
    --filter event=create --filter label=clnrm.managed=true \
    --format '{{index .Actor.Attributes "clnrm.session"}}' | grep -c "^$2-" || true
}

# One pipeline: every shard at once, each on a fresh local cache. Sets RUN, CACHED,
# CONTAINERS and WALL.
pipeline() {
  local label=$1 since start pids=() k
  since=$(date +%s.%N)
  start=$(date +%s%N)
  for k in $(seq 1 $shards); do
    rm -rf "$dir/cache-$label-$k"
    CLNRM_CACHE_DIR="$dir/cache-$label-$k" "$clnrm" run --shard "$k/$shards" --format json \
      > "$dir/out-$label-$k.json" 2> "$dir/err-$label-$k.txt" &
    pids+=($!)
  done
  local failed=0
  for k in "${!pids[@]}"; do wait "${pids[$k]}" || failed=1; done
  WALL=$(( ($(date +%s%N) - start) / 1000000 ))
  if [ "$failed" -ne 0 ]; then
    echo "pipeline $label: a shard failed:" >&2
    cat "$dir"/err-"$label"-*.txt >&2
    exit 1
  fi
  RUN=$(cat "$dir"/out-"$label"-*.json | grep '"event":"test_finished"' | grep -c '"cached":false' || true)
  CACHED=$(cat "$dir"/out-"$label"-*.json | grep '"event":"test_finished"' | grep -c '"cached":true' || true)
  CONTAINERS=0
  for pid in "${pids[@]}"; do
    CONTAINERS=$(( CONTAINERS + $(containers_of "$since" "$pid") ))
  done
  printf '%-34s tests run %4d  cached %4d  containers started %4d  wall %6d ms\n' \
    "pipeline $label:" "$RUN" "$CACHED" "$CONTAINERS" "$WALL"
}

check() { # what expected actual
  if [ "$2" != "$3" ]; then echo "FAILED: $1: expected $2, got $3" >&2; exit 1; fi
}

echo "$n tests, $shards shards, remote $CLNRM_REMOTE_CACHE ($(basename "$clnrm"))"
pipeline "1 (cold)"
check "first pipeline runs every test once" "$n" "$RUN"
check "first pipeline starts one container per test" "$n" "$CONTAINERS"
puts=$(grep -c '"PUT ' "$dir/nginx/access.log" || true)
check "every pass uploaded once" "$n" "$puts"

pipeline "2 (fresh machines)"
check "second pipeline runs nothing" 0 "$RUN"
check "second pipeline reports every test cached" "$n" "$CACHED"
check "second pipeline starts no container" 0 "$CONTAINERS"

write_test "t$(printf '%0*d' ${#n} 1)" "changed"
pipeline "3 (one test changed)"
check "third pipeline runs the changed test alone" 1 "$RUN"
check "third pipeline starts one container" 1 "$CONTAINERS"
echo "ok: the pipelines shared their results through the remote cache"
