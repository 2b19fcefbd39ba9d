"""The one error tree of evalkit.

Every error says *what* went wrong, *where* (file, line, JSON path or field), what was *got*,
and how to *fix* it. The CLI prints the message and exits with the error's ``exit_code``;
nothing else prints tracebacks for expected failures::

    EvalkitError                    base; exit_code 2
    ├── InputError                  bad input the user can fix (exit 2)
    │   ├── ConfigError             a router config (router.json)
    │   ├── SuiteError              a suite folder, suite.yaml or its cases
    │   ├── UsageError              command-line arguments and options
    │   ├── PriceError              a price catalog
    │   ├── RunDirError             a stored run directory
    │   ├── ControlPlaneError       the DigitalOcean control plane refused a request (its id and message)
    │   └── emulator.state.DuplicateName       the local control plane already has a router of that name
    ├── RunError                    the run could not complete (exit 3); also a local router that cannot start
    │   ├── TargetError             the router / model endpoint failed or is unreachable
    │   │   ├── targets.TargetCallError        one failed call to the target (recorded in the case's result)
    │   │   ├── judge.client.JudgeCallError    one judge call that failed after its retries
    │   │   ├── emulator.upstream.UpstreamFailure         an upstream attempt of the local router (fails over)
    │   │   ├── emulator.classifier.LlmClassifierError    the local router's routing model failed
    │   │   └── control_plane.LeftoverRouterError         a temporary router could not be deleted
    │   ├── runner.StoppedEarly     the runner stopped the run early; a resume finishes it
    │   │   ├── runner.ErrorBudgetExceeded   too many cases failed
    │   │   ├── runner.RouterUnreachable     the first connection attempts all failed
    │   │   └── runner.KeyRefused            the first answers were all HTTP 401/403
    │   ├── ModelError              the packaged embedding model is missing, damaged or misconfigured
    │   └── Interrupted             Ctrl-C (exit 130) or SIGTERM (exit 143) stopped a run; what was complete is written
    └── pytest_plugin.EvalkitGateError  a gate test of the pytest plugin failed (exit_code 1)

``Terminated`` (a ``KeyboardInterrupt``) is what the command line raises on SIGTERM, so that a
terminated run stops as an interrupted one does.

The classes named with a module live next to the code that raises them. A failed gate is not an
error: it is a result with exit code 1. Built-in exceptions are raised only for a caller's
misuse of a function (a wrong argument type or shape), never for the user's input.
"""

from __future__ import annotations


class EvalkitError(Exception):
    """Base class: a message built from what / where / got / fix."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, got: str | None = None,
                 fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.got = got
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        head = f"{self.where}: {self.what}" if self.where else self.what
        parts = [head]
        if self.got is not None:
            parts.append(f"  found: {self.got}")
        if self.fix:
            parts.append(f"  fix: {self.fix}")
        return "\n".join(parts)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class InputError(EvalkitError):
    """Bad input that the user can fix."""


class ConfigError(InputError):
    """A router config is malformed or breaks the DigitalOcean schema."""


class SuiteError(InputError):
    """A suite folder, suite.yaml or case file is malformed."""


class UsageError(InputError):
    """Bad command-line arguments or option values."""


class PriceError(InputError):
    """A price catalog is malformed."""


class RunDirError(InputError):
    """A stored run directory is missing, incomplete or from another schema."""


class ControlPlaneError(InputError):
    """The DigitalOcean control plane answered a request with an error.

    Keeps DigitalOcean's error body: ``status`` (HTTP), ``error_id`` (e.g. ``invalid_argument``)
    and ``api_message`` (shown to the user as DigitalOcean wrote it).
    """

    def __init__(self, what: str, *, status: int, error_id: str | None, api_message: str,
                 where: str | None = None, got: str | None = None, fix: str | None = None) -> None:
        self.status = status
        self.error_id = error_id
        self.api_message = api_message
        super().__init__(what, where=where, got=got, fix=fix)


class RunError(EvalkitError):
    """The run could not complete."""

    exit_code = 3


class TargetError(RunError):
    """The router or model endpoint failed or could not be reached."""


class ModelError(RunError):
    """The packaged embedding model (evalkit/data/all-MiniLM-L6-v2) cannot be loaded."""


class Interrupted(RunError):
    """A run was interrupted (Ctrl-C or SIGTERM) after its run directory existed: the results that
    were complete are stored, the summary and reports say the run stopped early; ``--resume`` finishes it."""

    def __init__(self, *, signal_name: str, run_dir: str, n_done: int, n_planned: int) -> None:
        self.signal_name = signal_name
        self.run_dir = run_dir
        self.n_done = n_done
        self.n_planned = n_planned
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
        super().__init__(f"interrupted ({signal_name}): {n_done} of {n_planned} cases have a result", where=run_dir,
                         fix="finish the run with `evalkit run SUITE [the same options] --resume RUN_DIR`")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's ``KeyboardInterrupt`` so that a run stops the same way (exit 143)."""


def short(value: object, limit: int = 80) -> str:
    """A value shortened for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
