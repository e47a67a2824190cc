"""Tests of the claim statistics (stats), the claims tables (report), the figure helpers
(plotting) and the non-finite status codes (status), each against an independent reference:
a Monte Carlo simulation, the WCAG formula by hand, the drawn matplotlib artists, or a
hand-written table.
"""

import math
import re

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.markers import MarkerStyle

from gradstudy import plotting, status
from gradstudy.studies import _report as report, _stats as stats

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# ---------------------------------------------------------------------------- stats
REPLICATES = 4000
# Relative standard error of an empirical standard deviation over R normal-ish replicates.
SIM_REL_SE = 1 / math.sqrt(2 * REPLICATES)


def _replicates(n, seed=0, loc=3.0, scale=2.0):
    return np.random.default_rng(seed).normal(loc, scale, (REPLICATES, n))


def test_median_se_matches_simulated_spread_of_medians():
    # n odd and large enough that the asymptotic √(π/2)·σ/√n is within 0.5 % of the exact
    # finite-n spread (measured with 4e5 replicates: 0.995 at n = 65, 0.959 at n = 16).
    n = 65
    x = _replicates(n)
    results = np.array([stats.median_se(row) for row in x])
    np.testing.assert_array_equal(results[:, 0], np.median(x, axis=1))
    empirical = np.std(results[:, 0], ddof=1)
    # E[s²] = σ², so the RMS of the formula estimates √(π/2)·σ/√n without the c4 bias of s
    formula = math.sqrt(np.mean(results[:, 1] ** 2))
    assert formula == pytest.approx(math.sqrt(math.pi / 2) * 2.0 / math.sqrt(n), rel=0.02)
    assert empirical / formula == pytest.approx(1.0, abs=4 * SIM_REL_SE + 0.005)


def test_median_se_is_conservative_at_small_even_n():
    # at n = 16 the asymptotic formula overestimates the spread by ≈ 4 %: a claim's tolerance
    # from it is wide, never narrow
    n = 16
    x = _replicates(n, seed=1)
    results = np.array([stats.median_se(row) for row in x])
    ratio = np.std(results[:, 0], ddof=1) / math.sqrt(np.mean(results[:, 1] ** 2))
    assert 0.90 < ratio < 1 + 4 * SIM_REL_SE


def test_mean_se_matches_simulated_spread_of_means():
    n = 16
    x = _replicates(n, seed=2)
    results = np.array([stats.mean_se(row) for row in x])
    np.testing.assert_allclose(results[:, 0], np.mean(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(results[:, 1], np.std(x, axis=1, ddof=1) / math.sqrt(n),
                               rtol=1e-12)
    empirical = np.std(results[:, 0], ddof=1)
    formula = math.sqrt(np.mean(results[:, 1] ** 2))  # exact in expectation: E[s²] = σ²
    assert formula == pytest.approx(2.0 / math.sqrt(n), rel=0.02)
    assert empirical / formula == pytest.approx(1.0, abs=4 * SIM_REL_SE)


@pytest.mark.parametrize("fn", [stats.median_se, stats.mean_se])
def test_se_leaves_out_nonfinite_and_needs_min_seeds(fn):
    x = np.array([1.0, 2.0, 4.0, 7.0])
    with_bad = np.array([np.nan, 1.0, np.inf, 2.0, 4.0, -np.inf, 7.0])
    assert fn(with_bad) == pytest.approx(fn(x))
    # one finite seed is still a measurement, but has no error bar ("not enough seeds")
    value, se = fn([np.nan, 5.0, np.inf])
    assert value == 5.0 and math.isnan(se)
    assert all(math.isnan(v) for v in fn([np.nan, np.inf]))


def test_median_se_axis0_matches_per_column_loop():
    x = np.random.default_rng(3).lognormal(size=(9, 5))
    x[0, 1] = np.nan
    x[:8, 4] = np.inf  # one finite value: that value, with no standard error
    med, se = stats.median_se_axis0(x)
    for j in range(x.shape[1]):
        np.testing.assert_allclose([med[j], se[j]], stats.median_se(x[:, j]), rtol=1e-12)
    assert med[4] == x[8, 4] and np.isnan(se[4])


def test_bootstrap_se_is_reproducible_and_matches_analytic_se_of_mean():
    n = 200
    x = np.random.default_rng(4).normal(0.0, 3.0, n)
    se = stats.bootstrap_se(x, np.mean, seed=7)
    assert se == stats.bootstrap_se(x, np.mean, seed=7)
    assert se != stats.bootstrap_se(x, np.mean, seed=8)
    # the bootstrap SE of the mean is the plug-in s·√((n−1)/n)/√n, up to the Monte Carlo
    # error of 2000 resamples (relative 1/√(2·2000) ≈ 1.6 %)
    analytic = np.std(x, ddof=0) / math.sqrt(n)
    mc_rel_se = 1 / math.sqrt(2 * stats.BOOTSTRAP_RESAMPLES)
    assert se == pytest.approx(analytic, rel=4 * mc_rel_se)


def test_bootstrap_resamples_whole_seeds():
    # rows are seeds: two identical columns must stay paired in every resample
    col = np.random.default_rng(5).normal(size=30)
    x = np.stack([col, col], axis=1)
    assert stats.bootstrap_se(x, lambda s: np.mean(s[:, 0] - s[:, 1])) == 0.0
    assert stats.bootstrap_se(x, lambda s: np.mean(s[:, 0])) > 0


def test_bootstrap_se_nan_when_most_resamples_are_not_finite():
    x = np.arange(10.0)
    assert math.isnan(stats.bootstrap_se(x, lambda s: np.nan, resamples=50))


def test_tolerance_is_k_times_quadrature_sum():
    assert stats.tolerance(3.0, 4.0) == pytest.approx(stats.K_SE * 5.0)
    assert stats.tolerance(3.0, 4.0, k=2.0) == pytest.approx(10.0)
    assert stats.tolerance(0.25) == pytest.approx(stats.K_SE * 0.25)
    assert stats.tolerance(1.0, 2.0, 2.0, k=1.0) == pytest.approx(3.0)
    assert math.isnan(stats.tolerance(float("nan"), 1.0))


# ---------------------------------------------------------------------------- report
STATEMENTS = [
    "σ_w²",
    "‖∂L/∂h_1‖",
    "log10 ‖∂L/∂h_1‖/‖∂L/∂h_L‖ (median over seeds, SE 0.02)",
    "tanh σ_b=0 σ_w²=1.5: per-layer factor matches the mean-field χ(q_l) within 4 SE",
    "ratio_relu_he stays within 10% of 1 & holds for seed #3",
    # as experiments/depth_profile.py writes it for the leaky ReLU
    "leaky_relu_0.2, He: log10 ‖∂L/∂h_1‖/‖∂L/∂h_L‖ (median over seeds, SE 0.02) exceeds "
    "mean field by 0 to 30% per layer in ‖δ_l‖² (known, unexplained excess), ± 4 SE",
    "mean singular value of ∂h_l/∂h_(l−1), l = 2..5 (mean over 0…3) ≥ 0.5",
    "σ_b²=0.05, depth 8: σ_w² where ‖∂L/∂h_1‖ = ‖∂L/∂h_d‖ ± 2 · √3 × 2 ≈ 1",
    "float32: measured ∂x_D/∂x_0 equals factor^D where finite (max rel. error ≤ D·u)",
    "costs $5 ~ {a} \\ b",
    # as experiments/rnn_clipping.py and rnn_through_time.py write them (τ, ḡ, ∈)
    "clipped at τ = 0.5x, 1x ḡ (within Pascanu's half to ten times): no run diverges",
    "tanh RNN: ‖∂s_T/∂s_t‖₂ ≤ λ₁^(T−t) at every lag, τ ∈ [ḡ/2, 10 ḡ]",
    # as experiments/depth_profile.py writes the ReLU claims on the loss ⟨y, t⟩ and on MSE
    "relu, He, loss ⟨y, t⟩ (output cotangent independent of the network): ½ log10 of the "
    "seed mean of ‖∂L/∂h_1‖²/‖∂L/∂h_L‖² over mean field (SE 0.03) is 0 within 4 SE",
    "½log10[(1−2/n)^(L−1) + ρ(1−(1−2/n)^(L−1))], ρ = (v(m+2)+1)/(v+1), v = 0.5",
]


def _split_math(tex):
    """Alternating (text, math, text, ...) segments split at unescaped $."""
    return re.split(r"(?<!\\)\$", tex)


def _braces_balanced(s):
    depth = 0
    for m in re.finditer(r"\\[{}]|\\\\|\\[A-Za-z]+|[{}]", s):
        tok = m.group()
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


_MATH_TOKEN = re.compile(r"\\[A-Za-z]+ *|\\.|\{|\}|\s+|.", re.S)


def _double_scripts(math_text):
    """Places where a LaTeX math atom gets two subscripts or two superscripts
    ("! Double subscript"), e.g. ``a_{b}_{c}``."""
    errors = []
    seen = [set()]  # scripts attached to the last atom, per brace level
    tokens = [t for t in _MATH_TOKEN.findall(math_text) if not t.isspace()]
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("_", "^"):
            if tok in seen[-1]:
                errors.append(math_text)
            seen[-1].add(tok)
            i += 1  # skip the script's argument (a group is skipped as a whole)
            if i < len(tokens) and tokens[i] == "{":
                depth = 0
                while i < len(tokens):
                    depth += {"{": 1, "}": -1}.get(tokens[i], 0)
                    i += 1
                    if depth == 0:
                        break
            else:
                i += 1
            continue
        if tok == "{":
            seen.append(set())
        elif tok == "}":
            seen.pop()
            seen[-1] = set()  # the group is an atom
        elif tok == "'":
            pass  # a prime is a superscript in TeX; ' then ^ is fine
        else:
            seen[-1] = set()
        i += 1
    return errors


def _assert_latex_safe(tex):
    assert tex.isascii(), [ch for ch in tex if not ch.isascii()]
    parts = _split_math(tex)
    assert len(parts) % 2 == 1, f"unbalanced $: {tex!r}"
    assert _braces_balanced(tex), tex
    for k, part in enumerate(parts):
        assert _braces_balanced(part), (part, tex)
        if k % 2 == 0:  # text mode
            assert not re.search(r"(?<!\\)[_^]", part), f"raw _ or ^ in text: {tex!r}"
            assert not re.search(r"(?<!\\)[&%#]", part), f"raw &, % or # in text: {tex!r}"
            assert not re.search(r"\\(sigma|chi|partial|le|ge|pm|approx|mathrm)\b", part), tex
        else:
            assert not re.search(r"(?<!\\)[&%#]", part), f"raw &, % or # in math: {tex!r}"
            assert "\\text" not in part.replace("\\text{", ""), tex  # \textbackslash etc.


@pytest.mark.parametrize("statement", STATEMENTS, ids=[f"s{i}" for i in range(len(STATEMENTS))])
def test_tex_statement_is_ascii_with_balanced_math_and_braces(statement):
    _assert_latex_safe(report.tex_statement(statement))


@pytest.mark.parametrize("statement", STATEMENTS, ids=[f"s{i}" for i in range(len(STATEMENTS))])
def test_tex_statement_has_no_double_subscript(statement):
    tex = report.tex_statement(statement)
    errors = [e for k, part in enumerate(_split_math(tex)) if k % 2
              for e in _double_scripts(part)]
    assert not errors, f"{statement!r} -> {tex!r}: double sub/superscript in {errors}"


def test_tex_statement_maps_unicode_mathematics():
    tex = report.tex_statement("σ_w²")
    parts = _split_math(tex)
    assert len(parts) == 3 and parts[0] == parts[2] == ""
    assert re.fullmatch(r"\\sigma_\{?w\}?\^\{?2\}?", parts[1]), tex
    norm = report.tex_statement("‖∂L/∂h_1‖")
    assert norm.count(r"\|") == 2 and norm.count(r"\partial") == 2 and "h_{1}" in norm
    assert r"\log_{10}" in report.tex_statement("log10 of the ratio")
    assert r"\chi" in report.tex_statement("χ(q_l)")
    plain = report.tex_statement("50% of seeds & more #3")
    assert plain == r"50\% of seeds \& more \#3"


def test_tex_statement_groups_parenthesised_exponent():
    # "^(L−1)" is an exponent of L−1, as "_(l−1)" is a subscript of l−1
    tex = report.tex_statement("(1−2/n)^(L−1)")
    assert re.search(r"\^\{\(?L-1\)?\}", tex), tex
    assert re.search(r"_\{\(?l-1\)?\}", report.tex_statement("∂h_l/∂h_(l−1)"))


def _claim(cid, statement, measured, expected, tol, passed, source, **kw):
    return {"id": cid, "statement": statement, "measured": measured, "expected": expected,
            "tolerance": tol, "pass": passed, "source": source, **kw}


SUMMARIES = [
    {"study": "depth_profile", "scale": "smoke", "claims": [
        _claim("ratio_relu_he", "relu, He: log10 ‖∂L/∂h_1‖/‖∂L/∂h_L‖ matches mean field",
               0.0123, 0.0, 0.05, True, "mean-field theory: Eq. (3)"),
        _claim("chi_tanh_1.5", "tanh σ_w²=1.5: per-layer factor matches χ(q_l) & 5% #1",
               0.91, 0.93, 0.05, False, "mean-field theory (Schoenholz 2017)", comparison="rel"),
    ]},
    {"study": "multiplication_chain", "scale": "smoke", "claims": [
        _claim("breakdown_float32_0.1", "float32, factor 0.1: gradient underflows at depth "
               "in [38, 46]", 40.0, 38.0, 0.0, True, "closed form: (log u)/(log a)",
               comparison="range", upper=46.0),
    ]},
]


def test_latex_one_longtable_per_study_with_every_claim():
    tex = report.latex(SUMMARIES)
    assert tex.count(r"\begin{longtable}") == 2 and tex.count(r"\end{longtable}") == 2
    assert r"\begin{tabular}" not in tex
    tables = re.findall(r"\\begin\{longtable\}(.*?)\\end\{longtable\}", tex, re.S)
    heads = [re.findall(r"\\textbf\{Study \\texttt\{(.*?)\}\}", t) for t in tables]
    assert heads == [[r"depth\_profile"], [r"multiplication\_chain"]]
    # the column header heads the first table and every continued page, not each study
    assert tex.count(r"\endhead") == 2 and tex.count(r"\endfirsthead") == 2
    assert tables[0].count("claim & measured & expected & holds") == 2
    assert tables[1].count("claim & measured & expected & holds") == 1
    for summary, table in zip(SUMMARIES, tables):
        rows = [line for line in table.splitlines() if line.startswith(r"\texttt{")]
        assert len(rows) == len(summary["claims"])
        for row, c in zip(rows, summary["claims"]):
            assert re.search(r"\\\\(\[[^\]]*\])?$", row), row
            assert row.startswith(r"\texttt{" + c["id"].replace("_", r"\_") + "}:"), row
            assert report.tex_statement(c["statement"]) in row
            cells = re.split(r"(?<!\\)&", re.sub(r"\\\\(\[[^\]]*\])?$", "", row))
            assert len(cells) == 4, row  # statement, measured, expected, holds: no source
            for cell in cells:
                _assert_latex_safe(cell)
                assert not [e for k, part in enumerate(_split_math(cell)) if k % 2
                            for e in _double_scripts(part)], cell
            assert cells[-1].strip() == ("yes" if c["pass"] else r"\textbf{NO}")
        # every other line is a header/footer line, a rule, or a spanning study/source row
        for line in table.splitlines()[1:]:
            if line.strip() and line not in rows:
                assert (r"\endhead" in line or r"\endfoot" in line or r"\endlastfoot" in line
                        or line in (r"\midrule", r"\endfirsthead")
                        or line.startswith((r"\toprule", r"\multicolumn{4}"))), line
    assert tables[-1].count(r"\bottomrule") == 2  # the page footer, and the table's end
    assert r"2 of 3 claims hold" in tex
    assert tex.isascii()


def test_markdown_counts_pass_and_fail():
    md = report.markdown(SUMMARIES)
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 3  # header + one row per claim
    assert md.count("❌ FAIL") == 1 and md.count("✅") == 2
    assert "2 of 3 claims pass (scale: smoke)." in md
    fail_row = next(r for r in rows if "❌" in r)
    assert "| chi_tanh_1.5 |" in fail_row
    all_pass = [dict(s, claims=[dict(c, **{"pass": True}) for c in s["claims"]])
                for s in SUMMARIES]
    assert "3 of 3 claims pass" in report.markdown(all_pass)


# ---------------------------------------------------------------------------- plotting
def test_contrast_ratio_matches_hand_computed_wcag_values():
    assert plotting.contrast_ratio("white", "black") == pytest.approx(21.0, abs=1e-12)
    assert plotting.contrast_ratio("black", "white") == pytest.approx(21.0, abs=1e-12)
    # #777777: c = 119/255, L = ((c + 0.055)/1.055)^2.4 = 0.18447, (1.05)/(L + 0.05) = 4.478
    c = 119 / 255
    lum = ((c + 0.055) / 1.055) ** 2.4
    assert plotting.relative_luminance("#777777") == pytest.approx(lum, rel=1e-12)
    assert plotting.contrast_ratio("#777777") == pytest.approx(4.478, abs=1e-3)
    assert plotting.contrast_ratio("white", "#777777") == pytest.approx(4.478, abs=1e-3)
    # pure red: L = 0.2126 (the red weight), ratio 1.05/0.2626 = 3.998
    assert plotting.contrast_ratio("#ff0000") == pytest.approx(1.05 / 0.2626, rel=1e-9)
    # the linear segment below 0.03928: #0a0a0a, c = 10/255 → L = c/12.92
    assert plotting.relative_luminance("#0a0a0a") == pytest.approx(10 / 255 / 12.92)
    assert plotting.contrast_ratio("white", "white") == pytest.approx(1.0)


def test_diverging_colors_contrast_hue_and_neutral_centre():
    values = np.array([0.25, 0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 2.0, 4.0])
    colors = plotting.diverging_colors(values, center=1.0)
    assert len(colors) == len(values)
    for v, col in zip(values, colors):
        assert plotting.contrast_ratio(col, "white") >= 3.0, (v, col)
        r, _, b = to_rgb(col)
        if v < 1:
            assert b > r + 0.2, (v, col)
        elif v > 1:
            assert r > b + 0.2, (v, col)
        else:
            assert col == "0.35"
    # darker (lower luminance) the farther from the centre, on each side
    lum = {v: plotting.relative_luminance(c) for v, c in zip(values, colors)}
    assert lum[0.9] > lum[0.8] > lum[0.5] > lum[0.25]
    assert lum[1.1] > lum[1.25] > lum[2.0] > lum[4.0]
    # a value equal to the centre up to rounding is neutral too; a single value on a side
    # still gets its hue
    single = plotting.diverging_colors([1.0 + 1e-12, 3.0], center=1.0, neutral="k")
    assert single[0] == "k" and to_rgb(single[1])[0] > to_rgb(single[1])[2]


def test_sequential_colors_have_contrast_on_white():
    colors = plotting.sequential_colors(8)
    assert len(set(colors)) == 8
    assert min(plotting.contrast_ratio(c) for c in colors) >= 3.0


def _decade_ticks(lo, hi, max_labels):
    fig, ax = plt.subplots()
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    plotting.decade_ticks(ax, "y", max_labels=max_labels)
    ticks = np.asarray(ax.yaxis.get_major_locator()())
    plt.close(fig)
    return ticks


def test_decade_ticks_at_whole_decades_with_a_round_step():
    # 35 decades, at most 7 labels: steps 1, 2 and 5 (8 ticks) give too many, 10 fits
    ticks = _decade_ticks(1e-30, 1e5, 7)
    np.testing.assert_allclose(np.log10(ticks), np.arange(-30, 6, 10))
    ticks = _decade_ticks(1e-3, 1e2, 7)  # 5 decades: every decade
    np.testing.assert_allclose(np.log10(ticks), np.arange(-3, 3))


@pytest.mark.parametrize("lo,hi", [(1e-30, 1e5), (1e-7, 1e0), (1e-3, 1e4)])
def test_decade_ticks_label_at_most_max_labels(lo, hi):
    ticks = _decade_ticks(lo, hi, 7)
    assert 2 <= len(ticks) <= 7, np.log10(ticks)


def _marker_of(collection):
    """The marker symbol whose path a scatter collection draws."""
    verts = collection.get_paths()[0].vertices
    for m in ("v", "o", "x", "D"):
        style = MarkerStyle(m)
        ref = style.get_path().transformed(style.get_transform()).vertices
        if ref.shape == verts.shape and np.allclose(ref, verts):
            return m
    raise AssertionError(f"unknown marker path {verts}")


def test_mark_nonfinite_draws_each_reason_at_its_x():
    x = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    samples = np.ones((3, 6))
    codes = np.zeros((3, 6), np.int8)
    samples[0, 1], codes[0, 1] = 0.0, status.UNDERFLOW
    samples[2, 2], codes[2, 2] = np.inf, status.OVERFLOW
    samples[1, 3], codes[1, 3] = np.nan, status.FORWARD_NONFINITE
    samples[:, 4], codes[:, 4] = 0.0, status.NO_PATH
    samples[0, 5], codes[0, 5] = 0.0, status.UNDERFLOW  # two reasons at x = 60
    samples[1, 5], codes[1, 5] = np.nan, status.OVERFLOW
    fig, ax = plt.subplots()
    assert plotting.mark_nonfinite(ax, x, samples, "C0", status_codes=codes) is True
    drawn = {_marker_of(c): sorted(c.get_offsets()[:, 0]) for c in ax.collections}
    assert drawn == {"v": [20.0, 60.0], "x": [30.0, 60.0], "D": [40.0], "o": [50.0]}
    heights = {_marker_of(c): set(c.get_offsets()[:, 1]) for c in ax.collections}
    assert heights["v"] == heights["o"] == {0.02} and heights["x"] == heights["D"] == {0.98}
    handles, labels = plotting.nonfinite_legend(fig)
    expected = [plotting.NONFINITE_MARKERS[k][2] for k in sorted(
        (status.UNDERFLOW, status.OVERFLOW, status.FORWARD_NONFINITE, status.NO_PATH))]
    assert labels == expected and len(handles) == 4
    assert [h.get_marker() for h in handles] == ["v", "x", "D", "o"]
    plt.close(fig)


def test_mark_nonfinite_without_codes_reads_zero_as_underflow_and_inf_as_overflow():
    fig, ax = plt.subplots()
    samples = np.array([[1.0, 0.0, np.inf, 2.0], [1.0, 1.0, 1.0, np.nan]])
    assert plotting.mark_nonfinite(ax, [1, 2, 3, 4], samples, "C1")
    drawn = {_marker_of(c): sorted(c.get_offsets()[:, 0]) for c in ax.collections}
    assert drawn == {"v": [2.0], "x": [3.0, 4.0]}
    assert len(plotting.nonfinite_legend(fig)[1]) == 2
    plt.close(fig)


def test_nonfinite_legend_empty_for_finite_figure():
    fig, ax = plt.subplots()
    assert plotting.nonfinite_legend(fig) == ([], [])
    assert plotting.mark_nonfinite(ax, [1, 2], np.ones((4, 2)), "C0",
                                   status_codes=np.zeros((4, 2), np.int8)) is False
    assert not ax.collections
    assert plotting.nonfinite_legend(fig) == ([], [])
    plt.close(fig)


# ---------------------------------------------------------------------------- status
INF, NAN = float("inf"), float("nan")
CLASSIFY_TABLE = [  # value, forward_finite, present, structural_zero -> code
    (1.5, True, True, False, status.FINITE),
    (-2e-30, True, True, False, status.FINITE),
    (1e-45, True, True, False, status.FINITE),  # subnormal, not zero
    (0.0, True, True, False, status.UNDERFLOW),
    (-0.0, True, True, False, status.UNDERFLOW),
    (0.0, True, True, True, status.NO_PATH),
    (1.5, True, True, True, status.FINITE),  # only a 0 is relabelled
    (INF, True, True, False, status.OVERFLOW),
    (-INF, True, True, False, status.OVERFLOW),
    (NAN, True, True, False, status.OVERFLOW),
    (NAN, True, True, True, status.OVERFLOW),
    (1.5, False, True, False, status.FORWARD_NONFINITE),
    (0.0, False, True, True, status.FORWARD_NONFINITE),
    (NAN, False, True, False, status.FORWARD_NONFINITE),
    (NAN, True, False, False, status.ABSENT),
    (0.0, False, False, True, status.ABSENT),
    (INF, False, False, False, status.ABSENT),
]


def test_classify_numpy_table():
    cols = list(zip(*CLASSIFY_TABLE))
    values, fwd, present, structural, expected = (np.array(c) for c in cols)
    got = status.classify(values.astype(np.float64), fwd, present, structural)
    assert isinstance(got, np.ndarray) and got.dtype == np.int8
    np.testing.assert_array_equal(got, expected)
    # float32 gives the same codes (1e-45 is a float32 subnormal, not 0)
    np.testing.assert_array_equal(
        status.classify(values.astype(np.float32), fwd, present, structural), expected)
    for v, f, p, s, code in CLASSIFY_TABLE:
        assert int(status.classify(np.float64(v), f, p, s)) == code, (v, f, p, s)


def test_classify_broadcasts_per_seed_forward_flag_and_counts():
    values = np.array([[1.0, 0.0, np.inf], [1.0, 0.0, np.inf]])
    forward_finite = np.array([[True], [False]])  # one flag per seed
    codes = status.classify(values, forward_finite)
    np.testing.assert_array_equal(codes, [[status.FINITE, status.UNDERFLOW, status.OVERFLOW],
                                          [status.FORWARD_NONFINITE] * 3])
    assert status.counts(codes) == {"underflow": 1, "overflow": 1, "forward_nonfinite": 3}
