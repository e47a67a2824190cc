"""``gradstudy list | reproduce | run``: the one command behind every figure.

Bad input prints one line naming the field and the allowed values and exits with 2,
without a traceback: unknown study, scale or ``--set`` key, a ``--set`` value outside the
study's ``LIMITS``, an ``--out`` that is not a writable directory, a study file that does
not import.  ``gradstudy run NAME --help`` lists the study's ``--set`` keys.

The studies come from :func:`gradstudy.studies.experiments_dir` (``$GRADSTUDY_EXPERIMENTS``,
else those the wheel carries, else the repository's ``experiments/``), so the installed
command works from any directory; every file it writes goes under ``--out``.

What it prints is about the run it made: each claim with its verdict (PASS, FAIL, or NOT
ENOUGH SEEDS where the error bar needs more seeds than were run), the training runs that
diverged (of how many, at which steps), and counts of this run's claims — ``reproduce
--only`` counts and checks (``--check``) the studies it ran, and says which older
summaries its tables also include.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

from gradstudy import tools
from gradstudy._compilation_cache import cache_size, enable_compilation_cache
from gradstudy._version import __version__
from gradstudy._xla import default_xla_flags
from gradstudy.engine._sweep import release_programs
from gradstudy.errors import ConfigError
from gradstudy.results import write_atomic
from gradstudy.studies._protocol import (
    FAIL,
    NOT_ENOUGH_SEEDS,
    PASS,
    SCALES,
    VERDICTS,
    claim_verdict,
    discover_all,
    experiments_dir,
    load_summaries,
    output_dirs,
    parse_overrides,
    run_study,
    study_limits,
    study_params,
)
from gradstudy.studies._report import (
    comparison,
    read_run_record,
    result_files,
    run_record,
    write_run_record,
    write_tables,
)
from gradstudy.studies._stats import MIN_SEEDS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        print(f"gradstudy: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gradstudy", description="Measured vanishing and exploding gradients.")
    p.add_argument("--version", action="version", version=f"gradstudy {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the studies (and any that fail to import)")
    r = sub.add_parser("reproduce", help="run studies, write figures, results and claims table")
    r.add_argument("--scale", default="paper", help=f"one of {', '.join(SCALES)}")
    r.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these studies (each once, in the order given)")
    r.add_argument("--check", action="store_true",
                   help="exit 1 if any claim of this run fails or has not enough seeds, a "
                   "study is broken, or there are no claims")
    r.add_argument("--out", default=".", help="root for figures/ and results/ (default .)")
    r.add_argument("--no-progress", action="store_true")
    u = sub.add_parser("run", help="run one study", add_help=False,
                       description="Run one study; `gradstudy run NAME --help` lists its "
                                   "--set keys, defaults and allowed values.")
    u.add_argument("-h", "--help", action="store_true", help="show this help (with NAME: "
                   "the study's --set keys) and exit")
    u.add_argument("name", nargs="?", metavar="NAME")
    u.add_argument("--scale", default="smoke", help=f"one of {', '.join(SCALES)}")
    u.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   dest="overrides", help="override parameters of the scale (repeatable; "
                   "each key once); results go to results/custom/SCALE/NAME/KEY=VALUE,...")
    u.add_argument("--out", default=".", help="root for figures/ and results/ (default .)")
    u.add_argument("--no-progress", action="store_true")
    p.run_parser = u
    d = sub.add_parser("diagnose", help="gradient flow per module of your own Flax model",
                       description="Probe a Flax model: FACTORY is 'package.module:function' "
                                   "(or 'file.py:function') returning (module, batch, "
                                   "loss_fn[, options]); prints a table in forward order and "
                                   "writes a figure and a netCDF file. 'examples.models:cnn1d' "
                                   "names gradstudy's example models when no 'examples' "
                                   "package of yours is importable from here.")
    d.add_argument("factory", metavar="FACTORY")
    d.add_argument("--seeds", type=int, default=None,
                   help="initialisations (default 8; 1 for a built NNX module: its weights)")
    d.add_argument("--out", default=".", help="root for figures/ and results/ (default .); "
                   "files go to figures/diagnose/custom/NAME/ and "
                   "results/diagnose/custom/NAME/ (NAME: the factory's function)")
    d.add_argument("--reference", action="store_true",
                   help="write figures/diagnose/NAME/ and results/diagnose/NAME/ instead: "
                   "the reference figures of the documentation, which a run without this "
                   "flag never overwrites")
    return p


def _select(studies: dict, broken: dict, names: list[str] | None) -> list[str]:
    """The studies to run, each once in the order given (all working ones by default)."""
    if not names:
        return list(studies)
    names = list(dict.fromkeys(names))
    for n in names:
        if n in broken and n not in studies:
            raise ConfigError(f"study {n!r} is broken ({broken[n]}): fix "
                              f"{experiments_dir() / (n + '.py')}")
    unknown = [n for n in names if n not in studies]
    if unknown:
        raise ConfigError(f"study: unknown {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(studies)}")
    return names


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ConfigError(f"--scale: unknown value {scale!r}; allowed: {', '.join(SCALES)}")


def _output_root(text: str) -> Path:
    """``--out`` as a directory we can write to (created if missing), else one line."""
    if not text.strip() or "\0" in text:
        raise ConfigError(f"--out: must be a directory path, got {text!r}")
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {text!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # permissions, read-only file systems
            pass
    except OSError as e:
        raise ConfigError(f"--out: cannot write to {text!r} "
                          f"({e.strerror or type(e).__name__})") from None
    return out


_MARKS = {PASS: "PASS", FAIL: "FAIL", NOT_ENOUGH_SEEDS: "NOT ENOUGH SEEDS"}


def _number(x) -> str:
    return f"{x:.6g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def _steps_text(steps: list[int]) -> str:
    """The steps of the first non-finite loss, briefly: all of them when few."""
    if len(steps) <= 8:
        return "at step" + ("s " if len(steps) > 1 else " ") + ", ".join(map(str, steps))
    return f"at steps {steps[0]}–{steps[-1]} (median {steps[len(steps) // 2]})"


def _print_divergence(summary: dict) -> bool:
    """One line per training with diverged runs; whether there was any."""
    detail = summary.get("divergence") or {}
    counts = summary.get("diverged_runs") or {}
    for tag in dict.fromkeys([*counts, *detail]):
        d = detail.get(tag)
        if not isinstance(d, dict):  # a summary written before the details were recorded
            print(f"  diverged: {tag}: {counts[tag]} runs (loss not finite)")
            continue
        points = d.get("by_point") or {}
        by_point = (" (" + ", ".join(f"{k} {n}" for k, n in points.items()) + ")"
                    if points else "")
        print(f"  diverged: {tag}: {d['diverged']} of {d['runs']} runs{by_point}, "
              f"{_steps_text(list(d.get('steps', [])))} (first non-finite loss)")
    return bool(counts or detail)


def _print_claims(summary: dict) -> dict[str, int]:
    """Print the diverged trainings, each claim with its verdict, and notes on non-finite
    values; return the number of claims by verdict."""
    diverged = _print_divergence(summary)
    tally = dict.fromkeys(VERDICTS, 0)
    for c in summary["claims"]:
        verdict = claim_verdict(c)
        tally[verdict] += 1
        line = f"  [{_MARKS[verdict]}] {c['id']}: measured {_number(c['measured'])}"
        if verdict == NOT_ENOUGH_SEEDS:
            line += (f", expected {_number(c['expected'])} (no error bar: fewer than "
                     f"{MIN_SEEDS} seeds with finite values, or too few finite bootstrap "
                     "resamples)")
        else:
            line += f", expected {comparison(c)}"
            if diverged and str(c["measured"]) == "nan":
                line += "  (NaN: runs of this study diverged, see above)"
        print(line)
    nonfinite = summary.get("nonfinite") or {}
    if nonfinite:
        counts = ", ".join(f"{n} {key}" for key, n in sorted(nonfinite.items()))
        print(f"  note: values that are not normal numbers (recorded, marked in the figures, "
              f"left out of statistics): {counts}")
        failed = tally[FAIL] > 0
        params = summary.get("params", {})
        if failed and any("underflow" in k for k in nonfinite) \
                and params.get("dtype") == "float32":
            print("  note: float32 gradients underflowed to 0, and claims built on them fail; "
                  "rerun with --set dtype=float64 to tell underflow from a real failure")
        elif failed and any(("overflow" in k or "forward_nonfinite" in k) for k in nonfinite):
            print("  note: some claims fail on overflowed (inf/NaN) values")
    return tally


def _tally_text(tally: dict[str, int]) -> str:
    """"3/4 claims pass, 1 fail" (+ ", 2 not enough seeds" when there are such claims)."""
    n = sum(tally.values())
    rest = "".join(f", {tally[v]} {v}" for v in (FAIL, NOT_ENOUGH_SEEDS)
                   if tally[v] or v == FAIL)
    return f"{tally[PASS]}/{n} claims pass{rest}"


def _format_default(value, max_items: int = 6) -> str:
    if isinstance(value, (list, tuple)):
        items = [_format_default(v) for v in value]
        if len(items) > max_items:  # long grids: ends and count
            return f"{','.join(items[:2])},...,{items[-1]} ({len(items)} values)"
        return ",".join(items)
    return f"{value:g}" if isinstance(value, float) else str(value)


def study_help(module) -> str:
    """The ``--set`` keys of a study: allowed values, and the default at each scale."""
    scales = module.SCALES
    limits = study_limits(module)
    keys = list(dict.fromkeys(k for p in scales.values() for k in p))
    width = max([len(k) for k in keys] + [3])
    lines = [f"{module.NAME}: {getattr(module, 'DESCRIPTION', '')}", "",
             "--set KEY=VALUE keys (allowed values; default at each scale):"]
    for key in keys:
        template = next(p[key] for p in scales.values() if key in p)
        lines.append(f"  {key:{width}}  {limits[key].describe(template)}")
        defaults = "   ".join(f"{s}: {_format_default(p[key])}" for s, p in scales.items()
                               if key in p)
        lines.append(f"  {'':{width}}  {defaults}")
    if keys:
        params = next(iter(scales.values()))
        scalars = [k for k in keys if not isinstance(params.get(k), (list, tuple))]
        first = (scalars or keys)[0]
        value = _format_default(params.get(first, ""), max_items=99)
        lines += ["", f"example: gradstudy run {module.NAME} --set {first}={value}  "
                  "(lists comma-separated, each key once)"]
    return "\n".join(lines)


def _run_help(parser, args) -> int:
    parser.run_parser.print_help()
    studies, broken = discover_all()
    if args.name is None:
        print("\nstudies: " + ", ".join(studies))
        return 0
    name = _select(studies, broken, [args.name])[0]
    print()
    print(study_help(studies[name]))
    return 0


def _run(studies, broken, args) -> int:
    if args.name is None:
        raise ConfigError(f"run: a study name is required; allowed: {', '.join(studies)}")
    name = _select(studies, broken, [args.name])[0]
    module = studies[name]
    if args.scale not in module.SCALES:
        raise ConfigError(f"--scale: study {name!r} has no {args.scale!r} scale; "
                          f"allowed: {', '.join(module.SCALES)}")
    overrides = parse_overrides(args.overrides, module.SCALES[args.scale],
                                getattr(module, "LIMITS", None))
    study_params(module, args.scale, overrides)  # LIMITS and validate(), before any work
    out = _output_root(args.out)
    try:
        summary = run_study(module, args.scale, out, overrides, not args.no_progress)
    except Exception as e:  # noqa: BLE001
        if not overrides:
            raise  # without --set this is a bug in the study or the library: keep the traceback
        # the values passed every check we have, yet the study cannot use them: name the keys
        given = " ".join(f"{k}={_format_default(v)}" for k, v in overrides.items())
        # a ConfigError (e.g. the memory estimate) is already one line meant for the user:
        # whole; anything else is cut to its first 160 characters
        detail = " ".join(str(e).split())
        detail = detail if isinstance(e, ConfigError) else detail[:160]
        raise ConfigError(f"--set {', '.join(overrides)}: {name} cannot run with {given} "
                          f"({type(e).__name__}: {detail})") from None
    print(f"{name}: {summary['runtime_s']:.1f} s")
    if summary["figures"]:
        print(f"  figures: {Path(out) / Path(summary['figures'][0]).parent}")
    tally = _print_claims(summary)
    print(f"{name}: {_tally_text(tally)}")
    return 0


def _reproduce(studies, broken, args) -> int:

    names = _select(studies, broken, args.only)
    if not names:
        raise ConfigError(f"GRADSTUDY_EXPERIMENTS: no working study in {experiments_dir()}"
                          + (f" (broken: {', '.join(broken)})" if broken else ""))
    out = _output_root(args.out)
    skipped = [] if args.only else sorted(broken)
    for stem in skipped:
        print(f"gradstudy: warning: skipping broken study {stem}: {broken[stem]}",
              file=sys.stderr)
    t0 = time.perf_counter()
    # a run of every study is recorded (wall time, peak memory, cache use) for the paper;
    # one of some studies (--only) or with a broken one skipped is not the whole run
    results_root = output_dirs(out, args.scale, "x")[0].parent
    whole = not args.only and not skipped
    files_before = result_files(results_root, names) if whole else {}
    tally = dict.fromkeys(VERDICTS, 0)
    unresolved = {FAIL: [], NOT_ENOUGH_SEEDS: []}  # study/claim of this run, by verdict
    for name in names:
        summary = run_study(studies[name], args.scale, out, progress=not args.no_progress)
        release_programs()  # peak memory is the largest study's, not the sum of all
        print(f"{name}: {summary['runtime_s']:.1f} s")
        for verdict, k in _print_claims(summary).items():
            tally[verdict] += k
        for c in summary["claims"]:
            unresolved.get(claim_verdict(c), []).append(f"{name}/{c['id']}")
    # the tables gather every study's latest summary at this scale (also of studies not run
    # now); what is printed and checked is this run's claims only
    summaries = load_summaries(out, args.scale, list(studies))
    figures_root = output_dirs(out, args.scale, "x")[1].parent
    n = sum(tally.values())
    if whole:
        write_run_record(run_record(args.scale, len(names), n, time.perf_counter() - t0,
                                    files_before, result_files(results_root, names)),
                         results_root)
    # the numbers file keeps those of the last whole run also after a partial one
    tables = write_tables(summaries, figures_root, read_run_record(results_root))
    print(f"reproduce ({args.scale}): {_tally_text(tally)} in the {len(names)} "
          f"stud{'y' if len(names) == 1 else 'ies'} run now; wall time "
          f"{time.perf_counter() - t0:.1f} s")
    earlier = sorted({s["study"] for s in summaries} - set(names))
    tabled = [claim_verdict(c) for s in summaries for c in s["claims"]]
    print(f"  table: {tables[0]} ({len(tabled)} claims of {len(summaries)} studies, "
          f"{tabled.count(PASS)} pass"
          + (f"; {len(earlier)} not run now, from their earlier summaries: "
             f"{', '.join(earlier)})" if earlier else ")"))
    if unresolved[FAIL]:
        print("failing claims: " + ", ".join(unresolved[FAIL]))
    if unresolved[NOT_ENOUGH_SEEDS]:
        print(f"claims without an error bar (not enough seeds, at least {MIN_SEEDS} needed): "
              + ", ".join(unresolved[NOT_ENOUGH_SEEDS]))
    if skipped:
        print("broken studies (not run): " + ", ".join(skipped))
    if n == 0:
        print("no claims were produced: nothing to check")
    cache = enable_compilation_cache()  # the directory set above (None: off)
    print(f"  compilation cache: {cache} ({cache_size(cache) / 2**20:.0f} MiB)" if cache
          else "  compilation cache: off")
    not_passed = unresolved[FAIL] or unresolved[NOT_ENOUGH_SEEDS]
    return 1 if (args.check and (not_passed or skipped or n == 0)) else 0


def _diagnose(args) -> int:
    """``gradstudy diagnose``: each failing step (importing or calling the factory,
    initialising or calling the model, the loss, running, writing) is one line."""
    factory = tools.load_factory(args.factory)
    module, batch, loss_fn, options = tools.call_factory(factory)
    seeds = options.pop("seeds", None) if args.seeds is None else args.seeds
    options.pop("seeds", None)  # --seeds wins over the factory's option
    name = args.factory.split(":")[-1]
    # a user's run never writes over the reference figures (as `run --set`, which goes to
    # custom/): those are rewritten only with --reference
    sub = Path("diagnose") / name if args.reference else Path("diagnose") / "custom" / name
    out = _output_root(args.out)
    results, figures = out / "results" / sub, out / "figures" / sub
    for folder in (results, figures):  # before the measurement, which may take minutes
        _no_file_in_the_way(folder)
    try:
        ds = tools.diagnose(module, batch, loss_fn, seeds=seeds, **options)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 -- the user's model or loss: one line
        raise ConfigError(f"diagnose: {args.factory}: running the measurement failed: "
                          f"{type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    ds.attrs["factory"] = args.factory
    try:
        results.mkdir(parents=True, exist_ok=True)
        figures.mkdir(parents=True, exist_ok=True)
        write_atomic(ds, results / "diagnose.nc")
        tools.plot_diagnosis(ds, figures / f"{name}.png")
    except OSError as e:
        raise ConfigError(f"--out: cannot write the results under {str(out)!r} "
                          f"({e.strerror or type(e).__name__}: {e.filename})") from None
    print(tools.diagnosis_table(ds))
    print(f"figure: {figures / (name + '.png')}\ndata: {results / 'diagnose.nc'}")
    return 0


def _no_file_in_the_way(folder: Path) -> None:
    """``folder`` or a parent of it that is a file is one line naming it (nothing is
    created here: a run that fails leaves no empty folders)."""
    for parent in [*reversed(folder.parents), folder]:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"--out: {str(parent)!r} is a file, where gradstudy diagnose "
                              f"writes the folder {str(folder)!r}; move it or choose "
                              f"another --out")


def main(argv: list[str] | None = None) -> int:
    """The ``gradstudy`` command; returns its exit status.

    A reader that closes the pipe early (``gradstudy list | head -3``) ends the command
    quietly with status 1, as Python's documentation recommends for SIGPIPE: the rest of the
    output goes to the null device instead of a ``BrokenPipeError`` traceback.
    """
    try:
        status = _main(argv)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return status
    except BrokenPipeError:
        try:  # Python flushes stdout again at exit: let that write go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # stdout without a file descriptor (captured in tests): nothing to redirect
        return 1


def _main(argv: list[str] | None) -> int:
    default_xla_flags()  # before anything starts JAX's backend (XLA reads XLA_FLAGS then)
    matplotlib.use("Agg")  # the command draws into files, whatever the display
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run" and args.help:
            return _run_help(parser, args)
        if args.command in ("run", "reproduce", "diagnose"):
            # JAX's persistent compilation cache, before anything compiles (a study file or
            # the user's model may compile at import): a second run loads what the first
            # compiled (gradstudy._compilation_cache: where, how big, how to turn it off)
            enable_compilation_cache()
        if args.command == "diagnose":
            return _diagnose(args)
        studies, broken = discover_all()
        if args.command == "list":
            for name, mod in studies.items():
                print(f"{name:24s} {getattr(mod, 'DESCRIPTION', '')}")
            for stem, reason in broken.items():
                print(f"{stem:24s} BROKEN: {reason}")
            return 0
        _check_scale(args.scale)
        if args.command == "run":
            return _run(studies, broken, args)
        return _reproduce(studies, broken, args)
    except ConfigError as e:
        print(f"gradstudy: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
