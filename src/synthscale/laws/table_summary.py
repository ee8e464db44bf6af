"""``synthscale fit`` without --json: a ``fit_table`` result as a few lines of text."""

from __future__ import annotations

from synthscale.laws._text import group_label, num


def summarize_fit(result: dict) -> str:
    """A few human-readable lines for a ``fit_table`` result (the CLI without --json):
    the fit, its verdict, the column used for each variable, the parameters, the holdout
    check and, for the ratio form, r* next to the grid's best ratio. One block per group."""
    if "groups" in result:
        blocks = []
        for entry in result["groups"]:
            head = f"== {group_label(entry['group'])}"
            body = f"  error: {entry['error']}" if "error" in entry else summarize_fit(entry)
            blocks.append(f"{head}\n{body}")
        return "\n\n".join(blocks)
    status = "converged" if result["converged"] else f"NOT converged ({result['message']})"
    lines = [f"{result['law']} law on {result['n_points']} points: objective {num(result['objective'])}, {status}"]
    if result.get("verdict"):
        reasons = result.get("reasons") or []
        lines.append(f"verdict: {result['verdict']}" + (f" ({'; '.join(reasons)})" if reasons else ""))
    notes = result.get("column_notes") or {}
    for role, col in (result.get("columns") or {}).items():
        note = f" ({notes[role]})" if notes.get(role) else ""
        lines.append(f"  {role:>6} = column '{col}'{note}")
    rows = result.get("rows") or {}
    if rows.get("filter") or rows.get("where"):
        used = [f for f in [rows.get("filter"), *[f"where {w}" for w in rows.get("where") or []]] if f]
        lines.append(f"  rows: {rows.get('used')} ({', '.join(used)})")
    if result.get("verdict") == "unusable":  # the optimiser's values stay in the JSON, for inspection
        lines.append("  parameters not shown: the data do not support this law (see the verdict)")
    else:
        for name, p in result["params"].items():
            ci = "" if p["ci"] is None else f"  95% CI [{num(p['ci'][0])}, {num(p['ci'][1])}]"
            lines.append(f"  {name:>6} = {num(p['value'])}{ci}")
    held = result.get("holdout")
    if held and "rel_error_mean" in held:
        lines.append(
            f"  held out {held['axis']} = {held['value']:.6g}: mean relative error {held['rel_error_mean']:.3%}"
        )
    elif held and "error" in held:
        lines.append(f"  holdout: {held['error']}")
    if "best_ratio" in result:
        lines += _summarize_best_ratio(result)
    return "\n".join(lines)


def _summarize_best_ratio(result: dict) -> list[str]:
    """The r* lines of a ratio-form result: the law's r* (or bound) next to the grid's best ratio."""
    entries = result["best_ratio"]
    trained = result.get("ranges", {}).get("ratio")
    span = f"; trained r in [{num(trained[0])}, {num(trained[1])}]" if trained else ""
    weak = " from a weak law" if result.get("verdict") == "weak" else ""
    lines = [f"best synthetic ratio r*{weak} (the law's argmin over r{span}; grid best: lowest mean loss):"]
    for e in entries:
        where = f"N = {num(e['params'])}, D = {num(e['tokens'])}" if e.get("params") is not None else (
            f"D = {num(e['tokens'])}"
        )
        if e.get("bound"):
            text = (f"r* {e['bound']['op']} {num(e['bound']['value'])} "
                    f"(bound: the law's minimum is at the edge of the trained ratios or beyond)")
        elif e.get("value") is None:
            text = e.get("note") or "no r*"
        else:
            text = f"r* = {e['value']:.3g}"
            if e.get("ci"):
                text += f"  95% CI [{e['ci'][0]:.3g}, {e['ci'][1]:.3g}]"
                if e.get("ci_clipped"):
                    text += " (clipped to the trained ratios)"
        if e.get("extrapolated"):
            text += " (extrapolated)"
        if e.get("grid_best") is not None:
            text += f"; grid best {num(e['grid_best'])}"
            if e.get("agrees") is False:
                text += "  DISAGREES with the law's r*"
            elif e.get("agrees"):
                text += " (agrees)"
        lines.append(f"  {where}: {text}")
    return lines
