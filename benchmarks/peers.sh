#!/usr/bin/env bash
# Peer benchmark environment: Microsoft Agent Framework (MAF) and LangGraph.
#
# Usage: benchmarks/peers.sh [setup|run]      (default: run)
#   setup  create the two virtualenvs (skipped when they exist and import fine)
#   run    setup, then run the shared peer benchmarks; their JSON lines go to stdout,
#          everything else (pip, progress) goes to stderr.
#
# Environment:
#   PEER_VENVS      where the venvs live      (default: <repo>/.bench-venvs)
#   PEER_BENCH_DIR  maf_bench.py / langgraph_bench.py  (default: <repo>/../shared/bench)
#   PYTHON          interpreter used to create the venvs (default: python3)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${PEER_VENVS:-$REPO/.bench-venvs}"
BENCH_DIR="${PEER_BENCH_DIR:-$(dirname "$REPO")/shared/bench}"
PYTHON="${PYTHON:-python3}"

# Pinned to the versions resolved on the reference machine (Python 3.11).
MAF_PKGS=(agent-framework-core==1.23.0)
LG_PKGS=(
  langgraph==1.2.24
  langgraph-checkpoint==4.3.2
  langgraph-checkpoint-sqlite==3.1.2
  langgraph-prebuilt==1.1.3
  langgraph-sdk==0.4.14
)
MAF_IMPORT="import agent_framework; from agent_framework import WorkflowBuilder, InMemoryCheckpointStorage, FileCheckpointStorage"
LG_IMPORT="import langgraph; from langgraph.checkpoint.sqlite import SqliteSaver; from langgraph.graph import StateGraph"

log() { echo "peers.sh: $*" >&2; }

# ensure_venv NAME IMPORT_CHECK PKG...
ensure_venv() {
  local name="$1" check="$2"
  shift 2
  local venv="$VENVS/$name"
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    log "venv '$name' present at $venv"
  else
    log "creating venv '$name' at $venv"
    rm -rf "$venv"
    mkdir -p "$VENVS"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
    "$venv/bin/python" -c "$check"
  fi
}

print_versions() {
  log "versions:"
  "$VENVS/maf/bin/python" - >&2 <<'EOF'
from importlib.metadata import version
import sys
print(f"  maf: python {sys.version.split()[0]}, agent-framework-core {version('agent-framework-core')}")
EOF
  "$VENVS/lg/bin/python" - >&2 <<'EOF'
from importlib.metadata import version
import sys
pk = ["langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite", "langgraph-prebuilt", "langgraph-sdk"]
print(f"  lg:  python {sys.version.split()[0]}, " + ", ".join(f"{p} {version(p)}" for p in pk))
EOF
}

setup() {
  ensure_venv maf "$MAF_IMPORT" "${MAF_PKGS[@]}"
  ensure_venv lg "$LG_IMPORT" "${LG_PKGS[@]}"
  print_versions
}

run() {
  setup
  for f in maf_bench.py langgraph_bench.py; do
    [[ -f "$BENCH_DIR/$f" ]] || { log "missing $BENCH_DIR/$f (set PEER_BENCH_DIR)"; exit 1; }
  done
  log "running $BENCH_DIR/maf_bench.py"
  "$VENVS/maf/bin/python" "$BENCH_DIR/maf_bench.py"
  log "running $BENCH_DIR/langgraph_bench.py"
  "$VENVS/lg/bin/python" "$BENCH_DIR/langgraph_bench.py"
}

cmd="${1:-run}"
case "$cmd" in
  setup) setup ;;
  run) run ;;
  *) echo "usage: $0 [setup|run]" >&2; exit 2 ;;
esac
