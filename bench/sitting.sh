#!/usr/bin/env bash
# One benchmark sitting: the machine's matmul peak, then ours and every peer of
# ../shared/bench, row by row, back to back, and the compare.py table at the end.
#
#   bash bench/sitting.sh [--quick]        # --quick: BERT-Mini rows only
#
# Ours runs with the scripts' default settings (bench_ours.py's `auto`), so the
# table states what a user gets; the log records the CPU features and those settings.
#
# Each row (size x workload x dtype x implementation) runs in its own process
# under a time cap, so a peer whose path is emulated and very slow on this CPU
# (bf16 without AVX-512-BF16) cannot eat the sitting: a capped row is listed in
# $OUT_DIR/capped.txt with the cap, which bounds its speed from above.
#
# Environment:
#   OUT_DIR        where the JSON lines go (default bench/results/sitting-<stamp>)
#   CAP_MINI_S     time cap per Mini row (default 300)
#   CAP_BASE_S     time cap per Base row (default 600)
#   CAP_SLOW_S     cap for the Base bf16 rows of HF torch and Model Garden, which
#                  run 10-20x slower than fp32 on CPUs without native bf16
#                  (default 360; they also run 1 warm-up + 3 timed steps)
#   IMPLS          which implementations (default "ours hf-torch keras-hub tf-models")
#   ROWS           which rows (default all ten: "W1_infer:fp32 W1_infer:bf16 W2_finetune:fp32
#                  W2_finetune:bf16 W3_pretrain:fp32"); SIZES (default "mini base")
#   PEAK_FROM      a peak.jsonl to reuse instead of measuring the peak (a sitting run in
#                  parts, back to back: the later parts reuse the first part's peak)
#   PEER_VENV, PEER_VENV_TFM   the peers' venvs, as ../shared/bench/peers/run_peers.sh
#                  builds them (run it once with --quick to create them)
set -u -o pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
PEERS_DIR="$SHARED_BENCH/peers"
PEER_VENV="${PEER_VENV:-$HOME/.cache/bert-peers/venv}"
PEER_VENV_TFM="${PEER_VENV_TFM:-$HOME/.cache/bert-peers/venv-tfm}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results/sitting-$STAMP}"
CAP_MINI_S="${CAP_MINI_S:-300}"
CAP_BASE_S="${CAP_BASE_S:-600}"
CAP_SLOW_S="${CAP_SLOW_S:-360}"

SIZES="${SIZES:-mini base}"
[ "${1:-}" = "--quick" ] && SIZES="mini"
IMPLS="${IMPLS:-ours hf-torch keras-hub tf-models}"
ROWS="${ROWS:-W1_infer:fp32 W1_infer:bf16 W2_finetune:fp32 W2_finetune:bf16 W3_pretrain:fp32}"

for need in "$SHARED_BENCH/benchlib.py" "$PEER_VENV/bin/python" "$PEER_VENV_TFM/bin/python"; do
  if [ ! -e "$need" ]; then
    echo "sitting.sh: $need is missing; run ../shared/bench/peers/run_peers.sh --quick once to build the peers' venvs" >&2
    exit 1
  fi
done
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/sitting.log"
: > "$OUT_DIR/capped.txt"
RUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONUNBUFFERED=1)

( while :; do echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 10; done ) \
    > "$OUT_DIR/load.txt" &
SAMPLER=$!
trap 'kill "$SAMPLER" 2>/dev/null' EXIT

row() {  # row CAP OUTFILE LABEL command...
  local cap="$1" out="$2" label="$3"; shift 3
  echo "[sitting] $(date -u +%H:%M:%S) $label (cap ${cap}s, load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$LOG" >&2
  timeout --kill-after=10 "$cap" "${RUN[@]}" "$@" --out "$out" >/dev/null 2>>"$LOG"
  local rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "$label capped_at_s=$cap" >> "$OUT_DIR/capped.txt"
  elif [ "$rc" -ne 0 ]; then
    echo "[sitting] $label exited $rc (see $LOG)" | tee -a "$LOG" >&2
  fi
}

echo "# sitting $STAMP, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" | tee -a "$LOG" >&2
# The CPU kind decides which settings are fastest (and which defaults ours picks):
# record the features that matter, and what the scripts' defaults resolve to.
CPU_FLAGS="$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' \
  | grep -xE 'avx2|avx512f|avx512_bf16|avx512_fp16|avx512_vnni|amx_bf16|amx_tile|amx_int8' | tr '\n' ' ')"
echo "# cpu features: ${CPU_FLAGS:-none of avx2/avx512/amx}" | tee -a "$LOG" >&2
( cd "$ROOT" && python3 -c 'import runner
print("# ours, script defaults (%s CPU): %s" % (runner.cpu_kind(), runner.fastest_settings()))' ) \
  2>/dev/null | tee -a "$LOG" >&2
if [ -n "${PEAK_FROM:-}" ]; then
  # A sitting split in parts: reuse the peak measured by its first part.
  cp "$PEAK_FROM" "$OUT_DIR/peak.jsonl" || exit 1
  echo "[sitting] peak lines from $PEAK_FROM" | tee -a "$LOG" >&2
else
  row 300 "$OUT_DIR/peak.jsonl" "peak tf" python3 "$PEERS_DIR/peak_matmul.py" --backend tf
  # torch's peak script runs fp32 then bf16; without native bf16 the latter takes many
  # minutes, and the fp32 line is written first.
  row 150 "$OUT_DIR/peak.jsonl" "peak torch" "$PEER_VENV/bin/python" "$PEERS_DIR/peak_matmul.py" --backend torch
fi

for size in $SIZES; do
  for impl in $IMPLS; do
    for r in $ROWS; do
      wl="${r%%:*}"; dt="${r##*:}"
      cap="$CAP_MINI_S"; [ "$size" = base ] && cap="$CAP_BASE_S"
      steps=()
      case "$impl" in
        ours)      cmd=(python3 "$HERE/bench_ours.py"); out="$OUT_DIR/ours.jsonl" ;;
        hf-torch)  cmd=("$PEER_VENV/bin/python" "$PEERS_DIR/peer_hf_torch.py"); out="$OUT_DIR/peers.jsonl" ;;
        keras-hub) cmd=("$PEER_VENV/bin/python" "$PEERS_DIR/peer_keras_hub.py"); out="$OUT_DIR/peers.jsonl" ;;
        tf-models) cmd=("$PEER_VENV_TFM/bin/python" "$PEERS_DIR/peer_tf_models.py"); out="$OUT_DIR/peers.jsonl" ;;
        *) echo "sitting.sh: unknown implementation '$impl' in IMPLS (ours hf-torch keras-hub tf-models)" >&2; exit 1 ;;
      esac
      if [ "$size" = base ] && [ "$dt" = bf16 ] && { [ "$impl" = hf-torch ] || [ "$impl" = tf-models ]; }; then
        cap="$CAP_SLOW_S"; steps=(--warmup 1 --steps 3)
      fi
      row "$cap" "$out" "$impl $size $wl $dt" "${cmd[@]}" --sizes "$size" --workloads "$wl" \
          --dtypes "$dt" "${steps[@]}"
    done
  done
done

awk '{s+=$2; if ($2>m) m=$2; n++} END {if (n) printf "# 1-min load during the sitting: mean %.2f, max %.2f (%d samples)\n", s/n, m, n}' \
    "$OUT_DIR/load.txt" | tee -a "$LOG" >&2
for stat in median best; do
  python3 "$SHARED_BENCH/compare.py" "$OUT_DIR/ours.jsonl" "$OUT_DIR/peers.jsonl" \
      "$OUT_DIR/peak.jsonl" --stat "$stat" | tee "$OUT_DIR/table-$stat.txt"
done
echo "capped rows (no line within the cap):" && cat "$OUT_DIR/capped.txt"
