#!/usr/bin/env bash
# pytest's own test suite (pytest 8.3.5 sdist from PyPI) under fleet, compared
# test by test with a serial run (compare.py).
#
#   scripts/field/pytest-suite.sh                     # all of testing/, four modes
#   scripts/field/pytest-suite.sh --slice             # fixtures.py + test_setuponly.py (quick)
#   scripts/field/pytest-suite.sh --mode '--mt auto'  # only this mode (repeatable)
#
# Options: --slice, --mode ARGS (repeatable), --timeout SECONDS (per run,
# default 1200; 300 with --slice), --rerun-serial N, --rebuild (new venv).
# Environment: FIELD (work dir, default /work/field), FLEET_SRC (fleet to
# install, default $FIELD/fleet-src, cloned from this repository's HEAD if
# missing), PYTHON (default python3.11 or python3).
# Output: $FIELD/out/pytest[-slice]/ (junit, logs, result.json); exit status
# is compare.py's (0: every mode matched serial).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
FIELD="${FIELD:-/work/field}"
FLEET_SRC="${FLEET_SRC:-$FIELD/fleet-src}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VERSION=8.3.5

slice=0 timeout="" rerun=0 rebuild=0 modes=() cacheopt=()
while [ $# -gt 0 ]; do
  case "$1" in
    --slice) slice=1 ;;
    --mode) modes+=("--mode" "$2"); shift ;;
    --timeout) timeout="$2"; shift ;;
    --rerun-serial) rerun="$2"; shift ;;
    --rebuild) rebuild=1 ;;
    --warm) cacheopt+=("--warm") ;;
    --fleet-cache) cacheopt+=("--fleet-cache" "$2"); shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

mkdir -p "$FIELD/dl" "$FIELD/venvs" "$FIELD/out"
[ -d "$FLEET_SRC/.git" ] || git clone -q "$repo" "$FLEET_SRC"

src="$FIELD/dl/pytest-$VERSION"
if [ ! -f "$src/pyproject.toml" ]; then
  (cd "$FIELD/dl" && pip download -q "pytest==$VERSION" --no-deps --no-binary :all: -d . &&
   tar xzf "pytest-$VERSION.tar.gz")
fi

venv="$FIELD/venvs/pytest-$VERSION"
[ "$rebuild" = 1 ] && rm -rf "$venv"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.built" ]; then
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  echo "building $venv (log: $venv.build.log)" >&2
  {
    "$venv/bin/pip" install -q --disable-pip-version-check -U pip
    # pytest and its test extra ("dev" in 8.3.5: argcomplete attrs hypothesis mock
    # pygments requests setuptools xmlschema); no pytest-xdist, so -n is fleet's
    "$venv/bin/pip" install -q --disable-pip-version-check "$src[dev]"
  } >"$venv.build.log" 2>&1 || { tail -20 "$venv.build.log" >&2; exit 1; }
  touch "$venv/.built"
fi
# fleet: reinstalled every time, so it is $FLEET_SRC's HEAD as it is now
# (setuptools builds in the checkout and never empties build/lib: start clean,
# or modules deleted since the last install are shipped again)
rm -rf "$FLEET_SRC/build"
{
  "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$FLEET_SRC"
  "$venv/bin/pip" install -q --disable-pip-version-check "$FLEET_SRC"   # its deps (PyYAML, rich)
} >>"$venv.build.log" 2>&1 || { tail -20 "$venv.build.log" >&2; exit 1; }
"$venv/bin/python" -c "import pytest, fleet; assert pytest.__version__ == '$VERSION', pytest.__version__; print('pytest', pytest.__version__, 'fleet', fleet.__version__, fleet.__file__)"

if [ "$slice" = 1 ]; then
  args="testing/python/fixtures.py testing/test_setuponly.py"
  out="$FIELD/out/pytest-slice"; name="pytest-slice"; timeout="${timeout:-300}"
else
  args="testing"
  out="$FIELD/out/pytest"; name="pytest"; timeout="${timeout:-1200}"
fi
rm -rf "$out"
exec "$venv/bin/python" "$here/compare.py" --suite "$src" --python "$venv/bin/python" \
  --pytest-args "$args" --timeout "$timeout" --rerun-serial "$rerun" --out "$out" --name "$name" \
  --env PYTHONWARNDEFAULTENCODING=1 ${modes[@]+"${modes[@]}"} ${cacheopt[@]+"${cacheopt[@]}"}
