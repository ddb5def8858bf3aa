"""The HTML page: one self-contained file (inline CSS, JavaScript, images), no network, no server.

Heavy parts stay inert until a case is opened: each case's viewer is an encoded HTML document in
a ``<script type="text/x-bsf-view">`` block (text the browser does not parse) and its overlay a
``data-src`` attribute; opening the case puts them into an ``iframe`` and an ``img``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence

from brainsegfounder.data.regions import RegionScheme
from brainsegfounder.report.provenance import _esc, provenance_table

__all__ = ["render_page"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222;max-width:1400px}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
.wide{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0;white-space:normal;
 min-width:3.5em;max-width:8em;vertical-align:bottom}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
td.text,th.text{text-align:left} tr.flagged td{background:#fff3cd} td.bad{color:#b00020;font-weight:600}
td.words{white-space:normal;min-width:10em;max-width:18em}
#cases tbody tr:hover td{background:#eef4ff;cursor:pointer}
.legend span{display:inline-block;margin-right:1em} .swatch{display:inline-block;width:.9em;height:.9em;
 border:1px solid #555;vertical-align:middle;margin-right:.3em}
details.case{border:1px solid #ddd;border-radius:4px;margin:.4em 0;padding:.3em .6em}
details.case summary{cursor:pointer;font-weight:600}
.case-body{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.case-body img{max-width:100%;width:640px;border:1px solid #ccc}
.natives{flex-basis:100%} .natives figure{display:inline-block;margin:0 .5em .5em 0;vertical-align:top}
.natives img{width:300px} .natives figcaption{font-size:.8em;color:#555;max-width:300px}
iframe.viewer{border:0;width:640px;max-width:100%;height:360px}
.subject{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
table.prov,table.kv{width:100%;max-width:60em} .prov th,.kv th{width:9em;max-width:none;cursor:default;position:static;vertical-align:top}
.nowrap{white-space:nowrap}
.prov td{white-space:normal;overflow-wrap:anywhere} .prov table.kv{margin:0;font-size:1em}
code{font-size:.95em;overflow-wrap:anywhere;white-space:pre-wrap}
.muted{color:#666;font-size:.85em} .note{background:#f6f6f6;border-left:4px solid #999;padding:.3em .6em}
.note.warn{border-color:#d39e00;background:#fff8e1}
input#filter{margin:.3em 0;padding:2px 6px;width:20em}
"""

_JS = r"""
(function(){
function num(text){var v=parseFloat(text);return isNaN(v)?null:v;}
document.querySelectorAll("table.sortable").forEach(function(table){
  table.querySelectorAll("th").forEach(function(th,col){
    th.addEventListener("click",function(){
      var asc=!th.classList.contains("sorted-asc");
      table.querySelectorAll("th").forEach(function(h){h.classList.remove("sorted-asc","sorted-desc");});
      th.classList.add(asc?"sorted-asc":"sorted-desc");
      var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[col].getAttribute("data-v"),y=b.cells[col].getAttribute("data-v");
        var nx=num(x),ny=num(y),r;
        if(nx===null&&ny===null){r=String(x).localeCompare(String(y));}
        else if(nx===null){return 1;} else if(ny===null){return -1;} else {r=nx-ny;}
        return asc?r:-r;});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
var filter=document.getElementById("filter");
if(filter){filter.addEventListener("input",function(){
  var q=filter.value.toLowerCase();
  document.querySelectorAll("#cases tbody tr").forEach(function(r){
    r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?"":"none";});});}
function decode(text){return text.replace(/<\\([\s\S])/g,"<$1");}
function openCase(details){
  if(details.getAttribute("data-loaded")){return;}
  details.setAttribute("data-loaded","1");
  details.querySelectorAll("img[data-src]").forEach(function(img){img.src=img.getAttribute("data-src");});
  var source=document.getElementById("view-"+details.getAttribute("data-index"));
  var holder=details.querySelector(".viewer-holder");
  if(source&&holder){
    var frame=document.createElement("iframe");
    frame.className="viewer";frame.title="slice viewer";
    frame.srcdoc=decode(source.textContent).replace(/\/\*bsf-lib-(\d+)\*\//g,function(m,n){
      return decode(document.getElementById("lib-"+n).textContent);});
    holder.appendChild(frame);
  }
}
window.bsfOpenCase=openCase;
document.querySelectorAll("details.case").forEach(function(d){
  d.addEventListener("toggle",function(){if(d.open){openCase(d);}});});
document.querySelectorAll("#cases tbody tr").forEach(function(r){
  r.addEventListener("click",function(){
    var d=document.getElementById(r.getAttribute("data-case"));
    if(d){d.open=true;openCase(d);d.scrollIntoView();}});});
})();
"""




def _cell(value, text_class: bool = False, css: str = "", shown=None, title: str = "") -> str:
    """A table cell sorted by ``value`` (its ``data-v``) and showing ``shown`` (default: ``value``)."""
    classes = " ".join(c for c in ("text" if text_class else "", css) if c)
    attribute = f' class="{classes}"' if classes else ""
    attribute += f' title="{_esc(title)}"' if title else ""
    return f'<td data-v="{_esc(value)}"{attribute}>{_esc(value if shown is None else shown)}</td>'


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def volume_text(value) -> str:
    """A volume in mL as people read it: 1 decimal, 2 below 1 mL, ``< 0.01`` for a trace.

    >>> [volume_text(v) for v in ("118.2960", 0.4213, 0.004, 0, "", "n/a")]
    ['118.3', '0.42', '< 0.01', '0.0', '', 'n/a']
    """
    number = _float(value)
    if number is None:
        return "" if value is None else str(value)
    if number == 0 or abs(number) >= 1:
        return f"{number:.1f}"
    return f"{number:.2f}" if abs(number) >= 0.01 else ("< 0.01" if number > 0 else "> -0.01")


def _change_text(change) -> str:
    """A signed change in mL: ``+2.3``, ``-0.42``, ``0.0`` (under 0.005 mL either way).

    >>> [_change_text(v) for v in (2.31, -0.4213, 0.001, None)]
    ['+2.3', '-0.42', '0.0', '']
    """
    if change is None:
        return ""
    if abs(change) < 0.005:
        return "0.0"
    return ("+" if change > 0 else "-") + volume_text(abs(change))


def legend_html(scheme: RegionScheme) -> str:
    """The scheme's legend: a swatch and the name of each label value."""
    items = "".join(f'<span><i class="swatch" style="background:{_esc(colour)}"></i>{value}: {_esc(name)}</span>'
                    for value, (name, colour) in scheme.legend.items())
    return f'<div class="legend">{items}</div>'


def _is_flagged(extra: Mapping[str, str]) -> bool:
    flag = extra.get("flag", extra.get("flagged", ""))
    return str(flag).strip().lower() not in ("", "0", "false", "no", "ok", "none", "nan")


def _is_dice(column: str) -> bool:
    return "dice" in column or "f1" in column


def _isotropic(spacing) -> float | None:
    """The voxel side in mm when the voxels are cubic (to 0.1%), else None."""
    if not spacing:
        return None
    side = max(spacing)
    return float(side) if side > 0 and side - min(spacing) <= 1e-3 * side else None


_REGION_METRICS = (  # (prefix, header before the region, header after it), longest prefix first
    ("lw_hd95_mm_", "lesion-wise HD95", "(mm)"), ("lw_dice_", "lesion-wise Dice", ""), ("lw_f1_", "lesion F1", ""),
    ("hd95_vox_", "HD95", "(mm)"), ("hd95_mm_", "HD95", "(mm)"), ("volume_ml_pred_", "predicted", "(mL)"),
    ("volume_ml_ref_", "reference", "(mL)"), ("dice_", "Dice", ""))
_NAMES = {"dice_mean": "mean Dice", "lw_dice_mean": "mean lesion-wise Dice", "dice": "Dice",
          "lesion_f1": "lesion F1", "volume_difference": "volume difference (voxels)",
          "simple_lesion_count": "lesion count difference", "expected_dice": "expected Dice",
          "quality": "quality score (older file: 1 - expected Dice, higher = worse)",
          "missing_modalities": "missing modalities", "non_finite_voxels": "NaN/Inf voxels set to 0"}


def column_header(column: str) -> str:
    """A metric or ``volumes.csv`` column as a header people read (units said).

    >>> [column_header(c) for c in ("dice_TC", "hd95_vox_WT", "lw_hd95_mm_ET", "dice_mean", "flag")]
    ['Dice TC', 'HD95 WT (mm)', 'lesion-wise HD95 ET (mm)', 'mean Dice', 'flag']
    """
    if column in _NAMES:
        return _NAMES[column]
    for prefix, before, after in _REGION_METRICS:
        if column.startswith(prefix):
            return " ".join(p for p in (before, column[len(prefix):], after) if p)
    return column


def _counts(metrics: Mapping[str, str], region: str, prefix: str) -> str:
    values = [_float(metrics.get(f"{prefix}{c}" + (f"_{region}" if region else ""))) for c in ("tp", "fn", "fp")]
    return "" if None in values else "/".join(str(int(v)) for v in values)


def _metric_columns(metric_columns: Sequence[str]) -> list[tuple[str, str, str]]:
    """(kind, key, header) of the metric columns shown: lesion counts merged into one ``TP/FN/FP``
    column per region, HD95 in voxels shown in mm (dropped where the rules also give mm)."""
    shown, seen = [], set(metric_columns)
    for column in metric_columns:
        for prefix in ("lw_", "lesion_"):
            if column.startswith(f"{prefix}tp"):
                region = column[len(f"{prefix}tp"):].lstrip("_")
                shown.append(("counts", f"{prefix}|{region}", f"lesions {region} TP/FN/FP".replace("  ", " ")))
        if any(column.startswith(f"{p}{c}") for p in ("lw_", "lesion_") for c in ("tp", "fn", "fp")):
            continue
        if column.startswith("hd95_vox_"):
            if f"hd95_mm_{column[len('hd95_vox_'):]}" not in seen:
                shown.append(("vox", column, column_header(column)))
            continue
        shown.append(("value", column, column_header(column)))
    return shown


def _metric_text(column: str, value: float) -> str:
    if _is_dice(column):
        return f"{value:.3f}"
    if "hd95" in column or "_ml" in column or "volume_ml" in column:
        return f"{value:.1f}"
    return str(int(value)) if value == int(value) and abs(value) < 1e6 else f"{value:.3f}"


def _metric_cell(kind: str, key: str, case) -> str:
    if kind == "counts":
        prefix, region = key.split("|")
        text = _counts(case.metrics, region, prefix)
        return _cell(text, shown=text)
    raw = case.metrics.get(key, "")
    value = _float(raw)
    if value is None:
        return _cell(raw)
    if kind == "vox":
        side = _isotropic(case.spacing)
        if side is None:
            return _cell("", shown="n/a", title=f"HD95 {value:g} voxels; the voxels are not cubic "
                         f"({' x '.join(f'{s:g}' for s in case.spacing or ())} mm), so it has no single mm value: "
                         "score with --rules brats2023 or plain for HD95 in mm")
        value *= side
    css = "bad" if _is_dice(key) and value < 0.5 else ""
    return _cell(raw if kind == "value" else f"{value:.6g}", css=css, shown=_metric_text(key, value))


def _extra_cell(column: str, text: str) -> str:
    if column in ("expected_dice", "quality") and _float(text) is not None:
        return _cell(text, shown=f"{float(text):.2f}")
    if column == "flag":
        shown = {"1": "yes", "0": "no"}.get(str(text).strip(), text)
        return _cell(text, True, shown=shown)
    if column == "review" and ";" in text:
        # The threshold's story is told once above the table (and in full in the tooltip and volumes.csv).
        return _cell(text, True, css="words", shown=text.split(";")[0], title=text)
    return _cell(text, True, css="words" if column == "review" else "")


def _nonempty(values) -> bool:
    return any(str(v).strip() for v in values)


def _case_table(cases, volume_columns, extra_columns, metric_columns) -> str:
    """The case table, without the columns that say nothing (every cell empty, or subject = case)."""
    show_subject = any(c.subject and c.subject != c.case_id for c in cases)
    show_timepoint = _nonempty(c.timepoint or "" for c in cases)
    extra_columns = [c for c in extra_columns if _nonempty(case.extra.get(c, "") for case in cases)]
    metrics = [m for m in _metric_columns(metric_columns)
               if m[0] == "counts" or _nonempty(case.metrics.get(m[1], "") for case in cases)]
    head = ['<th class="text">case</th>']
    head += ['<th class="text">subject</th>'] if show_subject else []
    head += ['<th class="text">time point</th>'] if show_timepoint else []
    head += [f"<th>{_esc(c.removesuffix('_ml'))} (mL)</th>" for c in volume_columns]
    head += [f'<th class="text">{_esc(column_header(c))}</th>' for c in extra_columns]
    head += [f"<th>{_esc(header)}</th>" for _, _, header in metrics]
    rows = []
    for case in cases:
        cells = [_cell(case.case_id, True)]
        cells += [_cell(case.subject, True)] if show_subject else []
        cells += [_cell(case.timepoint or "", True)] if show_timepoint else []
        cells += [_cell(case.volumes.get(c, ""), shown=volume_text(case.volumes.get(c, ""))) for c in volume_columns]
        cells += [_extra_cell(c, case.extra.get(c, "")) for c in extra_columns]
        cells += [_metric_cell(kind, key, case) for kind, key, _ in metrics]
        flagged = ' class="flagged"' if _is_flagged(case.extra) else ""
        rows.append(f'<tr data-case="case-{_esc(case.case_id)}"{flagged}>{"".join(cells)}</tr>')
    return (f'<div class="wide"><table id="cases" class="sortable"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _summary_table(summary: Mapping, cases=()) -> str:
    sides = {_isotropic(c.spacing) for c in cases}
    side = next(iter(sides)) if len(sides) == 1 else None
    rows = []
    for key, values in summary.get("metrics", {}).items():
        factor, header = 1.0, column_header(key)
        if key.startswith("hd95_vox_"):
            if side is None:
                header = f"HD95 {key[len('hd95_vox_'):]} (voxels: the cases' voxels are not all the same cubes)"
            else:
                factor = side
        numbers = [_float(values.get(s)) for s in ("mean", "std", "median")]
        rows.append(f'<tr><td class="text">{_esc(header)}</td>' + "".join(
            f"<td>{'' if v is None else _esc(_metric_text(key, v * factor))}</td>" for v in numbers) + "</tr>")
    return (f'<p class="muted">rules: {_esc(summary.get("task", ""))}, {_esc(summary.get("n_cases", ""))} case(s)</p>'
            '<table><thead><tr><th class="text">metric</th><th>mean</th><th>std</th><th>median</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")
















def _longitudinal(subjects: Mapping[str, list[dict]], columns: Sequence[str], plots: Mapping[str, str]) -> str:
    parts = []
    for subject, rows in subjects.items():
        head = '<th class="text">time point</th><th class="text">case</th>' + "".join(
            f"<th>{_esc(c.removesuffix('_ml'))} (mL)</th><th>change (mL)</th><th>change (%)</th>" for c in columns)
        body = ""
        for row in rows:
            cells = _cell(row["timepoint"], True) + _cell(row["case_id"], True)
            for c in columns:
                change, pct = row[f"{c}_change_ml"], row[f"{c}_change_pct"]
                cells += _cell(row[c], shown=volume_text(row[c]))
                cells += _cell("" if change is None else change, shown=_change_text(change))
                cells += _cell("" if pct is None else pct, shown="" if pct is None else f"{pct:+.1f}")
            body += f"<tr>{cells}</tr>"
        parts.append(f'<h3 id="subject-{_esc(subject)}">{_esc(subject)}</h3><div class="subject">'
                     f'<div class="wide"><table class="sortable longitudinal" data-subject="{_esc(subject)}"><thead>'
                     f"<tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{plots[subject]}</div>")
    return "".join(parts)


def render_page(*, title: str, cases, scheme: RegionScheme, volume_columns: Sequence[str],
                extra_columns: Sequence[str], metric_columns: Sequence[str], views: Mapping[str, str],
                overlays: Mapping[str, bytes], longitudinal: Mapping[str, list[dict]], plots: Mapping[str, str],
                summary: Mapping | None, record: Mapping, libraries: Sequence[str] = (),
                notes: Sequence[tuple[str, str]] = (), natives: Mapping[str, str] | None = None) -> str:
    """The report as one HTML string (see the module docstring for what loads when).

    ``notes`` are ``(css class, text)`` paragraphs shown above the case table (``note``, or
    ``note warn``): how the flag was set, whether the model was calibrated. ``natives``: per case, the
    block of a raw study's own series (:func:`brainsegfounder.report.native.native_html`).
    """
    case_parts, view_blocks = [], []
    for index, case in enumerate(cases):
        overlay = ""
        if case.case_id in overlays:
            data = base64.b64encode(overlays[case.case_id]).decode()
            overlay = f'<img alt="overlay of {_esc(case.case_id)}" data-src="data:image/png;base64,{data}">'
        volumes = ", ".join(f"{c.removesuffix('_ml')} {volume_text(case.volumes.get(c, ''))} mL" for c in volume_columns)
        blank = ""
        if case.case_id in views and case.background is None:
            blank = ('<p class="muted">No anatomy under these labels: the input image of this case was not found '
                     "(give the report --inputs, the data predict read).</p>")
        case_parts.append(
            f'<details class="case" id="case-{_esc(case.case_id)}" data-index="{index}"><summary>'
            f'{_esc(case.case_id)} <span class="muted">{_esc(volumes)}</span></summary><div class="case-body">'
            f'{overlay}<div class="viewer-holder">{legend_html(scheme) if case.case_id in views else ""}{blank}</div>'
            f'{(natives or {}).get(case.case_id, "")}</div></details>')
        if case.case_id in views:
            view_blocks.append(f'<script type="text/x-bsf-view" id="view-{index}">{views[case.case_id]}</script>')
    library_blocks = [f'<script type="text/x-bsf-view" id="lib-{i}">{text}</script>' for i, text in enumerate(libraries)]
    sections = [f"<h1>{_esc(title)}</h1>",
                f'<p class="muted">{len(cases)} case(s); labels: {_esc(scheme.name)}. Click a column to sort '
                "(again to reverse); click a row to open the case. Flagged rows are shaded; Dice/F1 below 0.5 "
                "in red. Volumes in mL (volumes.csv keeps 4 decimals).</p>", legend_html(scheme),
                "<h2>Cases</h2>", *(f'<p class="{_esc(css)}">{_esc(text)}</p>' for css, text in notes),
                '<input id="filter" type="search" placeholder="filter cases">',
                _case_table(cases, volume_columns, extra_columns, metric_columns)]
    if summary:
        sections += ["<h2>Metrics summary</h2>", "<details><summary>mean, std and median of each metric</summary>",
                     _summary_table(summary, cases), "</details>"]
    if longitudinal:
        sections += ["<h2>Volumes over time</h2>",
                     '<p class="muted">Change is from the previous scan of the same subject; written also to '
                     "longitudinal.csv.</p>", _longitudinal(longitudinal, volume_columns, plots)]
    sections += ["<h2>Each case</h2>", *case_parts, "<h2>Provenance</h2>", provenance_table(record)]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>{''.join(sections)}"
            f"{''.join(view_blocks)}{''.join(library_blocks)}<script>{_JS}</script></body></html>")
