"""Jinja2 templates (autoescaped: every value is shown as text) and the static files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from gdsynth import __version__
from gdsynth.io import atomic_write_bytes

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "review"
STATIC = ASSETS / "static"
TEMPLATES = ASSETS / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Template environment with HTML autoescaping on for every template."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    return env


def render(template: str, **context: object) -> str:
    """Render ``template`` with ``context`` (all strings escaped)."""
    return environment().get_template(template).render(**context)


def copy_static(dst: Path) -> Path:
    """Copy the viewer's static files (NiiVue build, its license, JS, CSS) into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(STATIC.iterdir()):
        if f.is_file():
            atomic_write_bytes(dst / f.name, f.read_bytes())
    return dst
