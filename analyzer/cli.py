"""``canaryd`` — the command line: serve | demo | judge | validate | schema | backtest | capture.

Exit codes: 0 success, 1 a failure while running, 2 bad input (the message names the field).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from analyzer.configs.durations import parse_duration
from analyzer.configs.judgeconfig import (
    JudgeConfig,
    config_hash,
    load_config,
    validation_message,
)
from analyzer.configs.overlap import overlap_warnings
from analyzer.errors import InvalidInput, SourceError
from analyzer.model import Stage
from analyzer.offline.backtest import backtest, check_step, format_summary, format_table, summarize
from analyzer.offline.recording import Recording, load_recording, write_recording
from analyzer.offline.remote_judge import judge_request, parse_request, render_result

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
        for warning in overlap_warnings(config):
            print(f"canaryd validate: warning: {path}: {warning}", file=sys.stderr)
    return EXIT_OK


def _cmd_serve(_args: argparse.Namespace) -> int:
    from analyzer.daemon import Daemon  # noqa: PLC0415 — the daemon's imports are not needed by judge/validate
    from analyzer.logs import configure_logging  # noqa: PLC0415
    from analyzer.settings import load_settings  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_level)
    return asyncio.run(Daemon(settings).serve())


def _cmd_demo(args: argparse.Namespace) -> int:
    from analyzer.demo.run import run_demo  # noqa: PLC0415 — only the demo needs the simulators

    return asyncio.run(run_demo(keep=args.keep, timeout_s=args.timeout))


def _cmd_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(JudgeConfig.model_json_schema(by_alias=True), indent=2))
    return EXIT_OK


def _stages(text: str | None) -> list[Stage] | None:
    """``--stages``: a JSON list of stages as at registration, validated the same way."""
    if text is None:
        return None
    from pydantic import TypeAdapter, ValidationError  # noqa: PLC0415 — only --stages needs them

    from analyzer.api.schemas import StageIn  # noqa: PLC0415

    try:
        specs = TypeAdapter(list[StageIn]).validate_json(text)
    except ValidationError as exc:
        raise InvalidInput("--stages", validation_message(exc)) from None
    if not specs:
        raise InvalidInput("--stages", "give at least one stage")
    return [
        Stage(weight=s.weight, duration_s=s.duration, min_duration_s=s.min_duration) for s in specs
    ]


class _Progress:
    """A progress bar on stderr, redrawn in place: ``[#####-----]  12/40  name``."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream

    def show(self, done: int, name: str) -> None:
        filled = self.WIDTH * done // self.total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done:>{len(str(self.total))}}/{self.total}  {name[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _load_recordings(paths: Sequence[str], config: JudgeConfig) -> list[Recording]:
    """Every recording, checked before any is replayed; missing metrics are warned about."""
    recordings = [load_recording(Path(path)) for path in paths]
    for recording in recordings:
        check_step(config, recording)
        missing = [m.name for m in config.metrics if m.name not in recording.metrics]
        if missing:
            print(
                f"canaryd backtest: warning: {recording.source} has no {', '.join(missing)}; "
                "judged as no data",
                file=sys.stderr,
            )
    return recordings


def _cmd_backtest(args: argparse.Namespace) -> int:
    config = load_config(Path(args.config))
    stages = _stages(args.stages)
    recordings = _load_recordings(args.recordings, config)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = _Progress(len(recordings), sys.stderr) if show and len(recordings) > 20 else None
    outcomes = []
    for i, recording in enumerate(recordings):
        if progress is not None:
            progress.show(i, recording.name)
        outcomes.append(backtest(config, recording, stages=stages))
    if progress is not None:
        progress.show(len(recordings), "")
        progress.close()
    summary = summarize(outcomes)
    if args.json:
        for outcome in outcomes:
            print(json.dumps(outcome.record()))
        if summary is not None:
            print(json.dumps({"summary": summary.record()}))
    else:
        print(format_table(outcomes))
        if summary is not None:
            print(f"\n{format_summary(summary)}")
    return EXIT_OK


def _pair(item: str, flag: str) -> tuple[str, str]:
    """``name=value``; anything else is refused naming ``flag``."""
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
        raise InvalidInput(flag, f"expected name=value, got {item!r}")
    return key.strip(), value


def _pairs(text: str, flag: str) -> dict[str, str]:
    """``k=v[,k=v]`` as a dict, each name once."""
    out: dict[str, str] = {}
    for key, value in (_pair(item, flag) for item in text.split(",")):
        if key in out:
            raise InvalidInput(flag, f"{key!r} is given twice")
        out[key] = value
    return out


def _when(text: str, flag: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(flag, f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        raise InvalidInput(flag, f"{text!r} has no time zone; add one, e.g. Z or +01:00")
    return when


_CAPTURE_FLAGS = {
    "prometheus_url": "--prometheus",
    "baseline": "--baseline",
    "canary": "--canary",
    "start": "--start",
    "end": "--end",
    "step_s": "--step",
    "variables": "--var",
}


def _cmd_capture(args: argparse.Namespace) -> int:
    from analyzer.offline.capture import capture  # noqa: PLC0415 — only capture needs the client

    config = load_config(Path(args.config))
    try:
        step_s = None if args.step is None else parse_duration(args.step)
    except ValueError as exc:
        raise InvalidInput("--step", str(exc)) from None
    if step_s is not None and step_s <= 0:
        raise InvalidInput("--step", "must be longer than 0s")
    variables = dict(_pair(item, "--var") for item in args.var)
    output = Path(args.output)
    try:
        captured = capture(
            config,
            prometheus_url=args.prometheus,
            baseline=_pairs(args.baseline, "--baseline"),
            canary=_pairs(args.canary, "--canary"),
            start=_when(args.start, "--start"),
            end=_when(args.end, "--end"),
            step_s=step_s,
            variables=variables,
            name=args.name or output.stem,
        )
    except InvalidInput as exc:
        head, _, rest = exc.field.partition(".")
        flag = _CAPTURE_FLAGS.get(head)
        if flag is None:
            raise
        raise InvalidInput(f"{flag}{'.' + rest if rest else ''}", exc.message) from None
    except SourceError as exc:
        print(f"canaryd capture: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for note in captured.notes:
        print(f"canaryd capture: warning: {note}", file=sys.stderr)
    rec = captured.recording
    try:
        write_recording(rec, output)
    except OSError as exc:
        raise InvalidInput("-o", f"cannot write {output}: {exc.strerror}") from None
    print(f"{output}: {rec.name}, {rec.steps} steps of {rec.step_s:g}s, {len(rec.metrics)} metrics")
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
    _add_backtest(sub)
    _add_capture(sub)
    return parser


def _add_backtest(sub: Any) -> None:
    cmd = sub.add_parser(
        "backtest",
        help="replay recordings through a judge config's lifecycle",
        description="Replay each recording through the lifecycle the daemon runs and print "
        "the verdicts; with truth in the recordings, a summary of false rollbacks and power.",
    )
    cmd.add_argument("--config", required=True, metavar="FILE", help="judge config")
    cmd.add_argument(
        "--stages",
        metavar="JSON",
        help='stages as at registration, e.g. \'[{"weight": 5, "duration": "10m"}, '
        '{"weight": 100, "duration": "20m"}]\' (default: one stage spanning the recording)',
    )
    cmd.add_argument("--json", action="store_true", help="one JSON line per recording")
    progress = cmd.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    cmd.add_argument("recordings", nargs="+", metavar="RECORDING")
    cmd.set_defaults(run=_cmd_backtest)


def _add_capture(sub: Any) -> None:
    cmd = sub.add_parser(
        "capture",
        help="record a past window of a config's metrics from Prometheus",
        description="Query Prometheus for every metric of the config, for the baseline's and "
        "the canary's labels, and write a canaryd.recording/v1 file.",
    )
    cmd.add_argument("--config", required=True, metavar="FILE", help="judge config")
    cmd.add_argument("--prometheus", required=True, metavar="URL")
    cmd.add_argument("--baseline", required=True, metavar="k=v[,k=v]")
    cmd.add_argument("--canary", required=True, metavar="k=v[,k=v]")
    cmd.add_argument("--start", required=True, metavar="ISO", help="e.g. 2026-01-01T10:00Z")
    cmd.add_argument("--end", required=True, metavar="ISO")
    cmd.add_argument("--step", metavar="DURATION", help="default: the config's step")
    cmd.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="name=value",
        help="a value for one of the config's variables (repeatable)",
    )
    cmd.add_argument("--name", help="the recording's name (default: OUT's stem)")
    cmd.add_argument("-o", "--output", required=True, metavar="OUT.json")
    cmd.set_defaults(run=_cmd_capture)


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
