#!/usr/bin/env bash
# Installs the PII evaluation templates and synthetic identities of the PyPI package
# presidio-evaluator (MIT) into .cache/eval/presidio, checked against a pinned sha256.
# `switchyard eval signals` fills the templates itself. Prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pip-wheel.sh

version="0.3.2"
sha256="57614fe604e52b78e6de25b767c59265886b93bbcdc6c7e43ab2657d3f6302be"
target=".cache/eval/presidio"

if [[ -f "$target/templates.txt" && -f "$target/.sha256" ]] \
   && [[ "$(cat "$target/.sha256")" == "$sha256" ]]; then
  echo "$target"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$(pip_wheel "presidio-evaluator==$version" "$sha256" "$work")
mkdir -p "$target"
python3 - "$wheel" "$target" <<'PY'
import sys, zipfile
raw = "presidio_evaluator/data_generator/raw_data/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("templates.txt", "FakeNameGenerator.com_3000.csv"):
        with open(f"{sys.argv[2]}/{name}", "wb") as out:
            out.write(z.read(raw + name))
PY
echo "$sha256" > "$target/.sha256"
echo "$target"
