"""The deployment side of the flow: prefect.yaml read for `kpref serve`, and the data event.

prefect.yaml is the one home of the schedule, the concurrency limit, the tags and the event
trigger: `prefect deploy` reads it for a work pool, `kpref serve` for this machine alone.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from tasks.schema import KprefError

DATA_UPDATED = "kpref.data.updated"


def deployment_spec(prefect_yaml: Path, name: str) -> dict:
    """The deployment called `name` in prefect.yaml."""
    if not prefect_yaml.exists():
        raise KprefError(f"{prefect_yaml}: not found (run from the project root or pass --root)")
    specs = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8")).get("deployments") or []
    spec = next((d for d in specs if d.get("name") == name), None)
    if spec is None:
        raise KprefError(f"{prefect_yaml}: no deployment {name!r}; it has {[d.get('name') for d in specs]}")
    return spec


def served_deployment(root: Path, name: str) -> dict:
    """`Flow.serve` options from prefect.yaml's deployment: every schedule checked first."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron

    where = f"{root / 'prefect.yaml'}: deployment {name!r}"
    spec = deployment_spec(root / "prefect.yaml", name)
    schedules = []
    for s in spec.get("schedules") or []:
        try:
            schedules.append(Cron(s["cron"], timezone=s.get("timezone")))
        except (KeyError, ValueError) as e:
            raise KprefError(f"{where}: schedule {s!r} is not a valid cron schedule ({e})") from None
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
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise KprefError("no Prefect API to tell: set PREFECT_API_URL to your server's API "
                         "(`prefect config set PREFECT_API_URL=http://HOST:4200/api`)")
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
