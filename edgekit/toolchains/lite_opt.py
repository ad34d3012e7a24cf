"""Runs inside the Paddle Lite toolchain interpreter (CPython 3.8-3.10), never in edgekit's.

edgekit starts it as a script (`python lite_opt.py probe|opt ...`) because the
paddlelite wheel exists only for old Pythons. Keep it standard-library only and
free of edgekit imports. Models themselves run through the device agent
(`edgekit/agent.py infer|serve`), as on any device.
"""

import argparse
import json
import platform
import sys


def probe(_args):
    import paddlelite.lite as lite

    try:
        from importlib.metadata import version
        dist_version = version("paddlelite")
    except Exception:  # a paddlelite copied in without its dist-info
        dist_version = ""
    print(json.dumps({
        "python": sys.executable,
        "python_version": platform.python_version(),
        "paddlelite": dist_version,
        "opt_version": lite.Opt().version(),
    }))


def opt(args):
    import paddlelite.lite as lite

    optimizer = lite.Opt()
    optimizer.set_model_file(args.model_file)
    optimizer.set_param_file(args.params_file)
    optimizer.set_valid_places(args.valid_places)
    optimizer.set_model_type("naive_buffer")
    optimizer.set_optimize_out(args.out_prefix)
    if args.fp16:
        optimizer.enable_fp16()
    if args.weight_quant:
        optimizer.set_quant_model(True)
        optimizer.set_quant_type(args.weight_quant)
    # Opt aborts the process on a fatal error; the parent reads stderr.
    optimizer.run()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lite_opt")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("probe").set_defaults(func=probe)

    opt_parser = commands.add_parser("opt")
    opt_parser.add_argument("--model-file", required=True)
    opt_parser.add_argument("--params-file", required=True)
    opt_parser.add_argument("--out-prefix", required=True)
    opt_parser.add_argument("--valid-places", default="arm")
    opt_parser.add_argument("--fp16", action="store_true")
    opt_parser.add_argument("--weight-quant", choices=["QUANT_INT8", "QUANT_INT16"])
    opt_parser.set_defaults(func=opt)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
