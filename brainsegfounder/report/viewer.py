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
- draws the L/R orientation letters itself, inside each view's own edges (:data:`LETTERS_JS`):
  brainsprite puts them 5% of a view's width from its edges, centred, so the coronal view's R and
  the axial view's L touch across the border between the two;
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
#: Marks nilearn's script that starts brainsprite; the letters script goes just before it.
_START = re.compile(r"<script>(?=[^<]*initializeBrainSprite)")
#: L and R of the coronal and axial views, each inside its own view (left-aligned L, right-aligned R,
#: half the font size from the edges), and a grey line between the views, redrawn whenever brainsprite
#: draws; the letters' boxes are kept in ``window.bsfLetterBoxes`` (tests check that no two overlap
#: and each stays inside its view).
LETTERS_JS = """(function(){
if (typeof brainsprite !== "function") { return; }
var original = brainsprite;
brainsprite = function (params) {
  var brain = original(params), draw = brain.drawAll;
  brain.drawAll = function () { draw(); letters(brain); };
  brain.drawAll();
  return brain;
};
function letters(b) {
  var c = b.context, size = b.sizeFontPixels, pad = Math.max(3, Math.round(size / 2)), boxes = [];
  var near = b.radiological ? "R" : "L", far = b.radiological ? "L" : "R";
  c.save(); c.fillStyle = "#666";
  c.fillRect(b.widthCanvas.X, 0, 1, b.canvas.height);
  c.fillRect(b.widthCanvas.X + b.widthCanvas.Y, 0, 1, b.canvas.height);
  c.font = size + "px Arial"; c.fillStyle = b.colorFont; c.textBaseline = "top";
  [[b.widthCanvas.X, b.widthCanvas.Y], [b.widthCanvas.X + b.widthCanvas.Y, b.widthCanvas.Z]].forEach(function (v) {
    [[near, "left", v[0] + pad], [far, "right", v[0] + v[1] - pad]].forEach(function (t) {
      c.textAlign = t[1]; c.fillText(t[0], t[2], pad);
      var w = c.measureText(t[0]).width, x0 = t[1] === "left" ? t[2] : t[2] - w;
      boxes.push({text: t[0], x0: x0, x1: x0 + w, y0: pad, y1: pad + size, viewX0: v[0], viewX1: v[0] + v[1]});
    });
  });
  c.restore();
  window.bsfLetterBoxes = boxes;
}
})();"""


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
    options = dict(bg_img=bg, cut_coords=cut, cmap=_colormap(scheme, top), symmetric_cmap=False, vmin=0,
                   vmax=top, threshold=0.5, resampling_interpolation="nearest", colorbar=False, black_bg=True,
                   annotate=True, draw_cross=True, opacity=0.7, width_view=width, title=None)
    document = view_img(label_image, show_lr=False, **options).get_standalone()
    if _START.search(document):
        document = _START.sub(lambda m: f"<script>{LETTERS_JS}</script>{m.group(0)}", document, count=1)
    else:  # another nilearn: keep its own letters rather than none
        document = view_img(label_image, show_lr=True, **options).get_standalone()
    return _jpeg_sprite(_FAVICON.sub("", document))
