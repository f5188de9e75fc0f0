"""A thin async client for Ray's Job Submission REST API (the dashboard, port 8265).

Only what the Ray backend needs, over an injected ``httpx.AsyncClient`` so tests can put
an ``httpx.MockTransport`` underneath. Shapes as Ray 2.60 really answers (checked against
``ray/dashboard/modules/job/job_head.py`` and a live head):

- ``POST /api/jobs/`` (the trailing slash is required) -> ``{"job_id", "submission_id"}``;
- ``GET /api/jobs/{id}`` -> the job's details, ``status`` one of PENDING, RUNNING,
  SUCCEEDED, FAILED, STOPPED, and ``driver_exit_code`` (negative for a signal);
- ``GET /api/jobs/{id}/logs`` -> ``{"logs": "..."}``, the whole log at once;
- ``POST /api/jobs/{id}/stop`` -> ``{"stopped": bool}``; ``DELETE /api/jobs/{id}`` ->
  ``{"deleted": bool}`` (a 500 while the job is still running);
- errors are ``text/plain``: a Python traceback for 400/500, ``Job X does not exist`` for
  404. A duplicate ``submission_id`` is a 500 whose traceback says "already exists".

Hierarchy::

    RayApiError         the head answered with an error status
    ├── JobExists       the submission_id is taken (an earlier submission got through)
    └── JobNotFound     404: no job with this id (never submitted, deleted, or head restarted)

Transport failures (head down, connection refused) stay ``httpx.TransportError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["TERMINAL", "JobExists", "JobInfo", "JobNotFound", "RayApiError", "RayJobsClient"]

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class RayApiError(Exception):
    """The head answered with an error; ``message`` is the useful line of its body."""

    def __init__(self, status_code: int, body: str):
        self.status_code = status_code
        self.body = body
        self.message = error_line(body)
        super().__init__(f"HTTP {status_code}: {self.message}")


class JobExists(RayApiError):
    """A job with this submission_id already exists."""


class JobNotFound(RayApiError):
    """The head knows no job with this id."""


@dataclass(frozen=True, slots=True)
class JobInfo:
    """What the backend needs of ``GET /api/jobs/{id}``."""

    status: str
    exit_code: int | None  # driver_exit_code: the entrypoint's; negative = killed by a signal
    message: str | None
    entrypoint: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def error_line(body: str) -> str:
    """The line of a text/plain error body that says what went wrong.

    Ray returns whole tracebacks; the last non-blank line is the exception
    (``ValueError: Job with submission_id x already exists. ...``).
    """
    lines = [line.strip() for line in body.strip().splitlines() if line.strip() not in ("", ".")]
    return lines[-1] if lines else "(empty response)"


class RayJobsClient:
    """Calls the Jobs REST API through ``client``, whose ``base_url`` is the dashboard."""

    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.client.request(method, path, json=body)
        if response.status_code == httpx.codes.NOT_FOUND:
            raise JobNotFound(response.status_code, response.text)
        if response.is_error:
            if "already exists" in response.text:
                raise JobExists(response.status_code, response.text)
            raise RayApiError(response.status_code, response.text)
        try:
            return response.json()
        except ValueError:
            raise RayApiError(response.status_code, f"not JSON: {response.text[:200]}") from None

    async def version(self) -> Mapping[str, Any]:
        """``GET /api/version``: cheap proof that a Ray dashboard answers at the address."""
        data = await self._call("GET", "/api/version")
        if not isinstance(data, dict) or "ray_version" not in data:
            raise RayApiError(200, f"not a Ray dashboard: /api/version said {data!r}")
        return data

    async def submit(
        self,
        submission_id: str,
        entrypoint: str,
        *,
        env_vars: Mapping[str, str],
        metadata: Mapping[str, str],
        entrypoint_num_cpus: float,
        entrypoint_num_gpus: float = 0,
        entrypoint_memory: int = 0,
        entrypoint_resources: Mapping[str, float] | None = None,
    ) -> str:
        """Submit one job; its submission id. JobExists if the id is taken.

        GPUs, memory (bytes) and custom resources are sent only when asked for, so a head
        older than a field (``entrypoint_memory`` came with Ray 2.8) still takes the rest.
        """
        request: dict[str, Any] = {
            "submission_id": submission_id,
            "entrypoint": entrypoint,
            # Ray accepts non-string env values and then fails the job: strings only.
            "runtime_env": {"env_vars": {str(k): str(v) for k, v in env_vars.items()}},
            "metadata": {str(k): str(v) for k, v in metadata.items()},
            "entrypoint_num_cpus": entrypoint_num_cpus,
        }
        if entrypoint_num_gpus:
            request["entrypoint_num_gpus"] = entrypoint_num_gpus
        if entrypoint_memory:
            request["entrypoint_memory"] = entrypoint_memory
        if entrypoint_resources:
            request["entrypoint_resources"] = dict(entrypoint_resources)
        data = await self._call("POST", "/api/jobs/", request)
        return str(data.get("submission_id") or submission_id)

    async def info(self, submission_id: str) -> JobInfo:
        """The job's status and exit code."""
        data = await self._call("GET", f"/api/jobs/{submission_id}")
        code = data.get("driver_exit_code")
        return JobInfo(
            status=str(data.get("status")),
            exit_code=code if isinstance(code, int) else None,
            message=data.get("message"),
            entrypoint=data.get("entrypoint"),
        )

    async def logs(self, submission_id: str) -> str:
        """The job's whole log (stdout and stderr together, as Ray keeps them)."""
        data = await self._call("GET", f"/api/jobs/{submission_id}/logs")
        return str(data.get("logs", ""))

    async def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop the job (SIGTERM, then SIGKILL); False if it was not running."""
        data = await self._call("POST", f"/api/jobs/{submission_id}/stop")
        return bool(data.get("stopped"))

    async def delete(self, submission_id: str) -> bool:
        """Forget a terminal job (its info and logs)."""
        data = await self._call("DELETE", f"/api/jobs/{submission_id}")
        return bool(data.get("deleted"))


def dumps_metadata(values: Mapping[str, object]) -> str:
    """A point's typed values as one JSON string (Ray's metadata holds strings only)."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"))
