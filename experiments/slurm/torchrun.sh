#!/bin/bash
# The same multi-node run without SLURM: torchrun starts one process per GPU on each node and
# Lightning reads the rank, world size and master address from torchrun's environment
# (TorchElasticEnvironment). Run this script on every node with the same MASTER_ADDR:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 bash experiments/slurm/torchrun.sh experiments/ukb_pretrain.yaml
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 bash experiments/slurm/torchrun.sh experiments/ukb_pretrain.yaml
# On one machine: `python -m brainsegfounder.fit --config X.yaml --trainer.devices=4 --trainer.strategy=ddp`
# is enough (Lightning launches the ranks itself). A restart resumes with --ckpt_path last.
set -euo pipefail

CONFIG=${1:?usage: torchrun.sh CONFIG.yaml [overrides...]}
shift
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
GPUS=${GPUS_PER_NODE:-$(nvidia-smi -L 2>/dev/null | wc -l)}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}

exec torchrun --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$GPUS" \
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
    -m brainsegfounder.fit --config "$CONFIG" \
    --trainer.num_nodes="$NNODES" --trainer.devices="$GPUS" --trainer.strategy=ddp \
    --trainer.precision=bf16-mixed --ckpt_path last --quiet true "$@"
