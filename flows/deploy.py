"""The deployment side of the flow: prefect.yaml read for `kpref serve`, and the data event.

prefect.yaml is the one home of the schedule, the concurrency limit, the tags and the event
trigger: `prefect deploy` reads it for a work pool, `kpref serve` for this machine alone.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from tasks.core.schema import KprefError

DATA_UPDATED = "kpref.data.updated"


def deployment_specs(prefect_yaml: Path) -> list[dict]:
    """Every deployment prefect.yaml declares."""
    if not prefect_yaml.exists():
        raise KprefError(f"{prefect_yaml}: not found (run from the project root or pass --root)")
    return (yaml.safe_load(prefect_yaml.read_text(encoding="utf-8")) or {}).get("deployments") or []


def deployment_spec(prefect_yaml: Path, name: str) -> dict:
    """The deployment called `name` in prefect.yaml."""
    specs = deployment_specs(prefect_yaml)
    spec = next((d for d in specs if d.get("name") == name), None)
    if spec is None:
        raise KprefError(f"{prefect_yaml}: no deployment {name!r}; it has {[d.get('name') for d in specs]}")
    return spec


def _schedules(spec: dict, where: str) -> list:
    from prefect.schedules import Cron

    out = []
    for s in spec.get("schedules") or []:
        try:
            out.append(Cron(s["cron"], timezone=s.get("timezone")))
        except (KeyError, ValueError) as e:
            raise KprefError(f"{where}: schedule {s!r} is not a valid cron schedule ({e})") from None
    return out


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise KprefError("no Prefect API: set PREFECT_API_URL to your server's API "
                         "(`prefect config set PREFECT_API_URL=http://HOST:4200/api`), or start `prefect server start`")
    return url


def check_deployable(root: Path) -> list[str]:
    """Before `prefect deploy`: the API answers, every deployment's work pool exists there and every
    schedule parses. Returns the deployments' names."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    path = root / "prefect.yaml"
    specs = deployment_specs(path)
    for spec in specs:
        _schedules(spec, f"{path}: deployment {spec['name']!r}")
    url = _api_url()
    with get_client(sync_client=True) as client:
        if (problem := client.api_healthcheck()) is not None:
            raise KprefError(f"Prefect API {url} does not answer ({problem}); is the server running?")
        for spec in specs:
            pool = (spec.get("work_pool") or {}).get("name")
            try:
                client.read_work_pool(pool)
            except ObjectNotFound:
                raise KprefError(f"{path}: deployment {spec['name']!r}: work pool {pool!r} does not exist on {url}; "
                                 f"create it: `prefect work-pool create {pool} --type process`") from None
    return [spec["name"] for spec in specs]


def served_deployment(root: Path, name: str) -> dict:
    """`Flow.serve` options from prefect.yaml's deployment: every schedule checked first."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.events import DeploymentEventTrigger

    spec = deployment_spec(root / "prefect.yaml", name)
    schedules = _schedules(spec, f"{root / 'prefect.yaml'}: deployment {name!r}")
    _api_url()  # a temporary server would forget the schedule when this process ends
    triggers = [DeploymentEventTrigger(**{k: v for k, v in t.items() if k != "type"})
                for t in spec.get("triggers") or []]
    limit = spec.get("concurrency_limit")
    return {
        "schedules": schedules, "triggers": triggers, "tags": spec.get("tags"),
        "global_limit": ConcurrencyLimitConfig(**limit) if limit else None,
        "parameters": {**(spec.get("parameters") or {}), "root": str(root)},
    }


def emit_data_updated(files: list[Path]) -> list[tuple[str, Path]]:
    """Send `kpref.data.updated` for each file (resource `kpref.data.<name>`, its sha256 as payload)."""
    import asyncio

    from prefect.events import Event
    from prefect.events.clients import get_events_client

    url = _api_url()
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise KprefError(f"data-updated: no such file(s) {missing}")
    events = [(Event(event=DATA_UPDATED,
                     resource={"prefect.resource.id": f"kpref.data.{f.stem}", "kpref.path": str(f.resolve())},
                     payload={"sha256": hashlib.sha256(f.read_bytes()).hexdigest()}), f) for f in files]

    async def send() -> None:
        async with get_events_client() as client:
            for event, _ in events:
                await client.emit(event)

    try:
        asyncio.run(send())
    except Exception as e:  # noqa: BLE001  (connection errors come in many types)
        raise KprefError(f"Prefect API {url} did not take the event: {e}") from None
    return [(str(event.id), f) for event, f in events]
