"""The report as text for a person (``flask vault status``): one line per item.

Each check has a describer that picks its fields; a check without one gets the generic
line (``componentId``, ``observedValue`` with its unit, ``output``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_vault.health.report import HealthReport, Item

#: Checks shown as a header line and one indented line per item (one item per config key).
GROUPED = frozenset({"vault:secrets"})


def format_report(report: HealthReport) -> str:
    """The report as text for a terminal."""
    lines = [f"status: {report.status}" + (f" - {report.output}" if report.output else "")]
    for name, items in report.checks.items():
        label = name.partition(":")[2] or name
        describe = DESCRIBERS.get(name, _describe_generic)
        if name in GROUPED and any("componentId" in item for item in items):
            lines.append(f"{label:<8} {report.check_status(name)}")
            lines.extend("  " + _line(item, describe(item)) for item in items)
        else:
            lines.extend(f"{label:<8} " + _line(item, describe(item)) for item in items)
    return "\n".join(lines)


def _line(item: Item, parts: list[str] | str) -> str:
    if isinstance(parts, str):
        return parts
    text = f"{item.get('status', '')!s:<4} " + " ".join(p for p in parts if p)
    if item.get("output"):
        text += f" - {item['output']}"
    return text


def _describe_server(item: Item) -> list[str]:
    parts = [f"{item.get('componentId', '?')}", f"state={item.get('state')}"]
    parts.extend(f"{key}={item[key]}" for key in ("initialized", "sealed", "standby", "version") if key in item)
    if "observedValue" in item:
        parts.append(f"rtt={item['observedValue']}ms")
    return parts


def _describe_login(item: Item) -> list[str]:
    parts = [f"method={item.get('method')}", f"authenticated={item.get('authenticated', 'unknown')}"]
    if "observedValue" in item:
        parts.append(f"ttl_left={_duration(item['observedValue'])}")
    elif item.get("expires") is False:
        parts.append("ttl_left=never expires")
    if "renewable" in item:
        parts.append(f"renewable={item['renewable']}")
    if "policies" in item:
        parts.append(f"policies={','.join(item['policies']) or '-'}")
    return parts


def _describe_secret(item: Item) -> list[str] | str:
    if "componentId" not in item:
        return f"{item.get('status', '')} (no filled config keys)"
    where = (item.get("path") or "") + (f"#{item['field']}" if item.get("field") else "")
    if item.get("envVar"):
        where = f"${item['envVar']}"
    parts = [f"{item['componentId']}:", str(item.get("origin")), where]
    if item.get("version") is not None:
        parts.append(f"v{item['version']}")
    if item.get("lease"):
        parts.append(f"login from {item['lease']}")
    if "observedValue" in item:
        parts.append(f"age {_duration(item['observedValue'])}")
    return parts


_CACHE_COUNTERS = (
    ("hits", "hits"),
    ("misses", "misses"),
    ("staleServes", "stale_serves"),
    ("refreshFailures", "refresh_failures"),
)


def _describe_cache(item: Item) -> list[str]:
    parts = [f"{label}={item.get(key, 0)}" for key, label in _CACHE_COUNTERS]
    if "outageSeconds" in item:
        parts.append(f"outage {_duration(item['outageSeconds'])}")
    return parts


def _describe_database(item: Item) -> list[str]:
    parts = [f"{item.get('componentId')}:", str(item.get("state")), str(item.get("path") or "")]
    if item.get("version") is not None:
        parts.append(f"v{item['version']}")
    if item.get("refusals"):
        parts.append(f"refused_logins={item['refusals']}")
    return parts


def _describe_lease(item: Item) -> list[str]:
    parts = [f"{item.get('componentId')}:", f"role={item.get('role')}", f"user={item.get('username') or '-'}"]
    if "observedValue" in item:
        parts.append(f"ttl_left={_duration(item['observedValue'])}")
    elif "nextRotationSeconds" in item:
        parts.append(f"next_rotation={_duration(item['nextRotationSeconds'])}")
    parts.append(f"generation={item.get('generation')}")
    if item.get("released"):
        parts.append("released after a fork (unused)")
    parts.append(f"last_switch={item.get('lastSwitch') or 'never'}")
    parts.extend(f"{key}={item.get(key, 0)}" for key in ("renewals", "switches", "failures"))
    return parts


def _describe_generic(item: Item) -> list[str]:
    parts = [str(item["componentId"])] if "componentId" in item else []
    if "observedValue" in item:
        unit = item.get("observedUnit")
        value = item["observedValue"]
        parts.append(_duration(value) if unit == "s" else f"{value}{unit or ''}")
    return parts


DESCRIBERS: dict[str, Callable[[Item], list[str] | str]] = {
    "vault:server": _describe_server,
    "vault:login": _describe_login,
    "vault:secrets": _describe_secret,
    "vault:cache": _describe_cache,
    "vault:database": _describe_database,
    "vault:lease": _describe_lease,
}


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return str(seconds)
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds % 1 else f"{int(seconds)}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s"
