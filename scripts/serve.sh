#!/usr/bin/env bash
# Start Stepstone's processes in the foreground; Ctrl-C stops them all.
# Called by `make run` with PYTHON, HOST and PORT set.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
BIN=$(dirname "$PYTHON")

"$PYTHON" manage.py bootstrap --url "http://$HOST:$PORT/"

pids=()
stop() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait || true
}
trap stop INT TERM EXIT

"$BIN/daphne" -b "$HOST" -p "$PORT" stepstone.asgi:application &
pids+=($!)
# The workers that execute runs (django-q2, ORM broker on the same database).
"$PYTHON" manage.py qcluster &
pids+=($!)

# Stop everything as soon as one process exits.
wait -n
