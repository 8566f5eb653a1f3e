"""How an error leaves a task: scrubbed of personal data and secrets, retried only if it may mend.

Airflow writes a failed task's exception - its message and its traceback, with every
exception chained to it - to the task log, which operators read and ship elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, cast

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from include.retention.database.identifiers import IDENTIFIER_KINDS
from include.retention.database.identity import normalise
from include.retention.errors import RetentionError, scrub, scrubbed
from include.retention.settings import KEY_ENV_VAR
from include.retention_airflow.forms import PERSONAL_PARAMS
from include.retention_airflow.hooks import key_variable

Task = TypeVar("Task", bound=Callable[..., Any])


def scrubbing(task_function: Task) -> Task:
    """Every exception that leaves the task leaves it scrubbed of personal data and secrets.

    A database error can quote row values (``DETAIL:  Key (email)=(...)``), and a message can
    quote what a user typed. So the exception is replaced: ``AirflowFailException`` by one with
    the scrubbed message (still no retry), anything else by ``ScrubbedError`` (still retried),
    raised outside the ``except`` block so that the original is neither the cause nor the
    context of the new one, and the traceback does not print it. Airflow's own control-flow
    exceptions (skip, defer, reschedule, timeout) pass unchanged: their text is Airflow's."""

    @functools.wraps(task_function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return task_function(*args, **kwargs)
        except AirflowFailException as exc:
            replacement: Exception = AirflowFailException(scrub(str(exc), known_secrets()))
        except AirflowException:
            raise
        except Exception as exc:  # noqa: BLE001 - replaced, not swallowed: raised below
            replacement = scrubbed(exc, known_secrets())
        raise replacement

    return cast(Task, run)  # functools.wraps keeps the signature; mypy cannot see it


@contextlib.contextmanager
def failing_fast(*also: type[Exception]) -> Iterator[None]:
    """A wrong policy, a failed data-quality gate, a batch that did not add up, a bad request
    will not mend itself by retrying: those fail the task at once (no retry), with the
    engine's message. Anything else - a lost connection, a lock timeout - is retried by Airflow."""
    caught: tuple[type[Exception], ...] = (RetentionError, *also)
    try:
        yield
    except caught as exc:
        raise AirflowFailException(str(exc)) from exc


def known_secrets() -> list[str]:
    """The values an error text must not show: the personal fields of the trigger form (as
    typed, and in their canonical form) and the subject key. Best effort: a value that cannot be
    read is skipped (the scrubber still removes e-mail addresses and phone numbers by shape)."""
    params = _form()
    values: list[str] = []
    for name in PERSONAL_PARAMS:
        values.extend(_strings(params.get(name)))
    for kind in IDENTIFIER_KINDS:
        for value in _strings(params.get(kind)):
            with contextlib.suppress(Exception):  # a malformed identifier: the raw form is listed
                values.append(normalise(kind, value))
    values.extend(v for v in (os.environ.get(KEY_ENV_VAR), _key_variable()) if v)
    return values


def _form() -> Mapping[str, Any]:
    """The running task's trigger form; empty outside a task (a test, a script)."""
    try:
        return get_current_context()["params"]
    except Exception:  # noqa: BLE001 - outside a task: no form
        return {}


def _key_variable() -> str | None:
    try:
        return key_variable()
    except Exception:  # noqa: BLE001 - no Variable backend reachable: the environment's key is listed
        return None


def _strings(value: Any) -> list[str]:
    """The text leaves of a form value (a string, or the nested ``changes`` object)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return [] if value is None or isinstance(value, bool) else [str(value)]
