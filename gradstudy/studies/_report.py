"""The claims table, gathered from every study's ``summary.json`` (Markdown and LaTeX)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from gradstudy.results import write_text_atomic


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
        "~": r"\~{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "–": "--", "—": "---",
        "…": r"\dots{}", "✅": "yes", "❌": "no", "<": r"\textless{}", ">": r"\textgreater{}"}

# Characters that make a word mathematics, and their LaTeX in math mode.
_MATH = {"σ": r"\sigma", "χ": r"\chi", "ξ": r"\xi", "φ": r"\phi", "α": r"\alpha",
         "δ": r"\delta", "λ": r"\lambda", "μ": r"\mu", "π": r"\pi", "γ": r"\gamma",
         "‖": r"\|", "∂": r"\partial ", "²": "^2", "₁": "_1", "*": "^*", "≤": r"\le ",
         "≥": r"\ge ", "±": r"\pm ", "≈": r"\approx ", "×": r"\times ", "·": r"\cdot ",
         "−": "-", "→": r"\to ", "√": r"\sqrt ", "′": "'", "'": "'", "%": r"\%",
         "<": "<", ">": ">", "=": "=", "{": r"\{", "}": r"\}", "&": r"\&", "#": r"\#",
         "$": r"\$", "~": r"\sim ", "…": r"\dots ", "½": r"\tfrac12 ", "ρ": r"\rho ",
         "⟨": r"\langle ", "⟩": r"\rangle ", "η": r"\eta ", "ε": r"\epsilon ",
         "Δ": r"\Delta ", "∇": r"\nabla ", "β": r"\beta ",
         "≪": r"\ll ", "≫": r"\gg ", "³": "^3", "⁻": "^-", "₂": "_2", "∏": r"\prod ",
         "τ": r"\tau ", "ḡ": r"\bar g ", "∈": r"\in "}
_MATH_MARKERS = set("σχξφαδλμπγρ½⟨⟩‖∂²₁≤≥±≈−→√_=<>^·×ηεΔ∇β≪≫³⁻₂∏τḡ∈")
# identifiers such as leaky_relu_0.2 or max_depth: code, not subscripts
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9]+(_[A-Za-z0-9.]+)+(=[^\s]*)?$")
_NAMED = {"log10": r"\log_{10}", "log": r"\log", "exp": r"\exp", "max": r"\max",
          "min": r"\min", "Var": r"\operatorname{Var}", "RMS": r"\mathrm{RMS}",
          "SE": r"\mathrm{SE}", "N": r"\mathcal{N}", "U": "U"}
_WORD = re.compile(r"[A-Za-z]+[0-9]*")


def _tex(s: str) -> str:
    """Escape plain text for LaTeX one character at a time (so replacements never
    interact); characters that only exist in mathematics are set in math."""
    plain = set("_=<>^")  # escaped by _TEX, or ordinary in text
    return "".join(_TEX.get(ch) or (f"${_MATH[ch]}$" if ch in _MATH_MARKERS - plain else ch)
                   for ch in str(s))


def _math_word(word: str) -> str:
    """One whitespace-free formula ("‖∂L/∂h_1‖/‖∂L/∂h_L‖", "σ_w²=0.8") in math mode:
    ``_x``/``_(…)``/``_xyz`` become subscripts, named functions upright."""
    out, i = [], 0
    while i < len(word):
        ch = word[i]
        if ch == "^" and i + 1 < len(word) and word[i + 1] == "(":
            k = word.find(")", i + 1)
            k = len(word) - 1 if k < 0 else k
            out.append("^{" + _math_word(word[i + 1:k + 1]) + "}")
            i = k + 1
            continue
        if ch == "_":
            j = i + 1
            if j < len(word) and word[j] == "(":
                k = word.find(")", j)
                k = len(word) - 1 if k < 0 else k
                out.append("_{" + _math_word(word[j:k + 1]) + "}")
                i = k + 1
            else:
                k = j
                while k < len(word) and (word[k].isascii() and word[k].isalnum()
                                         or word[k] == "*"):
                    k += 1
                out.append("_{" + _math_word(word[j:k]) + "}")
                i = k
            continue
        m = _WORD.match(word, i)
        if m:
            token = m.group()
            if token in _NAMED:
                out.append(_NAMED[token] + " ")
            elif len(token) > 1 and token.isalpha():
                out.append(r"\mathrm{" + token + "}")
            else:
                out.append(token)
            i = m.end()
            continue
        out.append(_MATH.get(ch, ch))
        i += 1
    return "".join(out)


def tex_statement(s: str) -> str:
    """A claim's statement, written with Unicode mathematics, as LaTeX: words that contain
    mathematics are set in math mode, the rest as escaped text."""
    words = []
    for word in re.split(r"(\s+)", str(s)):
        if not word or word.isspace():
            words.append(word)
            continue
        core = word.rstrip(",;:")
        trail = word[len(core):]
        if _IDENTIFIER.match(core):
            words.append(r"\texttt{" + _tex(core) + "}" + _tex(trail))
        elif any(ch in _MATH_MARKERS for ch in core) or core in ("log10", "log"):
            lead = ""
            if core.startswith("(") and core.count("(") > core.count(")"):
                lead, core = "(", core[1:]
            close = ""
            if core.endswith(")") and core.count(")") > core.count("("):
                core, close = core[:-1], ")"
            words.append(f"{lead}${_math_word(core)}${close}{_tex(trail)}")
        else:
            words.append(_tex(word))
    return "".join(words)


def _tex_number(text: str) -> str:
    """A formatted number or comparison ("0.41 ± 0.02 (rel)", "[38, 46]", "< 0") in LaTeX."""
    text = text.replace("(rel)", "rel.")
    text = re.sub(r"([-+]?\d[\d.]*)e([-+]?)0*(\d+)", lambda m: rf"{m[1]}\times10^{{{m[2]}{m[3]}}}",
                  text)
    parts = re.split(r"(rel\.|inf|nan)", text)
    return "".join(r"\,\text{" + p + "}" if p == "rel." else
                   (r"\infty" if p == "inf" else p) for p in parts).join("$$").replace(
        "±", r"\pm ").replace("< ", "<").replace("> ", ">").replace("–", "-")


def source_kind(source: str) -> str:
    """The kind of expectation a claim's source names (the text before the first colon
    or parenthesis): mean-field theory, Monte Carlo, closed form, published value, known
    deviation."""
    head = re.split(r"[:(]", str(source), maxsplit=1)[0].strip()
    return head or str(source)


def latex(summaries: list[dict]) -> str:
    """One ``longtable`` per study (for a one-column appendix): statement, measured value,
    expectation, kind of source, and whether it holds."""
    out = [r"% generated by gradstudy.studies.latex: one longtable per study (one-column mode)"]
    for s in summaries:
        out += [rf"\subsection*{{Study \texttt{{{_tex(s['study'])}}} "
                rf"({len(s['claims'])} claims, scale {_tex(s['scale'])})}}",
                r"\begin{longtable}{@{}p{0.46\linewidth}>{\raggedleft\arraybackslash}p{0.12\linewidth}"
                r">{\raggedright\arraybackslash}p{0.16\linewidth}"
                r">{\raggedright\arraybackslash}p{0.12\linewidth}c@{}}",
                r"\toprule claim & measured & expected & source & holds \\ \midrule \endhead",
                r"\bottomrule \endfoot"]
        for c in s["claims"]:
            out.append(
                rf"\texttt{{{_tex(c['id'])}}}: {tex_statement(c['statement'])} & "
                rf"{_tex_number(_fmt(c['measured']))} & {_tex_number(comparison(c))} & "
                rf"{_tex(source_kind(c['source']))} & "
                + ("yes" if c["pass"] else r"\textbf{NO}") + r" \\[2pt]")
        out += [r"\end{longtable}", ""]
    n = sum(len(s["claims"]) for s in summaries)
    ok = sum(c["pass"] for s in summaries for c in s["claims"])
    out.append(rf"\noindent {ok} of {n} claims hold; no two claims test the same statement "
               r"on the same networks.")
    return "\n".join(out) + "\n"


def write_tables(summaries: list[dict], directory: Path) -> list[Path]:

    paths = []
    for name, text in [("claims.md", markdown(summaries)), ("claims.tex", latex(summaries))]:
        write_text_atomic(text, Path(directory) / name)
        paths.append(Path(directory) / name)
    return paths
