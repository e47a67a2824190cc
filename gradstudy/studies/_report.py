"""The claims table, gathered from every study's ``summary.json`` (Markdown and LaTeX), and
the numbers file from which the paper quotes every measured number (``numbers.tex``)."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path

from gradstudy.errors import ConfigError
from gradstudy.results import backend, notice, versions, write_json_atomic, write_text_atomic
from gradstudy.studies._stats import K_SE


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


# The verdicts of gradstudy.studies._protocol.Claim; another word in a summary is kept too.
PASS, FAIL, NOT_ENOUGH_SEEDS = "pass", "fail", "not enough seeds"


def verdict(c: dict) -> str:
    """A claim's verdict: ``"pass"``, ``"fail"`` or another word the protocol may give (such
    as ``"not enough seeds"``, for a claim whose error bar cannot be estimated).

    A ``"verdict"`` string in the claim wins; else a string in ``"pass"``; else ``"pass"``
    exactly when ``c["pass"] is True`` (a missing or non-boolean value is no pass).
    """
    for key in ("verdict", "pass"):
        v = c.get(key)
        if isinstance(v, str) and v.strip():
            return v.strip().lower()
    return PASS if c.get("pass") is True else FAIL


def counts(summaries: list[dict]) -> dict[str, int]:
    """``{"total": n, "pass": …, "fail": …, "not enough seeds": …, <other verdict>: …}``
    over every claim; the three verdicts of the protocol are always present, another only
    when some claim has it."""
    out = {"total": 0, PASS: 0, FAIL: 0, NOT_ENOUGH_SEEDS: 0}
    for s in summaries:
        for c in s["claims"]:
            out["total"] += 1
            v = verdict(c)
            out[v] = out.get(v, 0) + 1
    return out


def _count_line(summaries: list[dict], verb: str) -> str:
    """"112 of 114 claims pass" (``verb``), with any verdict besides pass and fail after a
    semicolon ("; 2 not enough seeds")."""
    k = counts(summaries)
    others = "".join(f"; {n} {v}" for v, n in k.items()
                     if v not in ("total", PASS, FAIL) and n)
    return f"{k[PASS]} of {k['total']} claims {verb}{others}"


_MD_VERDICT = {PASS: "✅", FAIL: "❌ FAIL"}


def markdown(summaries: list[dict]) -> str:
    lines = ["| study | claim | statement | measured | expected | pass | source |",
             "|---|---|---|---|---|---|---|"]
    for s in summaries:
        for c in s["claims"]:
            v = verdict(c)
            lines.append(f"| {s['study']} | {c['id']} | {c['statement']} | {_fmt(c['measured'])} "
                         f"| {comparison(c)} | {_MD_VERDICT.get(v, '⚠ ' + v)} "
                         f"| {c['source']} |")
    scales = sorted({s["scale"] for s in summaries})
    lines += ["", f"{_count_line(summaries, 'pass')} (scale: {', '.join(scales)})."]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "^": r"\^{}", "$": r"\$",
        "~": r"\~{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "–": "--", "—": "---",
        "…": r"\dots{}", "§": r"\S{}", "✅": "yes", "❌": "no", "<": r"\textless{}",
        ">": r"\textgreater{}"}

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
         "τ": r"\tau ", "ḡ": r"\bar g ", "∈": r"\in ", "≲": r"\lesssim ", "≳": r"\gtrsim "}
_MATH_MARKERS = set("σχξφαδλμπγρ½⟨⟩‖∂²₁≤≥±≈−→√_=<>^·×ηεΔ∇β≪≫³⁻₂∏τḡ∈≲≳")
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
    return "".join(_TEX.get(ch) or (f"${_MATH[ch]}$" if ch in _MATH_MARKERS - plain
                                    else _unknown(ch))
                   for ch in str(s))


def _unknown(ch: str) -> str:
    """A character neither table knows: itself if ASCII, else its code point in type
    (``U+2272``), so that a new symbol in a statement never stops the paper's build."""
    return ch if ch.isascii() else rf"\texttt{{U+{ord(ch):04X}}}"


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
        out.append(_MATH[ch] if ch in _MATH else _unknown(ch))
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


def _sources_in_order(claims: list[dict]) -> list[tuple[str, list[dict]]]:
    """The claims grouped by their source, sources in order of first appearance, claims in
    their own order within a source."""
    groups: dict[str, list[dict]] = {}
    for c in claims:
        groups.setdefault(str(c.get("source", "")), []).append(c)
    return list(groups.items())


_TEX_VERDICT = {PASS: "yes", FAIL: r"\textbf{NO}"}
_COLUMNS = (r"@{}>{\raggedright\arraybackslash}p{0.64\linewidth}"
            r">{\raggedleft\arraybackslash}p{0.09\linewidth}"
            r">{\raggedright\arraybackslash}p{0.155\linewidth}c@{}")


def latex(summaries: list[dict]) -> str:
    """One ``longtable`` per study (for a one-column appendix), which follow each other as
    one table: the column header once at the top and again on every continued page, then
    per study a row naming it, per source (in full, as the study gives it) a row naming it
    once, and its claims: statement, measured value, expectation and whether it holds."""
    header = r"\toprule claim & measured & expected & holds \\ \midrule"
    out = [r"% generated by gradstudy.studies.latex: one longtable per study (one-column mode),",
           r"% set with \LTpre = \LTpost = 0pt they read as one table; a row names each study,",
           r"% and a row names each source once above its claims"]
    for i, s in enumerate(summaries):
        k = counts([s])
        holds = f"{k[PASS]} hold" + "".join(f", {n} {_tex(v)}" for v, n in k.items()
                                             if v not in ("total", PASS) and n)
        last = i == len(summaries) - 1
        out += [rf"\begin{{longtable}}{{{_COLUMNS}}}",
                (header if i == 0 else r"\midrule"),
                rf"\multicolumn{{4}}{{@{{}}l}}{{\textbf{{Study \texttt{{{_tex(s['study'])}}}}} "
                rf"({len(s['claims'])} claims, {holds}; scale {_tex(s['scale'])})}} \\*[1pt]",
                r"\endfirsthead",
                header + r" \endhead",
                r"\bottomrule \endfoot",
                (r"\bottomrule " if last else "") + r"\endlastfoot"]
        for source, claims in _sources_in_order(s["claims"]):
            out.append(r"\multicolumn{4}{@{}p{\linewidth}@{}}{\emph{Source:} "
                       + _tex(source) + r"} \\*[1pt]")
            for c in claims:
                v = verdict(c)
                out.append(
                    rf"\texttt{{{_tex(c['id'])}}}: {tex_statement(c['statement'])} & "
                    rf"{_tex_number(_fmt(c['measured']))} & {_tex_number(comparison(c))} & "
                    + _TEX_VERDICT.get(v, r"\textbf{" + _tex(v) + "}") + r" \\[1pt]")
        out += [r"\end{longtable}"]
    out += ["", rf"\noindent {_count_line(summaries, 'hold')}; no two claims test the same "
            r"statement on the same networks."]
    return "\n".join(out) + "\n"


# Keys of the numbers file are \csname names: only characters that are safe there (no
# active UTF-8 bytes, no braces, no backslash, no spaces).
_KEY_CHAR = re.compile(r"[A-Za-z0-9_.:+\-]")


def _key(part) -> str:
    """One part of a macro key: whitespace dropped, every unsafe character as ``-``."""
    return "".join(ch if _KEY_CHAR.fullmatch(ch) else "-"
                   for ch in str(part) if not ch.isspace())


def _value(x) -> str | None:
    """A stored number as text that LaTeX3's ``\fpeval`` and siunitx read (full precision,
    ``nan``/``inf`` kept), or None for what is not a number."""
    if isinstance(x, bool):
        return str(int(x))
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else str(x)
    if isinstance(x, str) and x.strip().lower() in ("nan", "inf", "-inf", "+inf"):
        return x.strip().lower().lstrip("+")
    return None


def _flatten(prefix: str, x, out: list[tuple[str, str]]) -> None:
    """Every number in a nested dict/list of diagnostics, keyed by its path."""
    if isinstance(x, dict):
        for k, v in x.items():
            _flatten(f"{prefix}/{_key(k)}", v, out)
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _flatten(f"{prefix}/{i}", v, out)
    else:
        v = _value(x)
        if v is not None:
            out.append((prefix, v))


def numbers(summaries: list[dict], record: dict | None = None) -> list[tuple[str, str]]:
    """Every number the paper may quote, as ``(key, value)`` pairs: the claim counts
    (``claims/total``, ``claims/pass``, ``claims/fail``, ``claims/not_enough_seeds``, any
    other verdict with ``_`` for spaces, ``claims/studies``), per study
    (``study/<study>/claims``, ``…/pass``, ``…/fail``, ``…/runtime_s``), per claim
    (``claim/<study>/<id>/measured``, ``…/expected``, ``…/tolerance``, ``…/upper``,
    ``…/pass`` as 1 or 0), and the diagnostics a summary
    carries (``measured/<study>/<name>``, ``diverged/<study>/<tag>``,
    ``divergence/<study>/<tag>/<field>``, ``nonfinite/<study>/<variable:reason>``; nested
    dicts and lists by path), with ``constant/K_SE``, the number of standard errors in a
    tolerance; and, given the ``record`` of a whole ``reproduce`` run (:func:`run_record`),
    its numbers as ``reproduce/<field>`` (``reproduce/wall_s``, ``reproduce/peak_rss_mb``,
    …; its text fields are left out). Names are kept as they are except for whitespace
    (dropped) and characters that a TeX control-sequence name cannot safely hold (each
    becomes ``-``).

    Raises:
        ConfigError: two entries map to the same key (names that differ only in characters
            that a key cannot hold).
    """
    k = counts(summaries)
    pairs = [("claims/total", str(k["total"])), ("claims/pass", str(k[PASS])),
             ("claims/fail", str(k[FAIL]))]
    pairs += [(f"claims/{_key(v.replace(' ', '_'))}", str(n)) for v, n in k.items()
              if v not in ("total", PASS, FAIL)]
    pairs += [("claims/studies", str(len(summaries))), ("constant/K_SE", _value(float(K_SE)))]
    for s in summaries:
        study = _key(s["study"])
        ks = counts([s])
        pairs += [(f"study/{study}/claims", str(ks["total"])),
                  (f"study/{study}/pass", str(ks[PASS])),
                  (f"study/{study}/fail", str(ks[FAIL]))]
        runtime = _value(s.get("runtime_s"))
        if runtime is not None:
            pairs.append((f"study/{study}/runtime_s", runtime))
        for c in s["claims"]:
            base = f"claim/{study}/{_key(c['id'])}"
            for field in ("measured", "expected", "tolerance", "upper"):
                v = _value(c.get(field))
                if v is not None:
                    pairs.append((f"{base}/{field}", v))
            pairs.append((f"{base}/pass", "1" if verdict(c) == PASS else "0"))
        for section in ("measured", "diverged_runs", "divergence", "nonfinite"):
            name = "diverged" if section == "diverged_runs" else section
            _flatten(f"{name}/{study}", s.get(section) or {}, pairs)
    if record:
        _flatten("reproduce", record, pairs)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ConfigError(f"summaries: two numbers map to the key {key!r} of the numbers "
                              "file; rename a study, claim or diagnostic")
        seen.add(key)
    return pairs


def numbers_tex(summaries: list[dict], record: dict | None = None) -> str:
    """The numbers of :func:`numbers` (with the run ``record``, if given) as LaTeX
    definitions, one ``\\gsdef{key}{value}`` a line, for the paper's
    ``\\claimmeasured{study}{claim}`` and its kin (which format the full-precision value
    with siunitx)."""
    scales = ", ".join(sorted({str(s["scale"]) for s in summaries}))
    out = [r"% generated by gradstudy.studies.write_tables from every study's summary.json "
           f"(scale: {scales}); do not edit",
           r"% \gsdef{key}{value}: read by \claimmeasured{study}{claim} and its kin in paper.tex",
           r"\providecommand\gsdef[2]{\expandafter\def\csname gs@#1\endcsname{#2}}"]
    out += [rf"\gsdef{{{key}}}{{{value}}}" for key, value in numbers(summaries, record)]
    return "\n".join(out) + "\n"


def write_tables(summaries: list[dict], directory: Path,
                 record: dict | None = None) -> list[Path]:
    """Write ``claims.md``, ``claims.tex`` and ``numbers.tex`` (every number the paper
    quotes, :func:`numbers_tex`, with the numbers of the ``record`` of the last whole
    ``reproduce`` run if given: :func:`read_run_record`) into ``directory``; returns their
    paths in that order."""

    paths = []
    for name, text in [("claims.md", markdown(summaries)), ("claims.tex", latex(summaries)),
                       ("numbers.tex", numbers_tex(summaries, record))]:
        write_text_atomic(text, Path(directory) / name)
        paths.append(Path(directory) / name)
    return paths


# ------------------------------------------------------ the record of a whole reproduce run
# Next to the studies' folders of a scale (results/ for paper, results/<scale>/ otherwise);
# written only by a `reproduce` of every study, so that its time and memory are those of
# the whole run the paper quotes.
RUN_RECORD = "reproduce.json"


def result_files(results_root: Path, studies: list[str]) -> dict[str, int]:
    """``{path: mtime in ns}`` of the stored results (``*.nc``) of ``studies`` and of the
    generated data sets (``data/``) under ``results_root``: compared before and after a run,
    which of them it computed and how many were already cached."""
    out = {}
    for sub in [*studies, "data"]:
        folder = Path(results_root) / sub
        if folder.is_dir():
            for path in folder.rglob("*.nc"):
                try:
                    out[str(path)] = path.stat().st_mtime_ns
                except OSError:  # removed meanwhile (a stale temporary being cleaned)
                    pass
    return out


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory in MB (10⁶ bytes) of this process and of its finished child
    processes (``getrusage``: ``ru_maxrss`` is in KiB on Linux, in bytes on macOS); NaN
    where the platform has no ``resource`` module."""
    try:
        import resource
    except ImportError:  # Windows
        return float("nan"), float("nan")
    unit = 1 if sys.platform == "darwin" else 1024
    return tuple(resource.getrusage(who).ru_maxrss * unit / 1e6
                 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def cpu_count() -> int:
    """The cores this process may run on (its affinity where the platform says so)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_record(scale: str, studies: int, claims: int, wall_s: float,
               files_before: dict[str, int], files_after: dict[str, int]) -> dict:
    """What :data:`RUN_RECORD` holds about a whole ``reproduce`` run: its wall time, peak
    resident memory, cores, versions and backend, and how much of it came from the cache
    (``result_files_cached``: stored results present when it began; ``result_files_written``:
    those it computed or recomputed)."""
    rss, rss_children = peak_rss_mb()
    written = sum(1 for path, mtime in files_after.items() if files_before.get(path) != mtime)
    return {"scale": scale, "studies": int(studies), "claims": int(claims),
            "wall_s": round(float(wall_s), 2), "peak_rss_mb": round(rss, 1),
            "peak_rss_children_mb": round(rss_children, 1), "cpu_count": cpu_count(),
            "result_files_cached": len(files_before), "result_files_written": written,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": versions(), "backend": backend(),
            "source": f"gradstudy reproduce --scale {scale} (peak RSS: getrusage)"}


def write_run_record(record: dict, results_root: Path) -> Path:
    """Store ``record`` atomically as ``results_root``/:data:`RUN_RECORD`; returns its path."""
    path = Path(results_root) / RUN_RECORD
    write_json_atomic(record, path)
    return path


def read_run_record(results_root: Path) -> dict | None:
    """The record of the last whole ``reproduce`` run under ``results_root``, or None if
    there is none; a file that is not a JSON object is skipped with one line naming it."""
    path = Path(results_root) / RUN_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        notice(f"{path}: not read ({type(e).__name__}); the numbers of the run are left out")
        return None
    if not isinstance(record, dict):
        notice(f"{path}: not a JSON object; the numbers of the run are left out")
        return None
    return record
