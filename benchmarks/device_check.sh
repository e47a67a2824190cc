#!/usr/bin/env bash
# GPU check of gradstudy, for when a GPU machine is at hand: one short script that a
# 10-minute device call can run.  Every piece runs under `timeout` and reports its own
# status; a failed or timed-out piece does not stop the others.
#
#   bash benchmarks/device_check.sh [PIECE ...]      # PIECES: install info tests bench smoke
#                                                     # (default: all, in that order)
#   CPU_ONLY=1 bash benchmarks/device_check.sh       # or --dry-run: the CPU parts, briefly
#
# Environment: VENV (default .venv-gpu; CPU_ONLY: .venv), OUT (default device_check_out:
# logs, JSON lines, the smoke run), T_INSTALL T_TESTS T_BENCH T_SMOKE (seconds per piece),
# SKIP_INSTALL=1 (use VENV as it is).  The benchmarks run with JAX_PLATFORMS=cpu and with
# JAX's default platform (the GPU) and their engine times are printed as GPU/CPU ratios;
# the PyTorch peers are left out there (--no-torch: they are CPU peers, measured by
# `make bench`), as is the JAX loop.
set -u -o pipefail
cd "$(dirname "$0")/.."

DRY=${CPU_ONLY:-0}
PIECES=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    install|info|tests|bench|smoke) PIECES+=("$arg") ;;
    *) echo "device_check.sh: unknown argument '$arg' (allowed: --dry-run install info tests bench smoke)" >&2; exit 2 ;;
  esac
done
[ ${#PIECES[@]} -eq 0 ] && PIECES=(install info tests bench smoke)
if [ "$DRY" = 1 ]; then VENV=${VENV:-.venv}; else VENV=${VENV:-.venv-gpu}; fi
OUT=${OUT:-device_check_out}
mkdir -p "$OUT"
PY="$VENV/bin/python"
STATUS=()

note() { echo "== $*" | tee -a "$OUT/summary.txt"; }

# run NAME SECONDS CMD...: the command under timeout, its output in $OUT/NAME.log
run() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS rc
  note "$name: $* (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  tail -n 5 "$OUT/$name.log"
  case $rc in
    0) STATUS+=("$name: ok in $((SECONDS - t0))s") ;;
    124|137) STATUS+=("$name: TIMED OUT after ${limit}s") ;;
    *) STATUS+=("$name: FAILED (exit $rc) after $((SECONDS - t0))s") ;;
  esac
  note "${STATUS[-1]}"
  return $rc
}

piece_install() {
  if [ "${SKIP_INSTALL:-0}" = 1 ] || [ "$DRY" = 1 ]; then
    test -x "$PY" || { note "install: $PY missing"; return 1; }
    note "install: using $VENV as it is"; return 0
  fi
  test -x "$PY" || python3 -m venv "$VENV" || return 1
  run install "${T_INSTALL:-300}" "$PY" -m pip install -q -c constraints.txt -e ".[test,bench,cuda]"
}

piece_info() {
  if [ "$DRY" = 1 ]; then note "info: nvidia-smi skipped (dry run)"
  else nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt" || note "info: nvidia-smi failed"; fi
  run info 60 "$PY" -c "import jax, gradstudy; print('jax', jax.__version__, 'gradstudy', gradstudy.__version__); print(jax.devices()); print('default backend', jax.default_backend())"
  cat "$OUT/info.log"
}

piece_tests() {
  local paths=(tests/engine/test_sweep.py tests/engine/test_training.py tests/families)
  if [ "$DRY" = 1 ]; then
    run tests 120 "$PY" -m pytest --collect-only -q -p no:cacheprovider "${paths[@]}"
  else
    run tests "${T_TESTS:-200}" "$PY" -m pytest -x -q -p no:cacheprovider "${paths[@]}"
  fi
}

# bench_on NAME PLATFORM SCRIPT ARGS...: one benchmark on one platform ("" = JAX's default)
bench_on() {
  local name=$1 platform=$2; shift 2
  if [ -n "$platform" ]; then
    run "$name" "${T_BENCH:-150}" env JAX_PLATFORMS="$platform" "$PY" "$@"
  else
    run "$name" "${T_BENCH:-150}" env -u JAX_PLATFORMS "$PY" "$@"
  fi
  grep '^{' "$OUT/$name.log" > "$OUT/$name.jsonl" || true
}

piece_bench() {
  local sweep=(benchmarks/bench_sweep.py --no-torch --no-jax-loop)
  local train=(benchmarks/bench_train.py --no-torch --no-jax-loop --repeats 2)
  if [ "$DRY" = 1 ]; then
    sweep+=(--width 16 --seeds 2 --depths 2,4 --repeats 1)
    train+=(--widths 8 --steps 5 --seeds 2 --depth 3 --rates 0.01,0.1 --repeats 1)
  fi
  bench_on sweep_cpu cpu "${sweep[@]}"
  bench_on sweep_gpu "" "${sweep[@]}"
  bench_on train_cpu cpu "${train[@]}"
  bench_on train_gpu "" "${train[@]}"
  "$PY" - "$OUT" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def lines(name):
    p = out / f"{name}.jsonl"
    return [json.loads(l) for l in p.read_text().splitlines()] if p.exists() else []
for bench in ("sweep", "train"):
    cpu, gpu = lines(f"{bench}_cpu"), lines(f"{bench}_gpu")
    if not cpu or not gpu:
        print(f"{bench}: no GPU/CPU ratio (a run is missing)")
    for c, g in zip(cpu, gpu):
        print(f"{bench} width {c['width']}: engine steady cpu {c['engine_s']:.3f}s "
              f"gpu {g['engine_s']:.3f}s (GPU/CPU time {g['engine_s'] / c['engine_s']:.3f}, "
              f"speed-up {c['engine_s'] / g['engine_s']:.1f}x); cold cpu "
              f"{c['engine_cold_s']:.1f}s gpu {g['engine_cold_s']:.1f}s")
EOF
}

piece_smoke() {
  local only=()
  [ "$DRY" = 1 ] && only=(--only multiplication_chain)
  run smoke "${T_SMOKE:-240}" env -u JAX_PLATFORMS "$VENV/bin/gradstudy" reproduce --scale smoke \
    --out "$OUT/smoke" --no-progress "${only[@]}"
}

: > "$OUT/summary.txt"
note "device check: pieces ${PIECES[*]}, venv $VENV, out $OUT, dry run $DRY"
for piece in "${PIECES[@]}"; do
  "piece_$piece" || true
done
note "summary:"
for s in "${STATUS[@]}"; do note "  $s"; done
