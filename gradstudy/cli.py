"""``gradstudy list | reproduce | run``: the one command behind every figure.

Bad input prints one line naming the field and the allowed values and exits with 2,
without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gradstudy.config import ConfigError
from gradstudy.study import SCALES, discover, load_summaries, parse_overrides, run_study


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        print(f"gradstudy: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gradstudy", description="Measured vanishing and exploding gradients.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the studies")
    r = sub.add_parser("reproduce", help="run studies, write figures, results and claims table")
    r.add_argument("--scale", default="paper", help=f"one of {', '.join(SCALES)}")
    r.add_argument("--only", nargs="+", metavar="NAME", help="run only these studies")
    r.add_argument("--check", action="store_true", help="exit 1 if any claim fails")
    r.add_argument("--out", default=".", help="root for figures/ and results/ (default .)")
    r.add_argument("--no-progress", action="store_true")
    u = sub.add_parser("run", help="run one study")
    u.add_argument("name")
    u.add_argument("--scale", default="smoke", help=f"one of {', '.join(SCALES)}")
    u.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a parameter of the scale")
    u.add_argument("--out", default=".")
    u.add_argument("--no-progress", action="store_true")
    return p


def _select(studies: dict, names: list[str] | None) -> list[str]:
    if not names:
        return list(studies)
    unknown = [n for n in names if n not in studies]
    if unknown:
        raise ConfigError(f"study: unknown {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(studies)}")
    return names


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ConfigError(f"--scale: unknown value {scale!r}; allowed: {', '.join(SCALES)}")


def _print_claims(summary: dict) -> None:
    from gradstudy.report import comparison

    for c in summary["claims"]:
        mark = "PASS" if c["pass"] else "FAIL"
        print(f"  [{mark}] {c['id']}: measured {c['measured']:.6g}, expected {comparison(c)}"
              if isinstance(c["measured"], float) else
              f"  [{mark}] {c['id']}: measured {c['measured']}, expected {comparison(c)}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        studies = discover()
        if args.command == "list":
            for name, mod in studies.items():
                print(f"{name:24s} {getattr(mod, 'DESCRIPTION', '')}")
            return 0
        _check_scale(args.scale)
        out = Path(args.out)
        if args.command == "run":
            name = _select(studies, [args.name])[0]
            module = studies[name]
            if args.scale not in module.SCALES:
                raise ConfigError(f"--scale: study {name!r} has no {args.scale!r} scale; "
                                  f"allowed: {', '.join(module.SCALES)}")
            overrides = parse_overrides(args.overrides, module.SCALES[args.scale])
            try:
                summary = run_study(module, args.scale, out, overrides, not args.no_progress)
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError) as e:
                if not overrides or isinstance(e, ConfigError):
                    raise  # without --set this is a bug: keep the traceback
                raise ConfigError(f"--set {' '.join(args.overrides)}: the study cannot run with "
                                  f"these values ({type(e).__name__}: {e})") from None
            print(f"{name}: {summary['runtime_s']:.1f} s")
            if summary["figures"]:
                print(f"  figures: {Path(out) / Path(summary['figures'][0]).parent}")
            _print_claims(summary)
            return 0
        # reproduce
        from gradstudy.report import write_tables
        from gradstudy.study import output_dirs

        names = _select(studies, args.only)
        t0 = time.perf_counter()
        for name in names:
            summary = run_study(studies[name], args.scale, out, progress=not args.no_progress)
            print(f"{name}: {summary['runtime_s']:.1f} s")
            _print_claims(summary)
        summaries = load_summaries(out, args.scale, list(studies))
        figures_root = output_dirs(out, args.scale, "x")[1].parent
        tables = write_tables(summaries, figures_root)
        n = sum(len(s["claims"]) for s in summaries)
        failed = [f"{s['study']}/{c['id']}" for s in summaries for c in s["claims"]
                  if not c["pass"]]
        print(f"reproduce ({args.scale}): {n - len(failed)}/{n} claims pass; "
              f"wall time {time.perf_counter() - t0:.1f} s; table: {tables[0]}")
        if failed:
            print("failing claims: " + ", ".join(failed))
        return 1 if (args.check and failed) else 0
    except ConfigError as e:
        print(f"gradstudy: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
