# Sourced by the fetch scripts: downloads one wheel from PyPI into a folder and checks
# it against a pinned sha256.
#   wheel=$(pip_wheel "package==version" SHA256 DIR)
pip_wheel() {
  local spec=$1 sha256=$2 dir=$3 wheel actual
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --dest "$dir" "$spec" >&2
  wheel=$(ls "$dir"/*.whl)
  actual=$(sha256sum "$wheel" | cut -d' ' -f1)
  if [[ "$actual" != "$sha256" ]]; then
    echo "error: $wheel has sha256 $actual, expected $sha256" >&2
    return 1
  fi
  echo "$wheel"
}
