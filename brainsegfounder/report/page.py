"""The HTML page: one self-contained file (inline CSS, JavaScript, images), no network, no server.

Heavy parts stay inert until a case is opened: each case's viewer is an encoded HTML document in
a ``<script type="text/x-bsf-view">`` block (text the browser does not parse) and its overlay a
``data-src`` attribute; opening the case puts them into an ``iframe`` and an ``img``.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence

from brainsegfounder.data.regions import RegionScheme

__all__ = ["render_page"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222;max-width:1400px}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
td.text,th.text{text-align:left} tr.flagged td{background:#fff3cd} td.bad{color:#b00020;font-weight:600}
#cases tbody tr:hover td{background:#eef4ff;cursor:pointer}
.legend span{display:inline-block;margin-right:1em} .swatch{display:inline-block;width:.9em;height:.9em;
 border:1px solid #555;vertical-align:middle;margin-right:.3em}
details.case{border:1px solid #ddd;border-radius:4px;margin:.4em 0;padding:.3em .6em}
details.case summary{cursor:pointer;font-weight:600}
.case-body{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.case-body img{max-width:640px;border:1px solid #ccc} iframe.viewer{border:0;width:640px;height:340px}
.subject{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.prov td{text-align:left;white-space:normal} .muted{color:#666;font-size:.85em}
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
  var img=details.querySelector("img[data-src]");
  if(img){img.src=img.getAttribute("data-src");}
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


def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value, text_class: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("text" if text_class else "", css) if c)
    attribute = f' class="{classes}"' if classes else ""
    return f'<td data-v="{_esc(value)}"{attribute}>{_esc(value)}</td>'


def legend_html(scheme: RegionScheme) -> str:
    """The scheme's legend: a swatch and the name of each label value."""
    items = "".join(f'<span><i class="swatch" style="background:{_esc(colour)}"></i>{value}: {_esc(name)}</span>'
                    for value, (name, colour) in scheme.legend.items())
    return f'<div class="legend">{items}</div>'


def _is_flagged(extra: Mapping[str, str]) -> bool:
    flag = extra.get("flag", extra.get("flagged", ""))
    return str(flag).strip().lower() not in ("", "0", "false", "no", "ok", "none", "nan")


def _metric_is_bad(column: str, text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return ("dice" in column or "f1" in column) and value < 0.5


def _metric_cell(column: str, text: str) -> str:
    # Sorting uses the full value; the cell shows 4 decimals so that 0.6666666666666666 fits.
    try:
        shown = f"{float(text):.4f}"
    except ValueError:
        shown = text
    css = ' class="bad"' if _metric_is_bad(column, text) else ""
    return f'<td data-v="{_esc(text)}"{css}>{_esc(shown)}</td>'


def _case_table(cases, volume_columns, extra_columns, metric_columns) -> str:
    head = ['<th class="text">case</th>', '<th class="text">subject</th>', '<th class="text">time point</th>']
    head += [f"<th>{_esc(c.removesuffix('_ml'))} (mL)</th>" for c in volume_columns]
    head += [f'<th class="text">{_esc(c)}</th>' for c in extra_columns]
    head += [f"<th>{_esc(c)}</th>" for c in metric_columns]
    rows = []
    for case in cases:
        cells = [_cell(case.case_id, True), _cell(case.subject, True), _cell(case.timepoint or "", True)]
        cells += [_cell(case.volumes.get(c, "")) for c in volume_columns]
        cells += [_cell(case.extra.get(c, ""), True) for c in extra_columns]
        cells += [_metric_cell(c, case.metrics.get(c, "")) for c in metric_columns]
        flagged = ' class="flagged"' if _is_flagged(case.extra) else ""
        rows.append(f'<tr data-case="case-{_esc(case.case_id)}"{flagged}>{"".join(cells)}</tr>')
    return (f'<table id="cases" class="sortable"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _summary_table(summary: Mapping) -> str:
    rows = "".join(f'<tr><td class="text">{_esc(k)}</td>' + "".join(
        f"<td>{float(v.get(s, float('nan'))):.4f}</td>" for s in ("mean", "std", "median")) + "</tr>"
        for k, v in summary.get("metrics", {}).items())
    return (f'<p class="muted">rules: {_esc(summary.get("task", ""))}, {_esc(summary.get("n_cases", ""))} case(s)</p>'
            '<table><thead><tr><th class="text">metric</th><th>mean</th><th>std</th><th>median</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _provenance_table(record: Mapping) -> str:
    def show(value) -> str:
        if isinstance(value, (dict, list)):
            return f"<pre>{_esc(json.dumps(value, indent=1, default=str))}</pre>"
        return _esc(value)

    keys = ["checkpoints", "preprocessing", "command", "date", "versions", "report"]
    keys += [k for k in record if k not in keys]
    rows = "".join(f'<tr><th class="text">{_esc(k)}</th><td>{show(record.get(k, "not recorded"))}</td></tr>'
                   for k in keys)
    return f'<table class="prov">{rows}</table>'


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
                cells += _cell(f"{row[c]:.4f}") + _cell("" if change is None else f"{change:+.4f}")
                cells += _cell("" if pct is None else f"{pct:+.2f}")
            body += f"<tr>{cells}</tr>"
        parts.append(f'<h3 id="subject-{_esc(subject)}">{_esc(subject)}</h3><div class="subject">'
                     f'<table class="sortable longitudinal" data-subject="{_esc(subject)}"><thead><tr>{head}'
                     f"</tr></thead><tbody>{body}</tbody></table>{plots[subject]}</div>")
    return "".join(parts)


def render_page(*, title: str, cases, scheme: RegionScheme, volume_columns: Sequence[str],
                extra_columns: Sequence[str], metric_columns: Sequence[str], views: Mapping[str, str],
                overlays: Mapping[str, bytes], longitudinal: Mapping[str, list[dict]], plots: Mapping[str, str],
                summary: Mapping | None, record: Mapping, libraries: Sequence[str] = ()) -> str:
    """The report as one HTML string (see the module docstring for what loads when)."""
    case_parts, view_blocks = [], []
    for index, case in enumerate(cases):
        overlay = ""
        if case.case_id in overlays:
            data = base64.b64encode(overlays[case.case_id]).decode()
            overlay = f'<img alt="overlay of {_esc(case.case_id)}" data-src="data:image/png;base64,{data}">'
        volumes = ", ".join(f"{c.removesuffix('_ml')} {case.volumes.get(c, '')} mL" for c in volume_columns)
        case_parts.append(
            f'<details class="case" id="case-{_esc(case.case_id)}" data-index="{index}"><summary>'
            f'{_esc(case.case_id)} <span class="muted">{_esc(volumes)}</span></summary><div class="case-body">'
            f'{overlay}<div class="viewer-holder">{legend_html(scheme) if case.case_id in views else ""}</div>'
            "</div></details>")
        if case.case_id in views:
            view_blocks.append(f'<script type="text/x-bsf-view" id="view-{index}">{views[case.case_id]}</script>')
    library_blocks = [f'<script type="text/x-bsf-view" id="lib-{i}">{text}</script>' for i, text in enumerate(libraries)]
    sections = [f"<h1>{_esc(title)}</h1>",
                f'<p class="muted">{len(cases)} case(s); labels: {_esc(scheme.name)}. Click a column to sort '
                "(again to reverse); click a row to open the case. Flagged rows are shaded; Dice/F1 below 0.5 "
                "in red.</p>", legend_html(scheme),
                "<h2>Cases</h2>", '<input id="filter" type="search" placeholder="filter cases">',
                _case_table(cases, volume_columns, extra_columns, metric_columns)]
    if summary:
        sections += ["<h2>Metrics summary</h2>", "<details><summary>mean, std and median of each metric</summary>",
                     _summary_table(summary), "</details>"]
    if longitudinal:
        sections += ["<h2>Volumes over time</h2>",
                     '<p class="muted">Change is from the previous scan of the same subject; written also to '
                     "longitudinal.csv.</p>", _longitudinal(longitudinal, volume_columns, plots)]
    sections += ["<h2>Each case</h2>", *case_parts, "<h2>Provenance</h2>", _provenance_table(record)]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>{''.join(sections)}"
            f"{''.join(view_blocks)}{''.join(library_blocks)}<script>{_JS}</script></body></html>")
