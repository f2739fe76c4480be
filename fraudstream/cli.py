"""The ``fraudstream`` command: one Typer app that gathers each package's sub-commands.

Each package owns its commands (``infra.cli``, ``producers.cli``, ...); this module only mounts
them and turns expected failures into one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

try:  # Typer >= 0.20 vendors its own copy of Click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older Typer on plain Click
    from click.exceptions import UsageError

from fraudstream.errors import FraudstreamError

app = typer.Typer(
    name="fraudstream",
    help="Real-time card-fraud detection: Kafka + Faust + River.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _mount() -> None:
    from infra.cli import register as register_infra

    register_infra(app)
    for module_name in (
        "producers.cli", "models.cli", "streams.cli", "reliability.chaos", "benchmarks.cli",
    ):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:  # a package without commands yet
            if exc.name != module_name:
                raise
            continue
        module.register(app)


_mount()


def main() -> None:
    """Entry point of the console script."""
    try:
        code = app(standalone_mode=False)
    except UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        print(f"fraudstream: error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("fraudstream: interrupted", file=sys.stderr)
        sys.exit(130)
    except FraudstreamError as exc:
        print(f"fraudstream: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        print(f"fraudstream: error: invalid configuration {where}: {first['msg']}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("fraudstream: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # an unreachable broker is the user's to fix, not a traceback
        if not type(exc).__module__.startswith(("kafka.", "aiokafka.")):
            raise
        message = str(exc).removeprefix(f"{type(exc).__name__}: ")
        print(f"fraudstream: error: Kafka: {type(exc).__name__}: {message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
