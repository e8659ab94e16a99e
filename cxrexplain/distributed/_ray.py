"""Ray itself (private): the lazy import, a quiet session, and an actor's CPU share.

Ray is an optional dependency (the ``ray`` extra): nothing here imports it at module import
time, so ``import cxrexplain.distributed`` works without it; :func:`require_ray` imports it when
it is needed and says how to install it when it is missing.

A session started here is quiet by default: no dashboard, the workers' output stays in Ray's log
files (``/tmp/ray/session_*/logs``) instead of the terminal, Ray's and Ray Data's Python loggers
say only errors, and the C++ core's log level is ``fatal`` (``RAY_BACKEND_LOG_LEVEL``, unless the
user set it), which Ray announces with one line on the file descriptor 2, silenced here.

Example:
    >>> from cxrexplain.distributed._ray import assigned_cpus
    >>> assigned_cpus() is None  # not inside a Ray worker
    True
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

from cxrexplain._checks import first_line
from cxrexplain._quiet import stderr_silenced
from cxrexplain.errors import InvalidInputError, MissingDependencyError

__all__ = [
    "INSTALL",
    "assigned_cpus",
    "check_reachable",
    "quiet_data_context",
    "ray_session",
    "require_ray",
]

INSTALL = 'pip install "cxrexplain[ray]"'
"""The command that installs Ray Data for cxrexplain."""

_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune")


def require_ray() -> Any:
    """Import and return the ``ray`` module with ``ray.data`` loaded.

    Raises:
        MissingDependencyError: Ray (or Ray Data) is not installed; the message gives the pip
            command.
    """
    try:  # by name: a type checker need not analyse Ray, which may be absent
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError as err:
        raise MissingDependencyError(
            f"ray: Ray Data is needed to explain data sets on Ray ({first_line(err)}); "
            f"install it with: {INSTALL}"
        ) from err
    return ray


def assigned_cpus() -> int | None:
    """The whole CPUs Ray gave the calling actor or task (at least 1), or None outside Ray.

    Never imports Ray: inside a Ray worker it is already imported.
    """
    ray = sys.modules.get("ray")
    if ray is None:
        return None
    try:
        if not ray.is_initialized():
            return None
        context = ray.get_runtime_context()
        if context.worker.mode != ray.WORKER_MODE:
            return None
        cpus = float(context.get_assigned_resources().get("CPU", 0.0))
    except Exception:  # an old or unusual Ray: leave TensorFlow's default
        return None
    return max(1, int(cpus)) if cpus > 0 else None


@contextlib.contextmanager
def _quiet_loggers(quiet: bool) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    if quiet:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_reachable(address: str, *, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at a ``host:port`` (or ``ray://host:port``) address;
    Ray itself would retry for minutes. ``"auto"`` and ``"local"`` are left to Ray.

    Raises:
        InvalidInputError: Not a string, or no answer at the address.
    """
    if not isinstance(address, str) or not address.strip():
        raise InvalidInputError(f"address: expected a Ray address such as 'auto' or "
                                f"'host:6379', got {address!r}")
    text = address.strip()
    if text in ("auto", "local"):
        return
    host_port = text.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        return  # a form Ray knows and this check does not: Ray says what is wrong
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise InvalidInputError(
            f"address: nothing answers at {address!r} ({first_line(err)}); start the cluster "
            "with `ray start --head` or give its address ('auto' on one of its machines)"
        ) from err


@contextlib.contextmanager
def ray_session(address: str | None, *, quiet: bool = True) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a cluster: the running one, ``address``, or a
    new local one (shut down at the end; one that was running is left running).

    Args:
        address: A Ray address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``), or None
            for a local Ray on this machine (or the cluster named by ``RAY_ADDRESS``).
        quiet: Keep Ray's log lines and the workers' output off the terminal.

    Raises:
        MissingDependencyError: Ray is not installed.
        InvalidInputError: Ray cannot start or connect to ``address``.
    """
    ray = require_ray()
    with _quiet_loggers(quiet):
        if ray.is_initialized():
            yield ray
            return
        if address is not None:
            check_reachable(address)
        saved = os.environ.get("RAY_BACKEND_LOG_LEVEL")
        if quiet and saved is None:
            os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
        try:
            with stderr_silenced() if quiet else contextlib.nullcontext():
                ray.init(address=address, include_dashboard=False, log_to_driver=not quiet,
                         configure_logging=True,
                         logging_level=logging.ERROR if quiet else logging.INFO)
        except Exception as err:
            where = f"at {address!r}" if address else "on this machine"
            raise InvalidInputError(
                f"address: cannot start or reach Ray {where} ({type(err).__name__}: "
                f"{first_line(err)})"
            ) from err
        finally:
            if quiet and saved is None:
                os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)
        try:
            yield ray
        finally:
            with stderr_silenced() if quiet else contextlib.nullcontext():
                ray.shutdown()


@contextlib.contextmanager
def quiet_data_context(ray: Any, *, progress: bool) -> Iterator[Any]:
    """Yield Ray Data's current ``DataContext`` with its progress bars on only when
    ``progress`` (and the terminal is interactive) and its automatic statistics log off;
    the settings are put back afterwards."""
    context = ray.data.DataContext.get_current()
    wanted = {
        "enable_progress_bars": bool(progress and sys.stderr.isatty()),
        "enable_operator_progress_bars": False,
        "enable_auto_log_stats": False,
        "verbose_stats_logs": False,
    }
    saved = {name: getattr(context, name) for name in wanted if hasattr(context, name)}
    for name in saved:
        setattr(context, name, wanted[name])
    try:
        yield context
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
