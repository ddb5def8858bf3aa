"""The interactive slice viewer of one case: nilearn's ``view_img`` (brainsprite), made to travel.

``view_img`` writes a complete HTML document that embeds its JavaScript (jQuery, brainsprite)
and the volume as PNG sprites, so it works offline. This module

- downsamples the background so that its longest side has at most ``max_side`` voxels (a 1 mm
  BraTS case at full size is a ~1.5 MB sprite; 100 cases would not load);
- colours the label map with a discrete colormap built from the scheme's legend (value ``v`` gets
  the legend colour of ``v``; nearest-neighbour resampling keeps labels labels);
- re-encodes the background sprite (a PNG of every slice) as JPEG, 3-4x smaller; the label
  sprite stays PNG so that label colours are exact;
- removes the one online reference nilearn adds (a favicon link) so the page asks for nothing;
- moves the JavaScript libraries every view repeats (jQuery, brainsprite: ~150 kB) out of each
  view (:func:`share_libraries`), so a 100-case page carries them once;
- encodes the document so that it can sit, unparsed, inside the report until a case is opened
  (:func:`encode_inline`; the page's script reverses it with one replace).

Example:
    >>> print(encode_inline("<b>x</b><!-- c -->"))
    <b>x<\\/b><\\!-- c -->
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from brainsegfounder.data.regions import RegionScheme

__all__ = ["case_view_html", "encode_inline", "share_libraries"]

_FAVICON = re.compile(r"<link[^>]*rel=[\"'](?:shortcut )?icon[\"'][^>]*>", re.IGNORECASE)
_SPRITE = re.compile(r'(<img id="spriteImg-[^"]*"[^>]*?src=")data:image/png;base64,([A-Za-z0-9+/=]+)')
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
#: Scripts at least this long are libraries shared by every view (nilearn's case data is shorter).
LIBRARY_MIN_CHARS = 20_000


def _jpeg_sprite(html: str, quality: int = 85) -> str:
    import base64
    import io

    from PIL import Image

    def encode(match: re.Match) -> str:
        image = Image.open(io.BytesIO(base64.b64decode(match.group(2)))).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        return f"{match.group(1)}data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}"

    return _SPRITE.sub(encode, html, count=1)


def share_libraries(html: str, libraries: list[str]) -> str:
    """Replace each long ``<script>`` body by ``/*bsf-lib-N*/``, N its index in ``libraries`` (extended).

    >>> libraries = []
    >>> share_libraries("<script>" + "x" * LIBRARY_MIN_CHARS + "</script><script>go()</script>", libraries)
    '<script>/*bsf-lib-0*/</script><script>go()</script>'
    >>> len(libraries[0])
    20000
    """

    def replace(match: re.Match) -> str:
        body = match.group(1)
        if len(body) < LIBRARY_MIN_CHARS:
            return match.group(0)
        if body not in libraries:
            libraries.append(body)
        return f"<script>/*bsf-lib-{libraries.index(body)}*/</script>"

    return _SCRIPT.sub(replace, html)


def encode_inline(html: str) -> str:
    """Escape ``<`` before ``/``, ``!`` and ``\\`` so the text ends no ``<script>`` it is put in.

    Reversed in the page by ``text.replace(/<\\\\([\\s\\S])/g, "<$1")``.
    """
    return re.sub(r"<([\\/!])", r"<\\\1", html)


def _colormap(scheme: RegionScheme, top: int):
    from matplotlib.colors import ListedColormap

    legend = scheme.legend
    return ListedColormap(["#000000"] + [legend.get(v, ("", "#808080"))[1] for v in range(1, top + 1)])


def _downsampled(image, max_side: int):
    from nilearn.image import resample_img

    factor = math.ceil(max(image.shape[:3]) / max_side)
    if factor <= 1:
        return image
    affine = image.affine.copy()
    affine[:3, :3] = affine[:3, :3] * factor
    shape = tuple(max(1, s // factor) for s in image.shape[:3])
    return resample_img(image, target_affine=affine, target_shape=shape, interpolation="continuous",
                        force_resample=True, copy_header=True)


def case_view_html(label_path: str | Path, scheme: RegionScheme, background: str | Path | None = None,
                   max_side: int = 128, width: int = 600) -> str:
    """The full HTML document of nilearn's viewer for one case, centred on the largest lesion."""
    import nibabel as nib
    from nilearn.plotting import view_img

    from brainsegfounder.report.overlays import largest_lesion_centre

    label_image = nib.load(str(label_path))
    label = np.asanyarray(label_image.dataobj).astype(np.int16)
    label_image = nib.Nifti1Image(label, label_image.affine)
    top = max([int(label.max()), *scheme.legend])
    centre = largest_lesion_centre(label > 0)
    cut = None if centre is None else tuple(float(c) for c in (label_image.affine @ (*centre, 1))[:3])
    bg = False
    if background is not None:
        bg = nib.load(str(background))
        bg = _downsampled(nib.Nifti1Image(np.asanyarray(bg.dataobj).astype(np.float32), bg.affine), max_side)
    elif max(label.shape) > max_side:
        # Without a background the label map itself sets the grid: keep it small too.
        bg = _downsampled(nib.Nifti1Image((label > 0).astype(np.float32) * 0.2, label_image.affine), max_side)
    view = view_img(label_image, bg_img=bg, cut_coords=cut, cmap=_colormap(scheme, top), symmetric_cmap=False,
                    vmin=0, vmax=top, threshold=0.5, resampling_interpolation="nearest", colorbar=False,
                    black_bg=True, annotate=True, draw_cross=True, opacity=0.7, width_view=width,
                    title=None)
    return _jpeg_sprite(_FAVICON.sub("", view.get_standalone()))
