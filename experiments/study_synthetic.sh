#!/usr/bin/env bash
# The low-label study on synthetic data (CPU, 2 cores; the wall time measured is in docs/results.md): from scratch vs
# Stage-1-only vs Stage-1 -> Stage-2 weights, 1/2/4/8 labelled brains (nested), 3 seeds each,
# held-out Dice on fold 0 of the synthetic BraTS 2021 set. Results: runs/study/lowlabel/
# (lowlabel.csv, lowlabel_summary.csv/.md, lowlabel.png); see docs/results.md.
#   bash experiments/study_synthetic.sh   # STEPS=40 SEEDS="0 1 2" STAGE1_STEPS=100 STAGE2_STEPS=50 change the size
set -euo pipefail
STEPS=${STEPS:-20}
STAGE1_STEPS=${STAGE1_STEPS:-60}
STAGE2_STEPS=${STAGE2_STEPS:-30}
SEEDS=${SEEDS:-0 1 2}
OUT=${OUT:-runs/study}
python -m brainsegfounder.data.synthetic --layout ukb --subjects 12 --variety high --out data/study_ukb
python -m brainsegfounder.data.synthetic --layout brats2021 --subjects 20 --variety high --out data/study_brats2021
python -m brainsegfounder.fit --config experiments/study_stage1.yaml \
    --trainer.max_steps="$STAGE1_STEPS" --trainer.val_check_interval="$STAGE1_STEPS" \
    --trainer.default_root_dir="$OUT" --trainer.logger.init_args.save_dir="$OUT"
S1=$(ls -d "$OUT"/stage1/version_* | sort -V | tail -1)/checkpoints/last.ckpt
python -m brainsegfounder.fit --config experiments/study_stage2.yaml --model.init_args.backbone.init_from="$S1" \
    --trainer.max_steps="$STAGE2_STEPS" --trainer.val_check_interval="$STAGE2_STEPS" \
    --trainer.default_root_dir="$OUT" --trainer.logger.init_args.save_dir="$OUT"
S2=$(ls -d "$OUT"/stage2/version_* | sort -V | tail -1)/checkpoints/last.ckpt
# shellcheck disable=SC2086
python -m brainsegfounder.lowlabel --config experiments/lowlabel_synthetic.yaml --out "$OUT/lowlabel" \
    --counts 1 2 4 8 --seeds $SEEDS --weights stage1="$S1" stage2="$S2" \
    --setting_args "stage1:--model.init_args.backbone.modality_map={flair: flair, t1ce: t1, t1: t1, t2: flair}" \
    --trainer.max_steps="$STEPS" --trainer.val_check_interval="$STEPS"
