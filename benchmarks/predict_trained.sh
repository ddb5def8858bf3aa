#!/usr/bin/env bash
# predict with a trained checkpoint on 3 BraTS-sized (240 x 240 x 155, 1 mm) synthetic cases: default vs --fast vs
# --engine onnxruntime, the wall time of each (start-up included) and the Dice of each label map against the
# default path's and against the truth. Usage (after make demo): bash benchmarks/predict_trained.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CK=${CK:-runs/demo/finetune/version_0/checkpoints/best-step=100.ckpt}
D=${D:-/tmp/brats1mm}
O=${O:-/tmp/fastcheck}
if [ -e "$O" ]; then echo "$O exists; set O= to a new folder (nothing is overwritten)" >&2; exit 2; fi
mkdir -p "$O"
[ -d $D ] || python -m brainsegfounder.data.synthetic --layout brats2021 --subjects 3 --spacing 1.0 --seed 7 --out $D
CASES=$(ls -d $D/BraTS2021_*)
for mode in default fast onnxruntime; do
  extra=""; [ $mode = fast ] && extra="--fast"; [ $mode = onnxruntime ] && extra="--engine onnxruntime"
  s=$(date +%s.%N)
  python -m brainsegfounder.predict --ckpt $CK --input $CASES --output $O/$mode $extra > $O/$mode.log 2>&1
  e=$(date +%s.%N)
  echo "$mode wall $(python -c "print(round($e-$s,1))") s for 3 cases (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a $O/times.txt
done
for mode in fast onnxruntime; do
  python -m brainsegfounder.evaluate --pred $O/$mode --ref $O/default --task brats2021 --out $O/$mode-vs-default.csv > $O/$mode-eval.log 2>&1 || true
done
python -m brainsegfounder.evaluate --pred $O/default --ref $D --task brats2021 --out $O/default-vs-truth.csv > $O/default-eval.log 2>&1 || true
python -m brainsegfounder.evaluate --pred $O/fast --ref $D --task brats2021 --out $O/fast-vs-truth.csv > $O/fast-eval.log 2>&1 || true
