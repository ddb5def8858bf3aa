#!/usr/bin/env bash
# Does pretraining pay? The paired low-label study and the frozen-encoder probe on synthetic data,
# on 2 CPU cores, in pieces of well under an hour each (docs/results.md has what it measured, each
# piece's time and load average). Every step is skipped when its output exists, so rerunning the
# script after an interruption continues where it stopped (lowlabel --resume within a piece).
#   bash experiments/study_paired.sh                  # the whole study, piece after piece
#   PIECES="ssl" bash experiments/study_paired.sh     # only the SSL stages (then "finetune", "probe", "collect")
# Pieces: ssl (Stage 1, Stage 2, with validation curves) | finetune (one piece per setting: all
# seeds and sizes) | probe (encoder frozen, one piece per setting) | collect (tables, plots, curves).
# Two calls can run side by side (one thread each: OMP_NUM_THREADS=1) with different SETTINGS/SEEDS
# and TAGs; collect merges every piece folder.
set -euo pipefail
OUT=${OUT:-runs/study26}
PIECES=${PIECES:-ssl finetune probe collect}
STAGE1_STEPS=${STAGE1_STEPS:-200}
STAGE2_STEPS=${STAGE2_STEPS:-100}
SSL_VAL_EVERY=${SSL_VAL_EVERY:-25}
STEPS=${STEPS:-80}
COUNTS=${COUNTS:-1 4}
SEEDS=${SEEDS:-0 1 2 3 4}
SETTINGS=${SETTINGS:-scratch stage1 stage2}
PROBE_COUNTS=${PROBE_COUNTS:-4}
PROBE_SETTINGS=${PROBE_SETTINGS:-scratch stage1 stage2}
TAG=${TAG:-}                # suffix of this call's piece folders: two calls side by side never share one
PY=${PYTHON:-python}
TIMES="$OUT/piece_times.tsv"
mkdir -p "$OUT"

# One line per piece: name, wall seconds, when it ended, load average then.
timed() {
  local name=$1 t0
  shift
  t0=$(date +%s)
  "$@"
  printf '%s\t%s s\t%s\tload %s\n' "$name" $(($(date +%s) - t0)) "$(date -u +%FT%TZ)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$TIMES"
}
has() { [[ " $PIECES " == *" $1 "* ]]; }

[ -d data/study_ukb ] || $PY -m brainsegfounder.data.synthetic --layout ukb --subjects 12 --variety high --out data/study_ukb
[ -d data/study_brats2021 ] || $PY -m brainsegfounder.data.synthetic --layout brats2021 --subjects 20 --variety high \
  --out data/study_brats2021

S1="$OUT/stage1/version_0/checkpoints/last.ckpt"
S2="$OUT/stage2/version_0/checkpoints/last.ckpt"
SSL_ARGS=(--trainer.default_root_dir="$OUT" --trainer.logger.init_args.save_dir="$OUT"
          --trainer.val_check_interval="$SSL_VAL_EVERY")
if has ssl; then
  [ -f "$S1" ] || timed "stage1 ($STAGE1_STEPS steps)" $PY -m brainsegfounder.fit --config experiments/study_stage1.yaml \
    --trainer.max_steps="$STAGE1_STEPS" "${SSL_ARGS[@]}"
  [ -f "$S2" ] || timed "stage2 ($STAGE2_STEPS steps)" $PY -m brainsegfounder.fit --config experiments/study_stage2.yaml \
    --model.init_args.backbone.init_from="$S1" --trainer.max_steps="$STAGE2_STEPS" "${SSL_ARGS[@]}"
fi

MAP="stage1:--model.init_args.backbone.modality_map={flair: flair, t1ce: t1, t1: t1, t2: flair}"
piece() {  # piece KIND SETTING COUNTS [--probe frozen]
  local kind=$1 setting=$2 counts=$3
  shift 3
  # shellcheck disable=SC2086
  timed "$kind $setting (sizes $counts, seeds $SEEDS, $STEPS steps)" $PY -m brainsegfounder.lowlabel \
    --config experiments/lowlabel_synthetic.yaml --out "$OUT/pieces/${kind}_${setting}${TAG}" \
    --settings "$setting" --seeds $SEEDS --counts $counts --weights stage1="$S1" stage2="$S2" \
    --setting_args "$MAP" --resume "$@" --trainer.max_steps="$STEPS" --trainer.val_check_interval="$STEPS"
}
if has finetune; then
  for setting in $SETTINGS; do piece finetune "$setting" "$COUNTS"; done
fi
if has probe; then
  for setting in $PROBE_SETTINGS; do piece probe "$setting" "$PROBE_COUNTS" --probe frozen; done
fi
if has collect; then
  $PY -m brainsegfounder.lowlabel --collect "$OUT"/pieces/finetune_* --out "$OUT/paired"
  $PY -m brainsegfounder.lowlabel --collect "$OUT"/pieces/probe_* --out "$OUT/probe"
  $PY -m brainsegfounder.evaluation.curves --run stage1="$OUT/stage1/version_0" --run stage2="$OUT/stage2/version_0" \
    --metrics train/loss_rotation train/loss_contrastive train/loss_reconstruction val/loss_reconstruction \
              val/rotation_accuracy val/contrastive_accuracy \
    --out "$OUT/ssl_curves.png" --title "SSL on the study's data: Stage 1 (12 UKB brains), Stage 2 (16 BraTS brains)" \
    --table | tee "$OUT/ssl_curves.txt"
fi
