#!/usr/bin/env bash
# `pip install gradstudy` is the whole tool (issue 15): build the sdist and the wheel (the
# wheel from the sdist, so the sdist must hold everything), check their metadata with
# `twine check --strict` and their contents against the repository, install the wheel into
# a fresh virtual environment outside the repository (pinned by constraints.txt), and run,
# from an empty directory, `gradstudy --version`, `list`, `run`, `reproduce --scale smoke`
# (three studies; WHEEL_SMOKE=all: every one) and `diagnose examples.models:cnn1d`. Each must exit 0 and write its files under --out,
# nothing else in that directory nor in the installed environment.
#
# Needs the repository's venv (make install: build and twine are in the `test` extra);
# VENV=... names another. KEEP_WHEEL_CHECK=1 keeps the temporary folder for inspection.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
VENV="${VENV:-.venv}"
[[ "${VENV}" = /* ]] || VENV="${ROOT}/${VENV}"  # relative to the repository root
BUILD_PY="${VENV}/bin/python"
if [[ ! -x "${BUILD_PY}" ]]; then
    echo "wheel_check: error: no ${BUILD_PY}; run 'make install' first" >&2
    exit 1
fi
# the interpreter the repository's venv was made from: the same Python as constraints.txt
BASE_PY="$("${BUILD_PY}" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gradstudy-wheel-check.XXXXXX")"
WORK="$(cd "${WORK}" && pwd -P)"
case "${WORK}/" in
    "$(pwd -P)/"*) echo "wheel_check: error: temporary folder ${WORK} is inside the repository" >&2
                   exit 1 ;;
esac
cleanup() {
    if [[ "${KEEP_WHEEL_CHECK:-0}" = 1 ]]; then
        echo "wheel_check: kept ${WORK}"
    else
        rm -rf "${WORK}"
    fi
}
trap cleanup EXIT

fail() {
    echo "wheel_check: FAIL: $*" >&2
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
TIMINGS=()

T_ALL="$(now)"

# ---------------------------------------------------------------- build and twine check
echo "wheel_check: building the sdist and wheel in ${WORK}"
T="$(now)"
if ! "${BUILD_PY}" -m build --outdir "${WORK}/dist" "${ROOT}" > "${WORK}/build.log" 2>&1; then
    tail -n 40 "${WORK}/build.log" >&2
    fail "python -m build"
fi
TIMINGS+=("build sdist+wheel: $(since "${T}") s")
shopt -s nullglob
WHEELS=("${WORK}"/dist/gradstudy-*.whl)
SDISTS=("${WORK}"/dist/gradstudy-*.tar.gz)
shopt -u nullglob
[[ ${#WHEELS[@]} -eq 1 && ${#SDISTS[@]} -eq 1 ]] || fail "expected one wheel and one sdist in ${WORK}/dist"
WHEEL="${WHEELS[0]}"
SDIST="${SDISTS[0]}"
"${BUILD_PY}" -m twine check --strict "${WHEEL}" "${SDIST}" || fail "twine check --strict"
WHEEL_KB="$(( ($(stat -c %s "${WHEEL}") + 1023) / 1024 ))"
SDIST_KB="$(( ($(stat -c %s "${SDIST}") + 1023) / 1024 ))"

# ------------------------------------------- the archives hold every study and example
"${BUILD_PY}" - "${ROOT}" "${WHEEL}" "${SDIST}" <<'PY' || fail "archive contents"
import re
import sys
import tarfile
import zipfile
from pathlib import Path

root, wheel, sdist = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
version = re.search(r'^version = "([^"]+)"', (root / "pyproject.toml").read_text(), re.M)[1]
in_wheel = set(zipfile.ZipFile(wheel).namelist())
with tarfile.open(sdist) as tar:
    top = f"gradstudy-{version}/"
    in_sdist = {n.removeprefix(top) for n in tar.getnames()}
missing = []
for folder in ("experiments", "examples"):
    files = sorted(p.name for p in (root / folder).glob("*.py"))
    assert files, f"no {folder}/*.py in the repository"
    missing += [f"wheel: gradstudy/{folder}/{f}" for f in files
                if f"gradstudy/{folder}/{f}" not in in_wheel]
    missing += [f"sdist: {folder}/{f}" for f in files if f"{folder}/{f}" not in in_sdist]
for package in sorted(p.parent for p in (root / "gradstudy").rglob("__init__.py")):
    for module in sorted(package.glob("*.py")):
        name = module.relative_to(root).as_posix()
        missing += [f"wheel: {name}"] if name not in in_wheel else []
        missing += [f"sdist: {name}"] if name not in in_sdist else []
dist_info = f"gradstudy-{version}.dist-info/"
missing += [f"wheel: {dist_info}{n}" for n in ("licenses/LICENSE", "METADATA", "entry_points.txt")
            if dist_info + n not in in_wheel]
missing += [f"sdist: {n}" for n in ("LICENSE", "README.md", "pyproject.toml", "PKG-INFO")
            if n not in in_sdist]
if missing:
    sys.exit("missing from the archives: " + ", ".join(missing))
print(f"archives: {len(in_wheel)} files in the wheel, {len(in_sdist)} in the sdist, "
      "every module, study and example present")
PY

# ------------------------------------------------ a fresh venv outside the repository
echo "wheel_check: installing $(basename "${WHEEL}") into a fresh venv"
T="$(now)"
"${BASE_PY}" -m venv "${WORK}/venv"
if ! "${WORK}/venv/bin/python" -m pip install --disable-pip-version-check \
        -c "${ROOT}/constraints.txt" "${WHEEL}" > "${WORK}/install.log" 2>&1; then
    grep -v "^WARNING: Location" "${WORK}/install.log" | tail -n 30 >&2
    fail "pip install of the wheel"
fi
INSTALL_S="$(since "${T}")"
TIMINGS+=("install wheel into a fresh venv: ${INSTALL_S} s")
GS="${WORK}/venv/bin/gradstudy"
[[ -x "${GS}" ]] || fail "no gradstudy command in the fresh venv"
SITE="$("${WORK}/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[[ -d "${SITE}/gradstudy/experiments" && -d "${SITE}/gradstudy/examples" ]] \
    || fail "the installed package has no gradstudy/experiments or gradstudy/examples"
touch "${WORK}/installed.stamp"
sleep 1  # file times have a resolution: anything written by the commands is newer

# ------------------------------------------------------- the commands, from an empty directory
EMPTY="${WORK}/empty"
mkdir "${EMPTY}"
cd "${EMPTY}"
# nothing of the repository on the path, nor a study folder from the environment
unset GRADSTUDY_EXPERIMENTS PYTHONPATH PYTHONHOME
export PYTHONNOUSERSITE=1

step() {  # step LABEL COMMAND...: run, time, keep the output, fail with its tail
    local label="$1" t rc=0
    shift
    echo "wheel_check: gradstudy ${label}"
    t="$(now)"
    "$@" > "${WORK}/${label}.log" 2>&1 || rc=$?
    TIMINGS+=("gradstudy ${label}: $(since "${t}") s")
    if [[ ${rc} -ne 0 ]]; then
        tail -n 30 "${WORK}/${label}.log" >&2
        fail "gradstudy ${label} exited ${rc}"
    fi
}
need() {  # need PATH...: each exists and is a non-empty file
    local f
    for f in "$@"; do
        [[ -s "${f}" ]] || fail "expected output missing or empty: ${f#"${EMPTY}/"}"
    done
}
need_glob() {  # need_glob DIR PATTERN: at least one match
    compgen -G "$1/$2" > /dev/null || fail "no $2 in ${1#"${EMPTY}/"}"
}

VERSION="$(sed -n 's/^version = "\([^"]*\)".*/\1/p' "${ROOT}/pyproject.toml")"
[[ -n "${VERSION}" ]] || fail "no version in pyproject.toml"
step version "${GS}" --version
grep -qx "gradstudy ${VERSION}" "${WORK}/version.log" \
    || fail "gradstudy --version printed '$(cat "${WORK}/version.log")', expected 'gradstudy ${VERSION}'"

step list "${GS}" list
STUDIES=()
for f in "${ROOT}"/experiments/*.py; do
    name="$(basename "${f}" .py)"
    [[ "${name}" = _* ]] || STUDIES+=("${name}")
done
for name in "${STUDIES[@]}"; do
    grep -q "^${name} " "${WORK}/list.log" || fail "gradstudy list does not list ${name}"
done
! grep -q "BROKEN" "${WORK}/list.log" || fail "gradstudy list: $(grep BROKEN "${WORK}/list.log")"

RUN_STUDY=multiplication_chain
step run "${GS}" run "${RUN_STUDY}" --out out/run --no-progress
need "out/run/results/smoke/${RUN_STUDY}/summary.json"
need_glob "out/run/figures/smoke/${RUN_STUDY}" "*.png"

# Three studies by default (a chain, a sweep and a training on generated MNIST-1D data):
# `list` above has already imported every packaged study from the wheel, the archive check
# found every file, and `make test` runs the full smoke reproduction in the repository;
# WHEEL_SMOKE=all reproduces every study from the wheel (4 more minutes on 2 cores).
if [[ "${WHEEL_SMOKE:-some}" = all ]]; then
    REPRODUCED=("${STUDIES[@]}")
    step reproduce "${GS}" reproduce --scale smoke --out out/reproduce --no-progress
else
    REPRODUCED=(multiplication_chain glorot_histograms optimizers)
    step reproduce "${GS}" reproduce --scale smoke --only "${REPRODUCED[@]}" \
        --out out/reproduce --no-progress
fi
! grep -q "broken stud" "${WORK}/reproduce.log" || fail "reproduce skipped broken studies"
for name in "${REPRODUCED[@]}"; do
    need "out/reproduce/results/smoke/${name}/summary.json"
    need_glob "out/reproduce/figures/smoke/${name}" "*.png"
done
need out/reproduce/figures/smoke/claims.md out/reproduce/figures/smoke/claims.tex
CLAIMS_LINE="$(grep '^reproduce (smoke)' "${WORK}/reproduce.log" || true)"

step diagnose "${GS}" diagnose examples.models:cnn1d --seeds 2 --out out/diagnose
need out/diagnose/results/diagnose/custom/cnn1d/diagnose.nc out/diagnose/figures/diagnose/custom/cnn1d/cnn1d.png

# ------------------------------------------------------------- nothing written elsewhere
cd "${WORK}"
EXTRA="$(find "${EMPTY}" -mindepth 1 -maxdepth 1 ! -name out)"
[[ -z "${EXTRA}" ]] || fail "written beside --out in the working directory: ${EXTRA}"
CHANGED="$(find "${WORK}/venv" -newer "${WORK}/installed.stamp" ! -type d | head -n 20)"
[[ -z "${CHANGED}" ]] || fail "written into the installed environment: ${CHANGED}"

echo "wheel_check: OK ($(basename "${WHEEL}"): ${WHEEL_KB} KB, sdist ${SDIST_KB} KB)"
if [[ -n "${CLAIMS_LINE}" ]]; then
    echo "  ${CLAIMS_LINE}"
fi
for t in "${TIMINGS[@]}"; do
    echo "  ${t}"
done
echo "  wheel check in all: $(since "${T_ALL}") s"
