#!/usr/bin/env bash
# The command-line faults of issue 24, probed from outside: one markdown row each (fault | command | exit | first line).
#   CK=runs/demo/finetune/version_0/checkpoints/best-step=75.ckpt D=data/synthetic_brats2021 bash benchmarks/fault_probes.sh
# Needs root for the read-only tmpfs rows (skipped otherwise). Writes only under $W (default /tmp/fault_probes).
export WANDB_MODE=offline
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd); P=${PYTHON:-python}
CK=$(realpath ${CK:-runs/demo/finetune/version_0/checkpoints/best-step=75.ckpt})
D=$(realpath ${D:-data/synthetic_brats2021})
W=${W:-/tmp/fault_probes}
if [ -e "$W" ]; then echo "$W exists; set W= to a new folder (nothing is overwritten)" >&2; exit 2; fi
mkdir -p "$W"; cd "$W"
C=$D/BraTS2021_00000
row() { # fault, command...
  local fault=$1; shift
  local out; out=$("$@" 2>&1); local rc=$?
  local first; first=$(printf '%s\n' "$out" | grep -v '^\s*$' | grep -m1 -E 'error:|note:|resuming|scored|wrote|^\{|[0-9]/[0-9] ' || printf '%s\n' "$out" | head -1)
  local shown="${*//$W\//}"; shown="${shown//$CK/CK}"; shown="${shown//$D\//D\/}"
  printf '| %s | `%s` | %s | %s |\n' "$fault" "$shown" "$rc" "$(printf '%s' "$first" | cut -c1-220 | sed 's/|/\\|/g')"
}
echo "| fault | command | exit | first line |"
echo "| --- | --- | --- | --- |"
row "window not a multiple of 32" $P -m brainsegfounder.predict --ckpt $CK --input $C --output o1 --roi_size 50
row "overlap >= 1" $P -m brainsegfounder.predict --ckpt $CK --input $C --output o2 --overlap 1.5
echo "| (after both) empty output folders left | \`ls o1 o2\` | - | $(ls -d o1 o2 2>/dev/null | wc -l) of 2 exist |"
# 4-D modality file
mkdir -p c4d/BraTS2021_00000; cp $C/* c4d/BraTS2021_00000/; $P -c "
import nibabel as nib, numpy as np
i=nib.load('$C/BraTS2021_00000_flair.nii.gz'); d=np.asarray(i.dataobj)
nib.save(nib.Nifti1Image(np.stack([d,d],-1), i.affine), 'c4d/BraTS2021_00000/BraTS2021_00000_flair.nii.gz')"
row "4-D (X,Y,Z,2) modality file" $P -m brainsegfounder.predict --ckpt $CK --input c4d/BraTS2021_00000 --output o3
# hostile pickles
$P -c "
import pickle, os
class E:
    def __reduce__(self): return (os.system, ('touch $W/pwned',))
for p in (2, 4): pickle.dump({'state_dict': E()}, open(f'evil{p}.ckpt','wb'), protocol=p)
pickle.dump({'w': [1.0]}, open('plain4.ckpt','wb'), protocol=4)"
row "hostile raw pickle, protocol 4" $P -m brainsegfounder.predict --ckpt evil4.ckpt --input $C --output o4
row "hostile raw pickle, protocol 2" $P -m brainsegfounder.predict --ckpt evil2.ckpt --input $C --output o4
row "plain pickle (protocol 4), no code" $P -m brainsegfounder.predict --ckpt plain4.ckpt --input $C --output o4
echo "| (after the three) payload ran | \`ls $W/pwned\` | - | $( [ -e $W/pwned ] && echo RAN || echo 'not run' ) |"
# export: existing file, file in the way
row "export over an earlier export" bash -c "$P -m brainsegfounder.export --ckpt $CK --format torchscript --out ex >/dev/null 2>&1; $P -m brainsegfounder.export --ckpt $CK --format torchscript --out ex"
touch afile
row "export where a file is in the way" $P -m brainsegfounder.export --ckpt $CK --format onnx --out afile/x
mkdir -p ro && mount -t tmpfs -o ro,size=64k tmpfs ro 2>/dev/null && {
row "export into a read-only folder (torchscript)" $P -m brainsegfounder.export --ckpt $CK --format torchscript --out ro/x
row "export into a read-only folder (onnx)" $P -m brainsegfounder.export --ckpt $CK --format onnx --out ro/x
umount -l ro; }
n=$($P -m brainsegfounder.export --ckpt $CK --format onnx --out ex2 2>&1 | grep -c -i warning)
echo "| export --format onnx, warnings printed | \`export --format onnx --out ex2\` | 0 | $n warning lines |"
# fit refusals
row "fit: folds leave no training subject" $P -m brainsegfounder.fit --config $REPO/experiments/demo.yaml --data.root $D --data.n_folds=2 --trainer.max_steps 1 --trainer.default_root_dir runs_b --quiet true
row "fit: --ckpt_path of another model size" $P -m brainsegfounder.fit --config $REPO/experiments/demo.yaml --data.root $D --model.backbone.feature_size 24 --trainer.max_steps 1 --trainer.default_root_dir runs_c --ckpt_path $CK --quiet true
echo "| (after both) run folders left | \`find runs_b runs_c -name 'version_*'\` | - | $(find runs_b runs_c -name 'version_*' 2>/dev/null | wc -l) |"
# help times
for c in fit demo lowlabel predict evaluate report export calibrate robustness data.synthetic; do
  s=$(date +%s%N); $P -m brainsegfounder.$c --help >/dev/null 2>&1; e=$(date +%s%N)
  printf '| --help time | `%s --help` | 0 | %.2f s |\n' "$c" "$(echo "($e - $s)/1000000000" | bc -l)"
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
