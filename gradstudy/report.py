"""The claims table, gathered from every study's ``summary.json`` (Markdown and LaTeX)."""

from __future__ import annotations

import math
from pathlib import Path


def _fmt(x) -> str:
    if isinstance(x, str):
        return x
    if x is None:
        return "–"
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}"


def comparison(c: dict) -> str:
    """The expectation a claim is checked against, as text ("1.0 ± 0.05 (rel)", "[38, 46]")."""
    kind = c.get("comparison", "abs")
    if kind == "less":
        return f"< {_fmt(c['expected'])}"
    if kind == "greater":
        return f"> {_fmt(c['expected'])}"
    if kind == "range":
        return f"[{_fmt(c['expected'])}, {_fmt(c['upper'])}]"
    tol = _fmt(c["tolerance"]) + (" (rel)" if kind == "rel" else "")
    return f"{_fmt(c['expected'])} ± {tol}"


def markdown(summaries: list[dict]) -> str:
    lines = ["| study | claim | statement | measured | expected | pass | source |",
             "|---|---|---|---|---|---|---|"]
    for s in summaries:
        for c in s["claims"]:
            lines.append(f"| {s['study']} | {c['id']} | {c['statement']} | {_fmt(c['measured'])} "
                         f"| {comparison(c)} | {'✅' if c['pass'] else '❌ FAIL'} "
                         f"| {c['source']} |")
    n = sum(len(s["claims"]) for s in summaries)
    ok = sum(c["pass"] for s in summaries for c in s["claims"])
    scales = sorted({s["scale"] for s in summaries})
    lines += ["", f"{ok} of {n} claims pass (scale: {', '.join(scales)})."]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "^": r"\^{}", "$": r"\$",
        "~": r"\~{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "σ": r"$\sigma$",
        "χ": r"$\chi$", "ξ": r"$\xi$", "²": r"$^2$", "≈": r"$\approx$", "≤": r"$\le$",
        "≥": r"$\ge$", "±": r"$\pm$", "‖": r"$\|$", "∂": r"$\partial$", "→": r"$\to$",
        "×": r"$\times$", "–": "--", "₁": r"$_1$", "*": r"$^*$", "<": r"$<$", ">": r"$>$",
        "φ": r"$\phi$", "α": r"$\alpha$", "δ": r"$\delta$", "λ": r"$\lambda$",
        "−": "-", "·": r"$\cdot$", "✅": "yes", "❌": "no"}


def _tex(s: str) -> str:
    """Escape text for LaTeX one character at a time (so replacements never interact)."""
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def latex(summaries: list[dict]) -> str:
    rows = []
    for s in summaries:
        for c in s["claims"]:
            cells = [s["study"], c["statement"], _fmt(c["measured"]), comparison(c)]
            rows.append(" & ".join([_tex(x) for x in cells]
                                   + ["yes" if c["pass"] else r"\textbf{NO}"]) + r" \\")
    return "\n".join([
        r"\begin{table*}[p]", r"\centering", r"\tiny",
        r"\caption{Claims checked by \texttt{gradstudy reproduce}: each compares a measured "
        r"number with an independent expectation (theory, closed form or published value).}",
        r"\label{tab:claims}",
        r"\begin{tabular}{l p{0.48\textwidth} l l l}", r"\toprule",
        r"study & claim & measured & expected & pass \\", r"\midrule", *rows,
        r"\bottomrule", r"\end{tabular}", r"\end{table*}", ""])


def write_tables(summaries: list[dict], directory: Path) -> list[Path]:
    from gradstudy.results import write_text_atomic

    paths = []
    for name, text in [("claims.md", markdown(summaries)), ("claims.tex", latex(summaries))]:
        write_text_atomic(text, Path(directory) / name)
        paths.append(Path(directory) / name)
    return paths
