"""Tests of the numbers file (``figures/numbers.tex``), from which the paper quotes every
measured number, and of the claims table's sources and verdicts: the values against the
summaries they come from (read back from the generated text), the counts against a loop
over the claims, and every number that ``paper/paper.tex`` quotes against the committed
file, so that a renamed or removed claim fails here rather than in print.
"""

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gradstudy.errors import ConfigError
from gradstudy.studies import _report as report

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "paper" / "paper.tex"
NUMBERS = ROOT / "figures" / "numbers.tex"


def _claim(cid, measured, expected, tol, passed, source="mean-field theory: Eq. (3)", **kw):
    return {"id": cid, "statement": f"{cid} matches", "measured": measured,
            "expected": expected, "tolerance": tol, "pass": passed, "source": source, **kw}


SUMMARIES = [
    {"study": "depth_profile", "scale": "paper", "runtime_s": 12.5,
     "claims": [
         _claim("chi_tanh_1", 0.9666338145499451, 0.9648753493555691, 0.009563327129737209,
                True, comparison="rel"),
         _claim("ratio_relu_he", -0.011320421650585475, 0.0, 0.12958930385435155, False),
         _claim("tiny", 2.220446049250313e-16, 0.0, 1e-12, True),
         # a third verdict, as the protocol stores it: not passed, counted on its own
         _claim("few_seeds", 1.5, 1.0, "nan", False, verdict="not enough seeds"),
     ],
     "measured": {"average_gradient_norm": 0.8157218098640442, "per_depth": [1.5, 2.5],
                  "label": "not a number"},
     "diverged_runs": {"clip": 15},
     "nonfinite": {"preact_q: underflow": 43}},
    {"study": "multiplication_chain", "scale": "paper", "runtime_s": 0.98,
     "claims": [
         _claim("breakdown_float32_0.1", 38.0, 38.0, 0.0, True,
                source="closed form: IEEE 754", comparison="range", upper=46.0),
     ]},
]


def _parse(tex: str) -> dict[str, str]:
    """The ``\\gsdef{key}{value}`` lines of a numbers file, as a dict."""
    pairs = re.findall(r"^\\gsdef\{([^{}]*)\}\{([^{}]*)\}$", tex, re.M)
    assert len(pairs) == len({k for k, _ in pairs}), "a key is defined twice"
    return dict(pairs)


def test_numbers_file_holds_every_claim_value_at_full_precision():
    values = _parse(report.numbers_tex(SUMMARIES))
    for s in SUMMARIES:
        for c in s["claims"]:
            for field in ("measured", "expected", "tolerance", "upper"):
                key = f"claim/{s['study']}/{c['id']}/{field}"
                if field not in c:
                    assert key not in values
                    continue
                # the stored text reads back as the very same float (nan as nan)
                got, want = float(values[key]), float(c[field])
                assert got == want or (math.isnan(got) and math.isnan(want)), key
    assert values["claim/depth_profile/tiny/measured"] == "2.220446049250313e-16"
    assert values["claim/multiplication_chain/breakdown_float32_0.1/upper"] == "46.0"
    assert values["measured/depth_profile/average_gradient_norm"] == "0.8157218098640442"
    assert values["measured/depth_profile/per_depth/1"] == "2.5"
    assert not any(k.startswith("measured/depth_profile/label") for k in values)
    assert values["diverged/depth_profile/clip"] == "15"
    assert values["nonfinite/depth_profile/preact_q:underflow"] == "43"
    assert values["constant/K_SE"] == "4.0"
    assert values["study/multiplication_chain/runtime_s"] == "0.98"


def test_numbers_file_counts_match_a_loop_over_the_claims():
    values = _parse(report.numbers_tex(SUMMARIES))
    claims = [(s["study"], c) for s in SUMMARIES for c in s["claims"]]
    passing = [c for _, c in claims if c.get("verdict", "pass" if c["pass"] else "fail")
               == "pass"]
    few = [c for _, c in claims if c.get("verdict") == "not enough seeds"]
    assert values["claims/total"] == str(len(claims)) == "5"
    assert values["claims/pass"] == str(len(passing)) == "3"
    assert values["claims/not_enough_seeds"] == str(len(few)) == "1"
    assert values["claims/fail"] == str(len(claims) - len(passing) - len(few)) == "1"
    assert values["claims/studies"] == "2"
    for s in SUMMARIES:
        assert values[f"study/{s['study']}/claims"] == str(len(s["claims"]))
        assert values[f"study/{s['study']}/pass"] == str(
            sum(c.get("verdict", "pass" if c["pass"] else "fail") == "pass"
                for c in s["claims"]))
        for c in s["claims"]:
            assert values[f"claim/{s['study']}/{c['id']}/pass"] == (
                "1" if c["pass"] is True else "0")


def test_numbers_file_is_latex_safe_and_defines_its_macro():
    tex = report.numbers_tex(SUMMARIES)
    assert tex.isascii()
    assert r"\providecommand\gsdef[2]" in tex
    # keys are \csname names: no spaces, braces or backslashes
    for key in _parse(tex):
        assert re.fullmatch(r"[A-Za-z0-9_.:+/\-]+", key), key


def test_numbers_refuses_two_names_on_one_key():
    clash = [{"study": "s", "scale": "paper", "claims": [
        _claim("a b", 1.0, 1.0, 0.1, True), _claim("ab", 1.0, 1.0, 0.1, True)]}]
    with pytest.raises(ConfigError, match=r"claim/s/ab/measured"):
        report.numbers(clash)


def test_write_tables_writes_the_numbers_file(tmp_path):
    paths = report.write_tables(SUMMARIES, tmp_path)
    assert [p.name for p in paths] == ["claims.md", "claims.tex", "numbers.tex"]
    assert (tmp_path / "numbers.tex").read_text(encoding="utf-8") == report.numbers_tex(
        SUMMARIES)


# ------------------------------------------------------------- the table: sources, verdicts
def test_latex_names_each_source_once_per_study():
    repeated = [{"study": "s", "scale": "paper", "claims": [
        _claim(f"c{i}", 1.0, 1.0, 0.1, True,
               source="mean-field theory (Poole et al. 2016; Schoenholz et al. 2017)")
        for i in range(6)] + [_claim("d", 1.0, 1.0, 0.1, True, source="closed form")]}]
    tex = report.latex(repeated)
    assert tex.count("Poole et al. 2016") == 1
    assert tex.count(r"\emph{Source:}") == 2
    # the source row comes before its claims, and every claim row follows one
    lines = tex.splitlines()
    first_claim = next(i for i, line in enumerate(lines) if line.startswith(r"\texttt{c0}"))
    assert "Poole" in lines[first_claim - 1]
    assert lines.index(next(line for line in lines if "closed form" in line)) < next(
        i for i, line in enumerate(lines) if line.startswith(r"\texttt{d}"))


def test_tables_count_a_third_verdict_on_its_own():
    md = report.markdown(SUMMARIES)
    assert "3 of 5 claims pass; 1 not enough seeds (scale: paper)." in md
    assert md.count("⚠ not enough seeds") == 1 and md.count("❌ FAIL") == 1
    tex = report.latex(SUMMARIES)
    assert r"\textbf{not enough seeds} \\" in tex
    assert "3 of 5 claims hold; 1 not enough seeds" in tex
    assert "(4 claims, 2 hold, 1 fail, 1 not enough seeds; scale paper)" in tex


def test_tex_sets_unknown_characters_as_code_points():
    tex = report.latex([{"study": "s", "scale": "paper", "claims": [
        _claim("c", 1.0, 1.0, 0.1, True, source="Schoenholz 2017 (depth ≲ 6ξ_c) § 3 ☃")]}])
    assert tex.isascii()
    assert r"\lesssim" in tex and r"\S{}" in tex and r"\texttt{U+2603}" in tex


# ------------------------------------------------------------- the paper quotes what exists
# the macros of paper.tex that name a number, and the key each one reads
_CLAIM_FIELD = {"claimmeasured": "measured", "claimexpected": "expected",
                "claimtolerance": "tolerance", "claimse": "tolerance"}
_REFERENCE = re.compile(
    r"\\(?P<macro>claimmeasured|claimexpected|claimtolerance|claimse|claimraw|claimdev"
    r"|claimreldev|studymeasured|studynonfinite|studyclaims|gsraw)"
    r"(?:\[[^\]]*\])?(?P<args>(?:\{[^{}]*\})+)")
_COUNTS = {"claimstotal": "claims/total", "claimspassing": "claims/pass",
           "claimsfailing": "claims/fail", "claimsstudies": "claims/studies"}


def paper_number_keys(tex: str) -> list[str]:
    """Every key of the numbers file that ``tex`` reads through the paper's macros."""
    keys = []
    for m in _REFERENCE.finditer(tex):
        macro = m["macro"]
        args = re.findall(r"\{([^{}]*)\}", m["args"])
        if macro in _CLAIM_FIELD:
            keys.append(f"claim/{args[0]}/{args[1]}/{_CLAIM_FIELD[macro]}")
        elif macro == "claimraw":
            keys.append(f"claim/{args[0]}/{args[1]}/{args[2]}")
        elif macro in ("claimdev", "claimreldev"):
            keys += [f"claim/{args[0]}/{args[1]}/measured", f"claim/{args[0]}/{args[1]}/expected"]
        elif macro == "studymeasured":
            keys.append(f"measured/{args[0]}/{args[1]}")
        elif macro == "studynonfinite":
            keys.append(f"nonfinite/{args[0]}/{args[1]}")
        elif macro == "studyclaims":
            keys.append(f"study/{args[0]}/claims")
        else:  # gsraw
            keys.append(args[0])
    keys += [key for name, key in _COUNTS.items() if re.search(rf"\\{name}(?![A-Za-z])", tex)]
    return keys


def _paper() -> str:
    """paper.tex with the sections it ``\\input``s inlined (they quote numbers too)."""
    tex = PAPER.read_text(encoding="utf-8")
    return re.sub(r"\\input\{(sections/[^}]+)\}",
                  lambda m: (PAPER.parent / m[1]).read_text(encoding="utf-8"), tex)


def _body(tex: str) -> str:
    """paper.tex without its comments and without the preamble's macro definitions (whose
    ``#1`` arguments are not keys)."""
    tex = re.sub(r"(?<!\\)%.*", "", tex)
    return tex[tex.index(r"\begin{document}"):]


def test_paper_quotes_only_numbers_of_the_committed_numbers_file():
    keys = paper_number_keys(_body(_paper()))
    assert len(keys) > 100, "the paper quotes the run's numbers through the macros"
    defined = _parse(NUMBERS.read_text(encoding="utf-8"))
    missing = sorted({k for k in keys if k not in defined})
    assert not missing, f"paper.tex quotes numbers that figures/numbers.tex lacks: {missing}"


def test_paper_check_catches_a_renamed_claim():
    # the check above, on a paper that quotes a claim by its old name
    tex = (r"\begin{document} $\claimmeasured[3]{depth_profile}{chi_tanh_1}$ and "
           r"\gsfix{1}{100*\claimreldev{depth_profile}{chi_tanh_one}} of \claimstotal")
    keys = paper_number_keys(tex)
    assert keys == ["claim/depth_profile/chi_tanh_1/measured",
                    "claim/depth_profile/chi_tanh_one/measured",
                    "claim/depth_profile/chi_tanh_one/expected", "claims/total"]
    defined = _parse(report.numbers_tex(SUMMARIES))
    assert [k for k in keys if k not in defined] == [
        "claim/depth_profile/chi_tanh_one/measured", "claim/depth_profile/chi_tanh_one/expected"]


def test_paper_quotes_no_count_of_claims_as_a_literal():
    # the abstract once said "all 41 automatically checked claims hold" while the appendix
    # listed 112 of 114: counts of claims come from the run
    body = _body(_paper())
    literal = re.findall(r"\b\d+\s+(?:of\s+(?:the\s+)?\d+\s+)?(?:automatically\s+checked\s+)?"
                         r"claims\b", body)
    assert not literal, literal


def test_paper_quotes_every_entry_of_a_listed_diagnostic():
    # trainability lists the cells against its claims one by one (…_against/0, /1, /2): a
    # rerun with a fourth such cell must not leave it out of the sentence silently
    quoted: dict[str, set[str]] = {}
    for key in paper_number_keys(_body(_paper())):
        m = re.fullmatch(r"(measured/[^/]+/[^/]+)/(\d+)(/.*)?", key)
        if m:
            quoted.setdefault(m[1], set()).add(m[2])
    assert "measured/trainability/deep_untrainable_against" in quoted
    defined = _parse(NUMBERS.read_text(encoding="utf-8"))
    for prefix, indices in quoted.items():
        present = {m[1] for k in defined if (m := re.fullmatch(
            re.escape(prefix) + r"/(\d+)(/.*)?", k))}
        assert indices == present, f"paper.tex quotes {prefix}/{sorted(indices)}, " \
                                   f"the run has {sorted(present)}"


# ------------------------------------------ the studies' numbers that are not claims (issue 16)
def _study(name):
    spec = importlib.util.spec_from_file_location(f"_numbers_{name}",
                                                  ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exploding_and_clipping_measures_what_the_paper_quotes():
    study = _study("exploding_and_clipping")
    rng = np.random.default_rng(0)
    multiples = [0.5, 1.1, 4.0]
    p = {"multiples": multiples}
    seeds, steps = 5, study.EARLY + 4
    loss = 50 - np.cumsum(rng.uniform(0.1, 1, (len(multiples), seeds, steps)), axis=-1)
    loss[:, 1, 4] += 2  # a rise within the first EARLY steps
    loss[0, 2, study.EARLY + 2] += 2  # a rise after them: still monotone
    loss[1, 0, 1] = loss[1, 0, 0]  # a step without decrease
    loss[2, 3, 6:] = np.nan  # a diverged run
    diverged = np.full((len(multiples), seeds), -1)
    diverged[2, 3] = 6
    gd = xr.Dataset({"loss": (("point", "learning_rate", "seed", "step"), loss[None]),
                     "diverged_at": (("point", "learning_rate", "seed"), diverged[None])})
    lam = np.array([53.5, 120.0, 246.75, 99.0])
    got = study._gd_measured(p, gd, lam)
    assert got["lambda_max_min"] == 53.5 and got["lambda_max_max"] == 246.75
    assert got["gd_runs"] == seeds
    for k, c in enumerate(multiples):  # a per-run loop over the first EARLY steps
        mono = sum(all(loss[k, s, t + 1] < loss[k, s, t] for t in range(study.EARLY))
                   for s in range(seeds))
        assert got["gd_monotone_runs"][f"c{c:g}"] == mono
        assert got["gd_diverged_runs"][f"c{c:g}"] == sum(d >= 0 for d in diverged[k])
    assert 0 < sum(got["gd_monotone_runs"].values()) < len(multiples) * seeds

    p = {"value_thresholds": [0.1, 1.0], "norm_thresholds": [1.0], "agc_thresholds": [0.01]}
    settings = [("none", None)] + [(m, t) for m in study.METHODS
                                   for t in study._thresholds(p, m)]
    runs, fired, div = {}, {}, {}
    for k, (method, threshold) in enumerate(settings):
        f = rng.random((1, 1, seeds, steps)) < k / len(settings)
        d = np.where(rng.random((1, 1, seeds)) < 0.4, 3, -1)
        runs[(method, threshold)] = xr.Dataset({
            "clip_fired": (("point", "learning_rate", "seed", "step"), f),
            "diverged_at": (("point", "learning_rate", "seed"), d)})
        key = method if threshold is None else f"{method}-{threshold:g}"
        fired[key] = sum(f.ravel()) / f.size
        div[key] = int(sum(d.ravel() >= 0))
    got = study._clip_measured(runs)
    assert set(got["clip_fired"]) == set(fired) - {"none"}
    assert {"value-0.1", "value-1", "global_norm-1", "adaptive-0.01"} == set(got["clip_fired"])
    for key in got["clip_fired"]:
        assert got["clip_fired"][key] == pytest.approx(fired[key], rel=1e-12)
    assert got["clip_diverged_runs"] == div
    assert got["clip_runs"] == seeds
    assert got["clipped_runs"] == seeds * (len(settings) - 1)
    assert got["clipped_diverged_runs"] == sum(n for k, n in div.items() if k != "none")


def test_fixes_table_measures_every_cell_of_its_table():
    study = _study("fixes_table")
    slugs = {label: study._slug(label) for label in study.FIXES}
    assert slugs["ReLU + He"] == "relu_he" and slugs["raw inputs"] == "raw_inputs"
    assert len(set(slugs.values())) == len(slugs), "one key per row"
    assert all(re.fullmatch(r"[a-z0-9_]+", s) for s in slugs.values())
    rows = {}
    for k, (setting, label) in enumerate((s, f) for s in study.SETTINGS for f in study.FIXES):
        rows[(setting, label)] = {"ratio": -k / 3, "grad_init": 10.0 ** k, "loss": 1 + k / 7,
                                  "accuracy": float("nan") if k % 5 == 0 else k / 100,
                                  "diverged": (k % 3) / 2, "seeds": 8}
    # the table's cells: no "-0.0" for a ratio that rounds to zero
    assert [study._fmt(x, 1) for x in (-0.04, 0.04, -0.05, float("nan"))] == [
        "0.0", "0.0", "-0.1", "--"]
    got = study._measured(rows)
    values = _parse(report.numbers_tex([{"study": "fixes_table", "scale": "paper",
                                         "claims": [], "measured": got}]))
    for (setting, label), row in rows.items():
        for field in ("ratio", "grad_init", "loss", "accuracy", "diverged"):
            v = float(values[f"measured/fixes_table/{setting}/{slugs[label]}/{field}"])
            assert v == row[field] or (math.isnan(v) and math.isnan(row[field]))


def test_trainability_lists_the_cells_against_each_claim():
    study = _study("trainability")
    p = {"depths": [2, 8, 32, 64]}
    s2w = np.array([0.5, 1.0, 1.76, 3.0])
    xi = np.array([1.2, 3.6, 900.0, 4.0])
    rng = np.random.default_rng(1)
    accuracy = rng.uniform(0.1, 0.4, (len(s2w), len(p["depths"])))
    got = study._measured(p, s2w, accuracy, xi)
    deep, shallow = [], []
    for i, v in enumerate(s2w):  # a loop over the cells, in order of σ_w² then depth
        for j, d in enumerate(p["depths"]):
            trains = accuracy[i, j] > study.CHANCE + study.MARGIN
            cell = {"sigma_w2": v, "depth": d, "depth_over_xi_c": d / xi[i],
                    "accuracy": accuracy[i, j]}
            if d > 6 * xi[i]:
                deep.append((cell, trains))
            if d < xi[i]:
                shallow.append((cell, not trains))
    assert got["deep_untrainable_cells"] == len(deep)
    assert got["shallow_trainable_cells"] == len(shallow)
    assert got["deep_untrainable_against"] == [c for c, against in deep if against]
    assert got["shallow_trainable_against"] == [c for c, against in shallow if against]
    assert got["deep_untrainable_against"] and got["shallow_trainable_against"], \
        "the test covers both lists"


def _median(values):
    """The median of a list, by sorting (no NumPy)."""
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def _finite_log10_ratios(norms):
    """Per seed, log10 of the first over the last norm, for seeds where both are positive."""
    return [math.log10(float(row[0]) / float(row[-1])) for row in norms
            if float(row[0]) > 0 and float(row[-1]) > 0]


def test_depth_profile_measures_what_the_paper_quotes():
    from gradstudy.studies import median_se
    from gradstudy.theory import backprop_profile, weight_grad_profile

    study = _study("depth_profile")
    p = {"width": 8, "depth": 8, "seeds": 5, "batch": 4, "tanh_sigma_w2": [0.8, 2.0],
         "dtype": "float64"}
    points, labels = study._points(p)
    rng = np.random.default_rng(2)
    seeds, depth = p["seeds"], p["depth"]
    bp = 10.0 ** rng.normal(0, 2, (len(points), seeds, depth))
    wg = 10.0 ** rng.normal(0, 2, (len(points), seeds, depth))
    bp_factor = 10.0 ** rng.normal(0, 1, (len(p["tanh_sigma_w2"]), seeds, depth))
    bp_linear = 10.0 ** rng.normal(0, 1, (len(study.RELU_FAMILY), seeds, depth))
    bp[labels.index("relu | Xavier"), 1, 0] = 0.0  # an underflowed seed: left out
    got = study._measured(p, points, labels, bp, wg, bp_factor, bp_linear)
    inits = {label: iid for label, (_, _, iid) in study.INITS.items()}
    assert set(got["log_ratio"]) == {"relu", "leaky_relu_0.2"}
    for act in ("relu", "leaky_relu_0.2"):
        for label, iid in inits.items():
            i = labels.index(f"{act} | {label}")
            logs = _finite_log10_ratios(bp[i])
            assert len(logs) == (seeds - 1 if (act, iid) == ("relu", "xavier") else seeds)
            mf = math.log10(backprop_profile(points[i], 1.0, depth)[0])
            row = got["log_ratio"][act][iid]
            assert row["median"] == pytest.approx(_median(logs), abs=1e-12)
            assert row["mean_field"] == pytest.approx(mf, abs=1e-12)
            assert row["excess"] == pytest.approx(_median(logs) - mf, abs=1e-12)
            assert row["se"] == pytest.approx(median_se(logs)[1], rel=1e-12)
    for label, iid in inits.items():
        i = labels.index(f"sigmoid | {label}")
        logs = _finite_log10_ratios(wg[i])
        mf = math.log10(weight_grad_profile(points[i], 1.0, depth)[0])
        row = got["weight_grad_log_ratio"]["sigmoid"][iid]
        assert row["median"] == pytest.approx(_median(logs), abs=1e-12)
        assert row["below_mean_field"] == pytest.approx(mf - _median(logs), abs=1e-12)
        assert row["below_in_se"] == pytest.approx((mf - _median(logs)) / median_se(logs)[1],
                                                   rel=1e-10)
    # Jensen's gap: ½ log10 of the seed mean of squared ratios (over mean field) minus the
    # median log-ratio (over mean field), for the claims on the mean of squares
    cases = {"ratio_relu_he_mse_excess": ("relu", "He", bp[labels.index("relu | He")]),
             "ratio_relu_gauss3_mse_excess": ("relu", "Gaussian σ_w=3",
                                              bp[labels.index("relu | Gaussian σ_w=3")]),
             "ratio_relu_he_independent_cotangent": ("relu", "He", bp_linear[0]),
             "ratio_leaky_relu_0.2_he_independent_cotangent": ("leaky_relu_0.2", "He",
                                                               bp_linear[1])}
    assert set(got["jensen_gap"]) == set(cases)
    for cid, (act, label, norms) in cases.items():
        mf = math.log10(backprop_profile(points[labels.index(f"{act} | {label}")], 1.0,
                                         depth)[0])
        logs = _finite_log10_ratios(norms)
        mean_square = sum(10 ** (2 * (x - mf)) for x in logs) / len(logs)
        want = 0.5 * math.log10(mean_square) - (_median(logs) - mf)
        assert got["jensen_gap"][cid] == pytest.approx(want, abs=1e-10)
        assert want > 0  # Jensen: the log of a mean is above the mean (here median) of logs
    for s2, norms in zip(p["tanh_sigma_w2"], bp_factor):
        want = _median([(float(row[0]) / float(row[1])) ** 2 for row in norms])
        assert got["tanh_factor_layer1"][f"{s2:g}"] == pytest.approx(want, rel=1e-12)
    values = _parse(report.numbers_tex([{"study": "depth_profile", "scale": "paper",
                                         "claims": [], "measured": got}]))
    assert float(values["measured/depth_profile/log_ratio/leaky_relu_0.2/gauss0.5/excess"]) \
        == got["log_ratio"]["leaky_relu_0.2"]["gauss0.5"]["excess"]
    assert "measured/depth_profile/tanh_factor_layer1/0.8" in values


def test_cnn_depth_measures_every_trained_network():
    study = _study("cnn_depth")
    p = {"shallow": 4, "deep": 50, "train_blocks": list(study.BLOCKS)}
    rng = np.random.default_rng(3)
    seeds, evals = 4, 3

    def fake():
        acc = rng.uniform(0.1, 0.9, (1, 1, seeds, evals))
        loss = rng.uniform(0.2, 2.3, (1, 1, seeds, evals))
        acc[0, 0, 1, -1] = np.nan  # a diverged seed: left out of the median
        dims = ("point", "learning_rate", "seed", "eval_step")
        return xr.Dataset({"test_accuracy": (dims, acc), "train_loss": (dims, loss)})

    runs = {(d, b): fake() for d in (p["shallow"], p["deep"]) for b in p["train_blocks"]}
    gru = fake()
    got = study._measured(p, runs, gru)
    slugs = {"plain He": "plain_he", "plain δ-orthogonal": "plain_delta_orthogonal",
             "BatchNorm": "batchnorm", "residual": "residual"}
    for field in ("test_accuracy", "train_loss"):
        for (d, block), ds in runs.items():
            final = [float(ds[field].values[0, 0, s, -1]) for s in range(seeds)]
            want = _median([v for v in final if not math.isnan(v)])
            assert got[field][f"depth{d}"][slugs[block]] == pytest.approx(want, rel=1e-12)
        final = [float(gru[field].values[0, 0, s, -1]) for s in range(seeds)]
        assert got[field]["gru"] == pytest.approx(
            _median([v for v in final if not math.isnan(v)]), rel=1e-12)
    values = _parse(report.numbers_tex([{"study": "cnn_depth", "scale": "paper",
                                         "claims": [], "measured": got}]))
    assert float(values["measured/cnn_depth/test_accuracy/depth50/batchnorm"]) == \
        got["test_accuracy"]["depth50"]["batchnorm"]


def test_phase_diagram_locates_every_underflowed_variance():
    from gradstudy import status

    study = _study("phase_diagram")
    s2w, s2b, layers = [0.5, 1.0, 2.5], [0.0, 0.05], np.arange(1, 9)
    w_of = [w for _ in s2b for w in s2w]  # per point, σ_b² major as run() builds them
    b_of = [b for b in s2b for _ in s2w]
    rng = np.random.default_rng(4)
    q = rng.choice([status.FINITE, status.UNDERFLOW, status.OVERFLOW], p=[0.9, 0.05, 0.05],
                   size=(len(w_of), 3, len(layers))).astype(np.int8)
    got = study._measured(q, np.tile(s2w, len(s2b)), np.repeat(s2b, len(s2w)), layers, 7)
    where = [(int(layers[j]), w_of[i], b_of[i]) for i in range(q.shape[0])
             for s in range(q.shape[1]) for j in range(q.shape[2])
             if q[i, s, j] == status.UNDERFLOW]
    under = got["preact_q_underflow"]
    assert under["values"] == len(where) > 1
    for k, name in enumerate(("layer", "sigma_w2", "sigma_b2")):
        assert under[f"{name}_min"] == min(w[k] for w in where)
        assert under[f"{name}_max"] == max(w[k] for w in where)
    assert got["nonfinite_ratio_cells"] == 7
    none = study._measured(np.zeros_like(q), np.tile(s2w, 2), np.repeat(s2b, 3), layers, 0)
    assert none["preact_q_underflow"]["values"] == 0
    assert math.isnan(none["preact_q_underflow"]["layer_min"])
    values = _parse(report.numbers_tex([{"study": "phase_diagram", "scale": "paper",
                                         "claims": [], "measured": got}]))
    assert float(values["measured/phase_diagram/preact_q_underflow/layer_max"]) == \
        under["layer_max"]


def test_rnn_through_time_measures_the_rate_at_every_rho():
    study = _study("rnn_through_time")
    p = {"rhos": [0.5, 1.0, 1.6, 4.0]}
    seeds, T = 5, 12
    rng = np.random.default_rng(5)
    jac = 10.0 ** rng.normal(0, 3, (len(p["rhos"]), seeds, T + 1))
    got = study._measured(p, xr.DataArray(jac, dims=("point", "seed", "lag")))
    assert set(got["tanh_rate"]) == {"rho0.5", "rho1", "rho1.6", "rho4"}
    for k, rho in enumerate(p["rhos"]):  # per seed: the T-th root of the norm at lag T
        want = _median([float(jac[k, s, T]) ** (1 / T) for s in range(seeds)])
        assert got["tanh_rate"][f"rho{rho:g}"] == pytest.approx(want, rel=1e-12)


def test_rnn_clipping_counts_the_runs_of_every_threshold():
    study = _study("rnn_clipping")
    p = {"multiples": [0.1, 1.0, 100.0, 10000.0]}
    labels = ["none"] + [f"{m:g}x" for m in p["multiples"]]
    seeds = 6
    rng = np.random.default_rng(6)
    baseline = 1 / 12
    final = baseline * 10.0 ** rng.uniform(-1, 1.6, (len(labels), seeds))  # some above 10×
    diverged = np.where(rng.random((len(labels), seeds)) < 0.3, 7, -1)
    final[diverged >= 0] = np.nan
    grid = xr.Dataset(
        {"train_loss": (("point", "learning_rate", "seed", "eval_step"),
                        np.stack([final * 3, final], axis=-1)[:, None]),
         "diverged_at": (("point", "learning_rate", "seed"), diverged[:, None])},
        coords={"point": labels})
    got = study._measured(p, grid)
    keys = ["none", "0.1x", "1x", "100x", "10000x"]
    for k, key in enumerate(keys):  # a per-run loop
        div = sum(int(diverged[k, s] >= 0) for s in range(seeds))
        blown = sum(int(diverged[k, s] >= 0 or not final[k, s] <= study.BLOWN_UP * baseline)
                    for s in range(seeds))
        assert got["diverged_runs"][key] == div
        assert got["blown_up_runs"][key] == blown
    assert sum(got["blown_up_runs"].values()) > sum(got["diverged_runs"].values()) > 0


def test_long_memory_measures_the_steps_and_ratios_it_quotes():
    study = _study("long_memory")
    seeds, steps, evals = 4, 400, 3
    window = max(1, steps // 40)
    rng = np.random.default_rng(7)

    def fake(baseline, solve_at):
        loss = np.full((len(study.CELLS), 1, seeds, steps), baseline)
        for c in range(len(study.CELLS)):
            for s in range(seeds):
                at = solve_at[c][s]
                if at is not None:
                    loss[c, 0, s, at:] = 0.01 * baseline
        loss *= rng.uniform(0.9, 1.1, loss.shape)
        test = baseline * 10.0 ** rng.uniform(-3, 0.1, (len(study.CELLS), 1, seeds, evals))
        dims = ("point", "learning_rate", "seed")
        return xr.Dataset({"loss": (dims + ("step",), loss),
                           "test_loss": (dims + ("eval_step",), test)},
                          coords={"point": list(study.CELLS)})

    runs = {("adding", 50): (fake(1 / 12, [[None] * 4, [90, 150, 300, 120],
                                             [40, None, 60, 70]]), 1 / 12),
            ("copy", 10): (fake(0.5, [[None] * 4] * 3), 0.5)}
    got = study._measured(runs)
    for (task, T), (ds, baseline) in runs.items():
        for c, (label, cell) in enumerate(study.CELLS.items()):
            ratios = [float(ds.test_loss.values[c, 0, s, -1]) / baseline for s in range(seeds)]
            row = got["final_ratio"][task][f"T{T}"][cell]
            assert row["median"] == pytest.approx(_median(ratios), rel=1e-12)
            assert (row["min"], row["max"]) == pytest.approx((min(ratios), max(ratios)))
            threshold = study.SOLVED if task == "adding" else study.BEATS
            assert got["seeds_below"][task][f"T{T}"][cell] == sum(r < threshold
                                                                  for r in ratios)
            if task != "adding":
                continue
            first = []  # per seed: the first window of minibatch losses below SOLVED
            for s in range(seeds):
                run = [float(x) for x in ds.loss.values[c, 0, s]]
                ends = [t for t in range(window - 1, steps)
                        if sum(run[t - window + 1:t + 1]) / window < study.SOLVED * baseline]
                first.append(ends[0] if ends else None)
            want = got["steps_to_solve"][f"T{T}"][cell]
            reached = [t for t in first if t is not None]
            assert want["never"] == first.count(None)
            assert want["first"] == min(reached) if reached else math.isnan(want["first"])
            assert want["last"] == max(reached) if None not in first \
                else math.isnan(want["last"])
    assert got["steps_to_solve"]["T50"]["lstm"]["never"] == 0
    assert got["steps_to_solve"]["T50"]["gru"]["never"] == 1
    assert "copy" not in got["steps_to_solve"]
