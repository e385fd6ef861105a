#!/usr/bin/env bash
# Make the PostgreSQL server available: environments with `conveyor:tracking.database:
# postgresql` (prod) run their MLflow on it (infra/local/postgres.py). Idempotent: does
# nothing when a server is installed. Debian's `postgresql` package puts it under
# /usr/lib/postgresql/<version>/bin; installing it needs root, so anyone else is told what
# to install instead. The package's own cluster service is not used: each env runs its own.
set -euo pipefail

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

for bin in /usr/lib/postgresql/*/bin; do
  if [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ]; then
    exit 0
  fi
done

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing PostgreSQL (Debian package postgresql) for MLflow's database in prod"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
  exit 0
fi

echo "scripts/postgres.sh: PostgreSQL server not found: install Debian's \`postgresql\` package (sudo apt-get install postgresql); environments with conveyor:tracking.database: postgresql need it" >&2
