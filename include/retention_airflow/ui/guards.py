"""What every request of the Retention view must satisfy before a page is built.

Every route requires an authenticated Airflow user (set on the app, ``app.py``). Two more
app-wide rules live here: a POST (the lookup names a person) must come from this server's own
pages - its ``Origin`` (else ``Referer``) is this server; with neither, only an explicit
``Authorization: Bearer`` token, which a browser never adds on its own, is accepted - so another
site cannot make a logged-in DPO's browser ask about someone (403). And a bad parameter answers
400 naming it, never a 500 nor FastAPI's 422.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow.configuration import conf
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_RUN_ID = 250  # Airflow's own limit on a run id
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _netloc(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL, the port filled in; None for ``null`` or anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.lower(), port or (443 if parts.scheme.lower() == "https" else 80)


def _own_origins(request: Request) -> set[tuple[str, int]]:
    """This server as the browser reached it (its ``Host``), and as configured (``[api] base_url``).

    A ``Host`` without a port matches either default port: behind a TLS-terminating proxy the
    server sees http while the browser's Origin says https, and both name this host."""
    own: set[tuple[str, int]] = set()
    host = request.headers.get("host", "")
    parsed = _netloc(f"http://{host}") if host else None
    if parsed:
        explicit = ":" in host.rsplit("]", 1)[-1]
        own |= {parsed} if explicit else {(parsed[0], 80), (parsed[0], 443)}
    configured = _netloc(conf.get("api", "base_url", fallback="") or "")
    if configured:
        own.add(configured)
    return own


def same_origin(request: Request) -> None:
    """Refuse a state-changing or person-identifying request that another site's page sent.

    Browsers add ``Origin`` to every POST (``null`` when hidden), and ``Referer`` unless told
    not to; they never add an ``Authorization`` header by themselves. So: the Origin, else
    the Referer, must be this server; with neither, only an explicit bearer token passes."""
    if request.method not in UNSAFE_METHODS:
        return
    for header in ("origin", "referer"):
        claimed = request.headers.get(header)
        if claimed is None:
            continue
        if _netloc(claimed) in _own_origins(request):
            return
        raise HTTPException(
            403,
            f"cross-origin {request.method} refused: the {header.capitalize()} header "
            f"{claimed[:200]!r} is not this server; use the form on this server's own page",
        )
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    raise HTTPException(
        403,
        f"cross-origin {request.method} refused: a request authenticated by the session "
        "cookie must carry an Origin or Referer header naming this server",
    )


async def bad_parameter(request: Request, exc: Exception) -> JSONResponse:
    """400 naming each bad parameter (FastAPI's default is a 422 in its own words). A form
    field's value is not echoed: it may be the identifier of a person."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where, name = (error["loc"][0], error["loc"][-1]) if len(error["loc"]) > 1 else ("", error["loc"][0])
        shown = (
            ""
            if where == "body" or "input" not in error or error["input"] is None
            else f" (got {str(error['input'])[:100]!r})"
        )
        problems.append(f"{name}: {error['msg']}{shown}")
    return JSONResponse({"detail": "bad parameter " + "; ".join(problems)}, status_code=400)


def valid_run_id(run_id: str | None, parameter: str = "run_id") -> None:
    """A run id is printable text of at most 250 characters (Airflow's limit): a NUL byte
    would be a raw DataError on PostgreSQL."""
    if run_id is not None and any(ord(c) < 32 or ord(c) == 127 for c in run_id):
        raise HTTPException(400, f"bad parameter {parameter}: control characters are not allowed in a run id")
