"""AdamW with linear warm-up and cosine decay, stepped every optimiser step (shared by all tasks)."""

from __future__ import annotations

import torch
from monai.optimizers import WarmupCosineSchedule


def adamw_warmup_cosine(module, lr: float, weight_decay: float, warmup: float) -> dict:
    """Lightning's ``configure_optimizers`` return value for ``module``.

    Args:
        lr: peak learning rate.
        weight_decay: AdamW's decoupled weight decay.
        warmup: warm-up length: a fraction of all training steps when < 1, else a step count.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    warmup_steps = int(round(warmup * total)) if warmup < 1 else int(warmup)
    scheduler = WarmupCosineSchedule(optimizer, warmup_steps=min(warmup_steps, total - 1), t_total=total)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
