"""`montage generator ...`: train the builtin model on a library, or show what a generator is.

Thin wrappers over generator.train and generator.factory; montage/cli.py adds the parser with
``add_parser(sub)`` and hands the parsed args to ``run(args)``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from generator.errors import GeneratorModelError


def add_parser(sub) -> None:
    """Add the `generator` command group to the main parser's subparsers."""
    from generator.builtin import DEFAULT_WEIGHTS

    g = sub.add_parser("generator", help="train or inspect the shot generator")
    gsub = g.add_subparsers(dest="generator_command", metavar="SUBCOMMAND", required=True)
    p = gsub.add_parser("train", help="train the builtin generator on a footage library")
    p.add_argument("--library", type=Path, required=True, help="folder of videos and stills")
    p.add_argument("--out", type=Path, default=None,
                   help=f"weights file to write (default: LIBRARY/.montage/generator.safetensors; "
                        f"the shipped default is {DEFAULT_WEIGHTS.relative_to(DEFAULT_WEIGHTS.parents[2])})")
    p.add_argument("--minutes", type=float, default=10.0, help="training time (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p = gsub.add_parser("info", help="describe a generator (default: builtin)")
    p.add_argument("spec", nargs="?", default="builtin",
                   help="builtin, builtin:WEIGHTS, diffusers:MODEL (see --generator of make)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.generator_command == "train":
        return _train(args)
    if args.generator_command == "info":
        return _info(args)
    raise AssertionError(args.generator_command)


def _train(args: argparse.Namespace) -> int:
    from generator.train import train
    from retrieval.media import check_root

    root = check_root(args.library)
    out = args.out or root / ".montage" / "generator.safetensors"
    if out.suffix != ".safetensors":
        raise GeneratorModelError(f"--out must end in .safetensors, got {out}")
    _check_writable(out)
    report = train(root, out, minutes=args.minutes, seed=args.seed, progress=not args.quiet)
    print(f"wrote {report.weights} ({report.parameters:,} parameters, {report.steps} steps on "
          f"{report.clips} clips from {report.shots} shots, loss {report.first_loss:.4f} -> "
          f"{report.last_loss:.4f}, {report.seconds:.0f} s); use it with "
          f"--generator builtin:{report.weights}")
    return 0


def _check_writable(out: Path) -> None:
    """Fail before minutes of training, not after, when the weights cannot be written."""
    probe = out.with_name(f".{out.name}.write-test")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise GeneratorModelError(f"cannot write the weights to {out} ({exc.strerror})",
                                  "pass --out PATH in a writable folder") from None


def _info(args: argparse.Namespace) -> int:
    from generator.factory import make_generator

    gen = make_generator(args.spec)
    if gen is None:
        print("generator off: shots without footage stay missing")
        return 0
    info: dict = {"backend": gen.backend, "model": gen.model}
    if gen.backend == "builtin":
        meta = json.loads(gen.meta.get("meta", "{}"))
        info["config"] = json.loads(gen.meta["config"])
        info["trained"] = {k: meta.get(k) for k in ("library", "shots", "clips", "steps", "minutes",
                                                    "train_seconds", "seed")}
        losses = meta.get("losses") or []
        info["trained"]["loss"] = [losses[0], losses[-1]] if losses else None
        info["settings"] = vars(gen.settings)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k}: {v}")
    return 0
