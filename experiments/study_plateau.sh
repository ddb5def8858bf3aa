#!/usr/bin/env bash
# Where does fine-tuning plateau, and does the pretraining gap survive there? One labelled-set size
# and seed of the paired study (experiments/study_paired.sh), fine-tuned much longer with a checkpoint
# kept at every validation; the kept checkpoints are then scored on the 30 held-out brains of
# experiments/study_heldout.sh, giving a held-out Dice curve per setting and the paired difference
# at every scored step (docs/results.md, "Fine-tuning to a plateau").
#   OUT=runs/study26 SETTINGS=scratch OMP_NUM_THREADS=1 bash experiments/study_plateau.sh   # and, beside it,
#   OUT=runs/study26 SETTINGS=stage2  OMP_NUM_THREADS=1 bash experiments/study_plateau.sh
#   OUT=runs/study26 PIECES=collect bash experiments/study_plateau.sh
# Needs the SSL checkpoints of study_paired.sh (PIECES=ssl) under $OUT. Resumable: a finished fit or
# a scored step is skipped.
set -euo pipefail
OUT=${OUT:-runs/study26}
PIECES=${PIECES:-finetune score collect}
SETTINGS=${SETTINGS:-scratch stage2}
COUNT=${COUNT:-4}
SEED=${SEED:-0}
STEPS=${STEPS:-400}
EVERY=${EVERY:-50}                      # validation (on fold 0's 4 brains) and a kept checkpoint
SCORE_STEPS=${SCORE_STEPS:-100 150 200 300 400}
HELD_OUT=${HELD_OUT:-data/study_heldout}
PY=${PYTHON:-python}
PLATEAU="$OUT/plateau"
mkdir -p "$PLATEAU"
has() { [[ " $PIECES " == *" $1 "* ]]; }
stamp() { printf '%s\t%s s\t%s\tload %s\n' "$1" $(($(date +%s) - $2)) "$(date -u +%FT%TZ)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$PLATEAU/times.tsv"; }

# Every validation keeps its checkpoint (best-step=N.ckpt): no selection, each step is scored as it is.
KEEP_ALL='[{"class_path": "brainsegfounder.training.checkpointing.BestAndLastCheckpoint", "init_args":
  {"monitor": "val/dice_mean", "mode": "max", "save_top_k": -1, "save_last": true, "filename": "best-{step}"}}]'
MAP="stage1:--model.init_args.backbone.modality_map={flair: flair, t1ce: t1, t1: t1, t2: flair}"
for setting in $SETTINGS; do
  run="$PLATEAU/fits_$setting/${setting}_${COUNT}_s${SEED}"
  if has finetune && [ ! -f "$run/version_0/checkpoints/best-step=$STEPS.ckpt" ]; then
    t0=$(date +%s)
    $PY -m brainsegfounder.lowlabel --config experiments/lowlabel_synthetic.yaml --out "$PLATEAU/fits_$setting" \
      --settings "$setting" --seeds "$SEED" --counts "$COUNT" --resume \
      --weights stage1="$OUT/stage1/version_0/checkpoints/last.ckpt" stage2="$OUT/stage2/version_0/checkpoints/last.ckpt" \
      --setting_args "$MAP" --trainer.max_steps="$STEPS" --trainer.val_check_interval="$EVERY" \
      "--trainer.callbacks=$KEEP_ALL"
    stamp "fit $setting (size $COUNT, seed $SEED, $STEPS steps, validation every $EVERY)" "$t0"
  fi
  if has score; then
    [ -d "$HELD_OUT" ] || { echo "no $HELD_OUT: make it with experiments/study_heldout.sh (its first lines)" >&2; exit 1; }
    for step in $SCORE_STEPS; do
      scores="$PLATEAU/heldout/step$step/scores"
      [ -f "$scores/${setting}_${COUNT}_s${SEED}.csv" ] && continue
      mkdir -p "$scores" "$PLATEAU/heldout/step$step/logs"
      t0=$(date +%s)
      $PY -m brainsegfounder.predict --ckpt "$run/version_0/checkpoints/best-step=$step.ckpt" --input "$HELD_OUT" \
        --output "$PLATEAU/heldout/step$step/pred_$setting" --device cpu --overwrite \
        > "$PLATEAU/heldout/step$step/logs/predict_$setting.log" 2>&1
      $PY -m brainsegfounder.evaluate --pred "$PLATEAU/heldout/step$step/pred_$setting" --ref "$HELD_OUT" \
        --task brats2021 --out "$scores/${setting}_${COUNT}_s${SEED}.csv" --overwrite \
        > "$PLATEAU/heldout/step$step/logs/evaluate_$setting.log" 2>&1
      stamp "score $setting step $step (${HELD_OUT})" "$t0"
    done
  fi
done
if has collect; then
  $PY -m brainsegfounder.evaluation.heldout --scores "$PLATEAU/heldout" --out "$PLATEAU/table" --steps true
  runs=()
  for f in "$PLATEAU"/table/heldout_curve_*.csv; do n=${f##*heldout_curve_}; runs+=(--run "held-out ${n%.csv}=$f"); done
  for d in "$PLATEAU"/fits_*/*_"${COUNT}"_s"${SEED}"/version_0; do runs+=(--run "val $(basename "$(dirname "$d")")=$d"); done
  $PY -m brainsegfounder.evaluation.curves "${runs[@]}" --metrics heldout/dice_mean heldout/dice_TC heldout/dice_WT heldout/dice_ET val/dice_mean \
    --out "$PLATEAU/plateau_curves.png" --title "Fine-tuning to a plateau: $COUNT labelled brains, seed $SEED" --table
fi
