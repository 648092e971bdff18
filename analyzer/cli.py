"""``canaryd`` — the command line: serve | demo | judge | validate | schema.

Exit codes: 0 success, 1 a failure while running, 2 bad input (the message names the field).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from analyzer.errors import InvalidInput
from analyzer.judgeconfig import JudgeConfig, config_hash, load_config
from analyzer.kayenta import judge_request, parse_request, render_result

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _read_json(path: str) -> Any:
    source = "standard input" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(source, f"cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(source, f"not valid JSON: {exc}") from None


def _cmd_judge(args: argparse.Namespace) -> int:
    request = parse_request(_read_json(args.file))
    sys.stdout.write(render_result(judge_request(request)))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    for path in args.configs:
        config = load_config(Path(path))
        metrics = ", ".join(f"{m.name} ({m.judge})" for m in config.metrics)
        print(f"{path}: ok — {config.name} v{config_hash(config)[:12]}: {metrics}")
    return EXIT_OK


def _cmd_serve(_args: argparse.Namespace) -> int:
    from analyzer.daemon import Daemon  # noqa: PLC0415 — the daemon's imports are not needed by judge/validate
    from analyzer.logs import configure_logging  # noqa: PLC0415
    from analyzer.settings import load_settings  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_level)
    return asyncio.run(Daemon(settings).serve())


def _cmd_demo(args: argparse.Namespace) -> int:
    from analyzer.demo import run_demo  # noqa: PLC0415 — only the demo needs the simulators

    return asyncio.run(run_demo(keep=args.keep, timeout_s=args.timeout))


def _cmd_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(JudgeConfig.model_json_schema(by_alias=True), indent=2))
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="canaryd", description="Automated canary analysis.")
    sub = parser.add_subparsers(dest="command", required=True)
    judge = sub.add_parser("judge", help="judge a Kayenta remote-judge request (JSON)")
    judge.add_argument("file", help="request file, or - for standard input")
    judge.set_defaults(run=_cmd_judge)
    validate = sub.add_parser("validate", help="check judge config files (YAML or JSON)")
    validate.add_argument("configs", nargs="+", metavar="CONFIG")
    validate.set_defaults(run=_cmd_validate)
    serve = sub.add_parser("serve", help="run the daemon (settings from CANARYD_* variables)")
    serve.set_defaults(run=_cmd_serve)
    demo = sub.add_parser("demo", help="run the daemon against simulated services, no setup")
    demo.add_argument("--keep", action="store_true", help="stay up afterwards for a look")
    demo.add_argument("--timeout", type=float, default=180.0, help="give up after SECONDS")
    demo.set_defaults(run=_cmd_demo)
    schema = sub.add_parser("schema", help="print the judge config's JSON Schema")
    schema.set_defaults(run=_cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except InvalidInput as exc:
        print(f"canaryd {args.command}: invalid input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
