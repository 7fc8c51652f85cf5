"""``rhapsody backends``: what is installed, what it needs, and what one pip install away."""

from __future__ import annotations

from ..backends.lookup import FIRST_PARTY, FIRST_PARTY_NAMES
from ..plugins.manager import get_plugin_host
from .render import table


def _name_with_aliases(name: str, aliases: tuple[str, ...]) -> str:
    # Aliases that are backend names (not class names) are shown beside the name.
    names = [a for a in aliases if a.islower()]
    return f"{name} (also {', '.join(names)})" if names else name


def backend_rows() -> list[tuple[str, str, str, str, str]]:
    host = get_plugin_host()
    discovered = host.backends()
    rows = []
    for name, info in sorted(discovered.items()):
        dist = f"{info.distribution or '-'} {info.version or ''}".strip()
        if not info.available:
            status = f"unavailable: {info.reason}"
        else:
            note = info.note()
            status = f"available; {note}" if note else "available"
        rows.append(
            (
                _name_with_aliases(name, info.aliases),
                info.kind or "-",
                info.class_name or "-",
                dist,
                status,
            )
        )
    for name, (class_name, kind) in sorted(FIRST_PARTY_NAMES.items()):
        if name in discovered:
            continue
        dist, extra = FIRST_PARTY[class_name]
        status = f"not installed: pip install 'rhapsody-core[{extra}]'"
        if extra in host.blocked:
            status = "installed, not loaded (RHAPSODY_LOAD_PLUGINS / RHAPSODY_BLOCK_PLUGINS)"
        rows.append((name, kind, class_name, dist, status))
    return rows


def render_backends() -> str:
    return table(["name", "kind", "class", "distribution", "status"], backend_rows())
