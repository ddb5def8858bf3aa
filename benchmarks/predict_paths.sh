#!/usr/bin/env bash
# predict with a trained checkpoint on 3 BraTS-sized (240 x 240 x 155, 1 mm) synthetic cases: the default, --fast and
# --engine onnxruntime (and, with OLD=<a checkout of an earlier version>, that version's default), run one after the
# other in fresh processes (start-up included), then the Dice of each label map against the default's and the truth.
#   CK=runs/demo/finetune/version_0/checkpoints/best-step=75.ckpt bash benchmarks/predict_paths.sh
#   OLD=/path/to/older/checkout bash benchmarks/predict_paths.sh      # adds "old_default"
set -u
cd "$(dirname "$0")/.."
P=${PYTHON:-python}
CK=${CK:-runs/demo/finetune/version_0/checkpoints/best-step=75.ckpt}
D=${D:-/tmp/brats1mm}
O=${O:-/tmp/predict_paths}
if [ -e "$O" ]; then echo "$O exists; set O= to a new folder (nothing is overwritten)" >&2; exit 2; fi
mkdir -p "$O"
[ -d "$D" ] || $P -m brainsegfounder.data.synthetic --layout brats2021 --subjects 3 --spacing 1.0 --seed 7 --out "$D"
CASES=$(ls -d "$D"/BraTS2021_*)
run() {  # name, source tree, predict options...
  name=$1; tree=$2; shift 2
  s=$(date +%s.%N)
  (cd "$tree" && PYTHONPATH="$tree" $P -m brainsegfounder.predict --ckpt "$(realpath "$CK")" --input $CASES \
     --output "$O/$name" "$@" > "$O/$name.log" 2>&1)
  e=$(date +%s.%N)
  echo "$name $(echo "$e - $s" | bc) s (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$O/times.txt"
}
[ -n "${OLD:-}" ] && run old_default "$OLD"
run default "$PWD"
run fast "$PWD" --fast
run onnxruntime "$PWD" --engine onnxruntime
for m in ${OLD:+old_default} fast onnxruntime; do
  $P -m brainsegfounder.evaluate --pred "$O/$m" --ref "$O/default" --task brats2021 --out "$O/$m-vs-default.csv" > /dev/null 2>&1
done
for m in ${OLD:+old_default} default fast; do
  $P -m brainsegfounder.evaluate --pred "$O/$m" --ref "$D" --task brats2021 --out "$O/$m-vs-truth.csv" > /dev/null 2>&1
done
for f in "$O"/*_summary.json; do
  $P -c "import json,sys; d=json.load(open(sys.argv[1]))['metrics']; print(sys.argv[1].split('/')[-1][:-13], 'Dice TC/WT/ET', ' / '.join(f\"{d['dice_'+r]['mean']:.3f}\" for r in ('TC','WT','ET')))" "$f"
done | tee -a "$O/times.txt"
