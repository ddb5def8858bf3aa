#!/usr/bin/env bash
# Score every fine-tuned run of the paired study on brains none of them saw, then pair the runs on
# those brains with intervals over seeds and brains (docs/results.md, "Scored on 30 new brains").
# The study validates every run on the same 4 brains of fold 0; this asks whether its differences
# hold for brains in general. Resumable: a run whose scores exist is skipped. Two calls can run side by
# side (one thread each): each claims a run before predicting it (a call that died leaves its claim:
# remove $OUT/heldout/claims/<run> to score that run again).
#   OUT=runs/study26_150 OMP_NUM_THREADS=1 bash experiments/study_heldout.sh
set -euo pipefail
OUT=${OUT:-runs/study26}
HELD_OUT=${HELD_OUT:-data/study_heldout}     # subjects 20-49 of the study's generator (0-19 are the study's)
PY=${PYTHON:-python}
SCORES="$OUT/heldout/scores"
mkdir -p "$SCORES" "$OUT/heldout/predictions" "$OUT/heldout/claims"

if [ ! -d "$HELD_OUT" ]; then
  # Subject i is the same whatever the count: 0-19 are the study's brains, 20-49 new ones.
  $PY -m brainsegfounder.data.synthetic --layout brats2021 --subjects 50 --variety high --out "${HELD_OUT}_all"
  mkdir -p "$HELD_OUT"
  for i in $(seq 20 49); do ln -sfn "$(realpath "${HELD_OUT}_all")/BraTS2021_000$i" "$HELD_OUT/BraTS2021_000$i"; done
fi

for ckpt in "$OUT"/pieces/finetune_*/*/version_0/checkpoints/best-*.ckpt; do
  run=$(basename "$(dirname "$(dirname "$(dirname "$ckpt")")")")      # e.g. stage2_4_s0
  [ -f "$SCORES/$run.csv" ] && continue
  mkdir "$OUT/heldout/claims/$run" 2>/dev/null || continue               # the other call has it
  t0=$(date +%s)
  $PY -m brainsegfounder.predict --ckpt "$ckpt" --input "$HELD_OUT" --output "$OUT/heldout/predictions/$run" \
      --device cpu --overwrite > "$OUT/heldout/claims/$run/predict.log" 2>&1
  $PY -m brainsegfounder.evaluate --pred "$OUT/heldout/predictions/$run" --ref "$HELD_OUT" --task brats2021 \
      --out "$SCORES/$run.csv" --overwrite > "$OUT/heldout/claims/$run/evaluate.log" 2>&1
  printf '%s\t%s s\t%s\tload %s\n' "$run" $(($(date +%s) - t0)) "$(date -u +%FT%TZ)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/heldout/times.tsv"
done
$PY -m brainsegfounder.evaluation.heldout --scores "$SCORES" --out "$OUT/heldout"
