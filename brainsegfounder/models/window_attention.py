"""Window attention that keeps one sample's attention scores at a time while training.

MONAI's ``WindowAttention`` materialises the scores of every window of the whole batch, several
times over: ``q @ k^T``, the relative-position bias added, the shift mask added, the softmax
(kept for the backward pass) and, in the backward pass, their gradients. In the first Swin stage
of a 64^3 patch (32^3 tokens in 125 windows of 7^3, 3 heads) each of these is 125 x 3 x 343^2 x
4 B = 176 MB per sample, so an SSL batch of 2 (4 views) holds about 0.7 GB per copy; they are
most of a CPU training step's peak memory (docs/benchmarks.md, "The demo's peak memory").

:class:`ChunkedWindowAttention` computes the same function, one chunk of windows at a time
(``windows_per_chunk``, lined up with the shift mask when windows are shifted), under
``torch.utils.checkpoint``: the forward pass keeps only the ``qkv`` projection, and the backward
pass recomputes one chunk's scores at a time. The output is bit-identical; gradients agree to
float rounding (chunks are summed in another order). The parameters and their names are MONAI's,
so checkpoints and released weights load unchanged. Without gradients (validation, prediction)
the chunks are computed one after the other with nothing to recompute; while tracing or exporting
to ONNX it runs MONAI's own forward, so an exported graph is MONAI's.

Hand-written because no library offers it: PyTorch's fused ``scaled_dot_product_attention`` does
not give the gradient of an additive mask, and the relative-position bias is a trained parameter.

Example:
    >>> import torch
    >>> from monai.networks.nets import SwinUNETR
    >>> net = SwinUNETR(in_channels=1, out_channels=1, feature_size=12)
    >>> chunk_window_attention(net) > 0
    True
    >>> net(torch.randn(1, 1, 64, 64, 64)).mean().backward()  # scores of 64 windows at a time
"""

from __future__ import annotations

import torch
from monai.networks.nets.swin_unetr import WindowAttention
from torch.utils.checkpoint import checkpoint

__all__ = ["ChunkedWindowAttention", "chunk_window_attention", "WINDOWS_PER_CHUNK"]

#: Windows whose scores are alive at once (at most; see :func:`_chunk`). With 64 a 64^3 patch's first
#: stage (125 windows per sample) runs in chunks of 25 windows (35 MB of scores per copy), measured
#: best of 25/50/125 for peak memory at equal speed (docs/benchmarks.md).
WINDOWS_PER_CHUNK = 64


def _attend(qkv: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None, heads: int,
            scale: float) -> torch.Tensor:
    """MONAI's window attention after the ``qkv`` projection, for a chunk of windows."""
    windows, n, c3 = qkv.shape
    c = c3 // 3
    q, k, v = qkv.reshape(windows, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
    attn = (q * scale) @ k.transpose(-2, -1) + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = (attn.view(windows // nw, nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, heads, n, n)
    attn = attn.softmax(-1).to(v.dtype)
    return (attn @ v).transpose(1, 2).reshape(windows, n, c)


class ChunkedWindowAttention(WindowAttention):
    """MONAI's ``WindowAttention``, a chunk of windows at a time (recomputed in backward while training)."""

    windows_per_chunk: int = WINDOWS_PER_CHUNK

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.attn_drop.p > 0 or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            # dropout on the scores would need the RNG replayed; an export keeps MONAI's graph
            return super().forward(x, mask)
        recompute = torch.is_grad_enabled()
        b, n, _ = x.shape
        qkv = self.qkv(x)
        index = self.relative_position_index.clone()[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[index].reshape(n, n, -1).permute(2, 0, 1).contiguous()
        step = _chunk(self.windows_per_chunk, None if mask is None else mask.shape[0])
        if step >= b:
            out = _attend(qkv, bias, mask, self.num_heads, self.scale)
        else:
            # split, not slicing: its backward joins the chunks' gradients once, where each slice's
            # backward would add a zero-padded gradient of the whole qkv (quadratic in the chunks)
            args = [(part, bias, _mask_of(mask, i * step, step), self.num_heads, self.scale)
                    for i, part in enumerate(qkv.split(step))]
            out = torch.cat([checkpoint(_attend, *a, use_reentrant=False) if recompute else _attend(*a) for a in args])
        return self.proj_drop(self.proj(out))


def _chunk(wanted: int, windows_per_sample: int | None) -> int:
    """Windows per chunk: ``wanted``, made to line up with the shift mask's period if there is one.

    With a mask, a chunk is a divisor of the windows per sample (the largest not above ``wanted``)
    or a whole number of samples, so that every chunk starts at window 0 of the mask or at a
    multiple of the chunk inside it.

    >>> _chunk(64, None), _chunk(64, 125), _chunk(64, 27), _chunk(300, 125)
    (64, 25, 54, 250)
    """
    wanted = max(1, int(wanted))
    if windows_per_sample is None:
        return wanted
    nw = windows_per_sample
    if wanted >= nw:
        return nw * (wanted // nw)
    return max(d for d in range(1, wanted + 1) if nw % d == 0)


def _mask_of(mask: torch.Tensor | None, start: int, step: int) -> torch.Tensor | None:
    """The shift mask's rows for the chunk of windows starting at ``start`` (see :func:`_chunk`)."""
    if mask is None or step >= mask.shape[0]:
        return mask
    first = start % mask.shape[0]
    return mask[first:first + step]


def chunk_window_attention(net: torch.nn.Module, windows_per_chunk: int = WINDOWS_PER_CHUNK) -> int:
    """Make every ``WindowAttention`` of ``net`` a :class:`ChunkedWindowAttention`; returns how many.

    The modules keep their parameters and buffers (only their class changes), so ``state_dict``
    keys, loading and exporting are unaffected.
    """
    changed = 0
    for module in net.modules():
        if isinstance(module, WindowAttention):
            module.__class__ = ChunkedWindowAttention
            module.windows_per_chunk = int(windows_per_chunk)
            changed += 1
    return changed
