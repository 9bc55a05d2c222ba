#!/usr/bin/env bash
# Idempotent setup shared by `make run` and `make test`.
# Usage: scripts/setup.sh [--tests]   (--tests adds what only the test suite needs:
#                                      Docker Engine + debootstrap for the docker backend,
#                                      chromium and tmux for tests/e2e/test_report_view.py,
#                                      docker-registry for the swarm lab's private registry,
#                                      stress-ng to load the machine in the observability tests)
#   - system packages (as root on Debian/Ubuntu; otherwise says what is missing)
#   - .venv with the pinned Python dependencies and the project (editable)
#   - node_modules with the pinned solc and anvil
#   - the compiled contract (contracts/build/)
# Each step is skipped when a stamp file says its inputs did not change,
# so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

STAMPS=.setup
mkdir -p "$STAMPS"
say() { printf '[setup] %s\n' "$*"; }

# System packages the tests need: command -> Debian package.
declare -A SYSTEM_TOOLS=(
  [glpsol]=glpk-utils
  [prometheus]=prometheus
  [node]=nodejs
  [npm]=npm
)
FOR_TESTS=false
[[ "${1:-}" == "--tests" ]] && FOR_TESTS=true
if $FOR_TESTS; then
  SYSTEM_TOOLS[dockerd]=docker.io
  SYSTEM_TOOLS[debootstrap]=debootstrap
  # a person's view of a run: the report in a headless browser, the terminal in tmux
  SYSTEM_TOOLS[chromium]=chromium
  SYSTEM_TOOLS[tmux]=tmux
  # both cores busy while the observability tests run (tests/integration/test_observability.py)
  SYSTEM_TOOLS[stress-ng]=stress-ng
  # the CNCF distribution registry the swarm lab serves images from (not started as a
  # service here: orchestrator/swarm/registry.py runs it with its own TLS config)
  SYSTEM_TOOLS[docker-registry]=docker-registry
fi

missing=()
for tool in "${!SYSTEM_TOOLS[@]}"; do
  # sbin tools (dockerd, debootstrap) are not on a non-root PATH
  command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] ||
    missing+=("${SYSTEM_TOOLS[$tool]}")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    # the package's own service would hold port 5000 (plain HTTP); the lab runs its own
    if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
  else
    say "missing system packages: ${missing[*]}"
    say "install them with: sudo apt-get install ${missing[*]}"
    say "(continuing; tests that need them will fail or skip)"
  fi
fi

# hash of the given files, for stamps
digest() { cat "$@" | sha256sum | cut -c1-16; }

# pip warns about every local index folder that does not exist; keep real errors.
pip_quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

PY=${PYTHON:-python3}
venv_key=$(digest requirements.lock pyproject.toml)
if [[ ! -x .venv/bin/python || "$(cat "$STAMPS/venv" 2>/dev/null)" != "$venv_key" ]]; then
  say "creating .venv with pinned Python dependencies"
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  pip_quiet .venv/bin/pip install -q -r requirements.lock
  pip_quiet .venv/bin/pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
  echo "$venv_key" >"$STAMPS/venv"
fi

npm_key=$(digest package.json package-lock.json)
if [[ ! -d node_modules || "$(cat "$STAMPS/npm" 2>/dev/null)" != "$npm_key" ]]; then
  say "installing pinned npm tools (solc, anvil)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$npm_key" >"$STAMPS/npm"
fi

if [[ -f contracts/compile.py ]]; then
  contract_key=$(digest contracts/*.sol package-lock.json contracts/compile.py)
  if [[ "$(cat "$STAMPS/contract" 2>/dev/null)" != "$contract_key" ]]; then
    say "compiling the market contract"
    .venv/bin/python contracts/compile.py
    echo "$contract_key" >"$STAMPS/contract"
  fi
fi
# A Docker Engine for the docker backend's tests: when nothing answers (DOCKER_HOST
# honoured) and we are root, start dockerd in the background (log: .setup/dockerd.log).
DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}
docker_answers() { .venv/bin/python -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1; }
if $FOR_TESTS && command -v dockerd >/dev/null 2>&1 && ! docker_answers; then
  if [[ $(id -u) -eq 0 && -z "${DOCKER_HOST:-}" ]]; then
    say "starting dockerd (log: $STAMPS/dockerd.log)"
    # its own session: a Ctrl-C in the terminal that ran setup must not stop it
    setsid dockerd >"$STAMPS/dockerd.log" 2>&1 </dev/null &
    for ((i = 0; i < DOCKERD_TIMEOUT * 2; i++)); do
      docker_answers && break
      sleep 0.5
    done
    if ! docker_answers; then
      say "ERROR: dockerd did not answer within ${DOCKERD_TIMEOUT} s; last lines of $STAMPS/dockerd.log:"
      tail -n 20 "$STAMPS/dockerd.log" >&2
      exit 1
    fi
  else
    say "no Docker Engine answers (${DOCKER_HOST:-unix:///var/run/docker.sock}); docker tests will skip"
  fi
fi
say "ready"
