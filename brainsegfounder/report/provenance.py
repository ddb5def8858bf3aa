"""The report's provenance table: checkpoints (path, short sha256, calibration), preprocessing in words, command, inputs, date, versions."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

__all__ = ["provenance_table"]


_NOT_RECORDED = "not recorded (predict --report writes provenance.json with it)"


def _when(iso) -> str:
    """``2026-12-06T04:37:05+00:00`` -> ``2026-12-06 04:37 UTC``."""
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(str(iso)).astimezone(timezone.utc)
    except ValueError:
        return str(iso)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _versions(versions: Mapping) -> str:
    """``python 3.11.7 · torch 2.13.0 · ...``, HTML, each package kept on one line."""
    return " · ".join(f'<span class="nowrap">{_esc(name)} {_esc(version)}</span>' for name, version in versions.items())


def _code(text) -> str:
    return f"<code>{_esc(text)}</code>"


def _checkpoint_rows(record: Mapping) -> list[tuple[str, str]]:
    from brainsegfounder.inference.calibration import flag_rule

    paths = record.get("checkpoints") or []
    facts = {f["path"]: f for f in record.get("checkpoint_facts") or []}
    if not paths:
        return [("checkpoint", _esc(_NOT_RECORDED + "; or pass --checkpoint to the report"))]
    rows = []
    for index, path in enumerate(paths, 1):
        fact = facts.get(str(path), {})
        name = "checkpoint" if len(paths) == 1 else f"checkpoint {index}"
        rows.append((name, _code(path)))
        if not fact.get("exists", True):
            rows.append(("sha256", "the file is no longer there"))
            continue
        if fact.get("sha256"):
            digest = fact["sha256"]
            rows.append(("sha256", f'<code title="{_esc(digest)}">{_esc(digest[:16])}…</code> '
                                   f'<span class="muted">({fact["bytes"] / 1e6:.1f} MB, of the file as the report '
                                   "found it)</span>"))
        if "calibrated" in fact:
            if fact["calibrated"]:
                words = "yes: temperatures " + ", ".join(f"{t:.2f}" for t in fact.get("temperature", []))
                if fact.get("flag_below") is not None:
                    words += f"; flag: {flag_rule(fact['flag_below'], fact.get('flag_cases'))}"
            else:
                words = "no (brainsegfounder.calibrate fits temperatures and the flag; without it no expected Dice)"
            rows.append(("calibrated", _esc(words)))
    return rows


def _preprocessing_text(record) -> str:
    if not record:
        return _esc(_NOT_RECORDED)
    parts = []
    for key, value in record.items():
        if key == "spacing" and value is None:
            value = "as acquired (no resampling)"
        elif key == "roi_size" and isinstance(value, (list, tuple)):
            value = " x ".join(str(v) for v in value) + " voxels"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value) or "none"
        elif isinstance(value, dict):
            value = json.dumps(value, default=str)
        parts.append(f'<tr><th class="text">{_esc(key.replace("_", " "))}</th><td class="text">{_esc(value)}</td></tr>')
    return f'<table class="kv">{"".join(parts)}</table>'


def provenance_table(record: Mapping) -> str:
    """Provenance as a table people read: checkpoint (path, sha256, calibration), preprocessing,
    command, inputs, date, versions, and when and how this page was written."""
    rows = _checkpoint_rows(record)
    rows.append(("preprocessing", _preprocessing_text(record.get("preprocessing"))))
    rows.append(("command", _code(record["command"]) if record.get("command") else _esc(_NOT_RECORDED)))
    if record.get("inputs"):
        rows.append(("inputs", "<br>".join(_code(i) for i in record["inputs"])))
    if record.get("date"):
        source = record.get("date_source")
        note = f' <span class="muted">({_esc(source)})</span>' if source and source != "provenance.json" else ""
        rows.append(("predicted", _esc(_when(record["date"])) + note))
    else:
        rows.append(("predicted", _esc(_NOT_RECORDED)))
    if record.get("versions"):
        rows.append(("versions", _versions(record["versions"])))
    report = record.get("report") or {}
    if report:
        same = report.get("versions") == record.get("versions")
        words = _esc(_when(report.get("date", ""))) + " by " + _code(report.get("command", ""))
        if report.get("versions") and not same:
            words += "<br>" + _versions(report["versions"])
        rows.append(("this page", words))
    known = {"checkpoints", "checkpoint_facts", "preprocessing", "command", "inputs", "date", "date_source",
             "versions", "report"}
    for key, value in record.items():
        if key not in known:
            shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
            rows.append((key, _esc(shown)))
    body = "".join(f'<tr><th class="text">{_esc(k)}</th><td class="text">{v}</td></tr>' for k, v in rows)
    return f'<table class="prov">{body}</table>'



def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


