#!/usr/bin/env bash
# CI's Podman leg (README "Podman"): the container suites again, against rootful Podman's
# Docker-compatible API. Installs Podman where missing, configures it for this kind of
# machine in a file of its own (no systemd as PID 1, cgroup v1, crun unusable, open files
# capped), starts `podman system service` on /run/podman/podman.sock, loads the fixture
# images into Podman's store, runs the suites with DOCKER_HOST pointing at that socket,
# prints the leg's test counts and stops the service.
#
#   bash .ci/podman.sh        (from .ci/run, after the Docker leg; or on its own)
#
# Under CI (any CI value but `false`) a Podman that cannot run a container is a failure;
# elsewhere the leg says why and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }
script_started=$SECONDS
ci=false
case "${CI:-}" in "" | false | FALSE | False) ;; *) ci=true ;; esac
cannot_run() {
  if [ "$ci" = true ]; then
    echo "error: Podman leg: $*" >&2
    exit 1
  fi
  echo "NOTICE: skipping the Podman leg: $*" >&2
  exit 0
}

SOCKET=/run/podman/podman.sock
# The Docker engine the fixture images were built on, before DOCKER_HOST points at Podman.
DOCKER_ENGINE=${DOCKER_HOST:-unix:///var/run/docker.sock}
STATE=/run/clnrm-ci-podman
# The leg's suites: the engine stage's own tests and the end-to-end tests whose subject
# is what the engine does (README "Podman" says why these and not the others).
EXEC_PACKAGE=clnrm-exec
ROOT_TESTS=(run_e2e dev_e2e dev_step_runner pool_containers otel_e2e otel_dev otel_bridge
  cache_gc cache_volumes services_fixture fixture_outcomes reused_label)
# Tests that cannot hold on Podman 4.3, each with its reason in README "Podman" ("Tests
# left out on Podman"): left out by exact name, and only here.
PODMAN_SKIPS=(
  # The exec stream ends with the command's process, not with the last holder of its output.
  children_the_step_leaves_behind_are_waited_for_only_while_they_hold_its_output
  a_timeout_ends_an_orphan_still_holding_the_steps_output
  # Relies on a second create being slower than a third of a first one.
  a_container_create_the_caller_gave_up_on_is_undone_by_the_engine_side
  # aardvark-dns 1.4 drops queries while it reloads: reaching the replaced `web` by name
  # times out in some runs.
  a_service_keeps_its_container_until_its_spec_changes_and_state_persists_across_runs
  # Its lower bound on the flush wait (150 ms) does not hold: spans arrive sooner (133 ms).
  spans_posted_as_json_are_judged_and_a_passing_test_is_then_cached
)

log "podman: packages"
# crun comes with Podman but refuses this VM's hybrid cgroups: runc runs the containers.
PACKAGES=(podman netavark aardvark-dns crun catatonit runc)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null ||
    cannot_run "could not install ${missing[*]}"
fi
[ "$(id -u)" -eq 0 ] || cannot_run "the leg runs rootful Podman and needs root (sudo bash .ci/podman.sh)"
podman --version

log "podman: configuration"
# Only this leg's processes read this file (CONTAINERS_CONF), so the machine's own Podman
# configuration is left as it is.
mkdir -p "$STATE"
export CONTAINERS_CONF="$STATE/containers.conf"
cat >"$CONTAINERS_CONF" <<EOF
# Written by .ci/podman.sh for clnrm's Podman CI leg.
[containers]
# The VM caps open files at 20,000; Podman's default ulimits ask for more and fail.
default_ulimits = []
init_path = "$(command -v catatonit)"

[engine]
# crun refuses this VM's hybrid cgroups (v1); PID 1 is not systemd, so neither systemd
# cgroups nor the journal are there.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
# Each exec through the API keeps a conmon monitor this long after it ends, so its exit
# code can still be read (300 s by default: ~150 monitors linger after the suites).
# clnrm reads an exec's exit code as soon as its output ends.
exit_command_delay = 10

[network]
network_backend = "netavark"
EOF
cat "$CONTAINERS_CONF"

log "podman: service"
answers() { curl -sf --max-time 2 --unix-socket "$SOCKET" http://podman/_ping >/dev/null 2>&1; }
service_pid=""
stop_service() {
  if [ -n "$service_pid" ]; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    echo "podman service (pid $service_pid) stopped"
  fi
}
trap stop_service EXIT
if answers; then
  # Not ours to stop or reconfigure: say so, since its configuration may differ.
  echo "a Podman service already answers at $SOCKET; the leg uses it as it is"
else
  mkdir -p "$(dirname "$SOCKET")"
  # Started in its own folder: conmon 2.1.6 writes its `oom` marker into the working
  # directory it inherits, which would otherwise be the checkout.
  (cd "$STATE" && exec podman system service --time=0 "unix://$SOCKET") >"$STATE/service.log" 2>&1 &
  service_pid=$!
  for _ in $(seq 1 100); do answers && break; sleep 0.1; done
  answers || { cat "$STATE/service.log" >&2; cannot_run "podman system service does not answer at $SOCKET"; }
  echo "podman service started (pid $service_pid), log in $STATE/service.log"
fi
export DOCKER_HOST="unix://$SOCKET"
docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}}) at '"$DOCKER_HOST"

log "podman: fixture images"
# No registry: the images the Docker leg built are copied into Podman's store, unless the
# same image (same ID) is there already.
for image in clnrm-fixture/busybox:latest clnrm-fixture/otel-emitter:latest clnrm-fixture/services:latest; do
  id=$(DOCKER_HOST=$DOCKER_ENGINE docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) ||
    cannot_run "the Docker leg's image $image is missing (fixtures/images/ builds it)"
  if [ "$(podman image inspect -f 'sha256:{{.Id}}' "$image" 2>/dev/null || true)" = "$id" ]; then
    echo "$image: already in Podman's store"
  else
    started=$SECONDS
    DOCKER_HOST=$DOCKER_ENGINE docker save "$image" | podman load -q >/dev/null
    echo "$image: loaded in $((SECONDS - started)) s"
  fi
done
podman run --rm clnrm-fixture/busybox:latest true ||
  cannot_run "Podman cannot run a container (see the messages above)"

log "tests (podman leg)"
# fixture_outcomes runs fixtures/example and fixtures/failing here and on the Docker
# engine, and requires the same outcomes, messages and output on both.
export CLNRM_SECOND_ENGINE=$DOCKER_ENGINE
test_args=""
for test in "${ROOT_TESTS[@]}"; do test_args+=" --test $test"; done
status=0
skip_args=""
for test in "${PODMAN_SKIPS[@]}"; do skip_args+=" --skip $test"; done
bash .ci/leg.sh podman \
  "cargo test --locked --no-fail-fast -p $EXEC_PACKAGE -- $skip_args" \
  "cargo test --locked --no-fail-fast -p clnrm$test_args -- $skip_args" || status=1
echo "podman leg took $((SECONDS - script_started)) s in all (set-up, image loads, tests)"
exit "$status"
