"""Jinja2 templates (autoescaped: every value is shown as text) and the static files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from gdsynth import __version__
from gdsynth.errors import OutputError
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


#: One edit to the vendored NiiVue 0.69 build, applied when it is copied into a site: NiiVue
#: recomputes a gradient texture of the background volume (a blur then a Sobel pass over every
#: voxel) whenever a view's layers change (a volume or overlay added, a window or threshold
#: moved), but only its gradient-lit render shaders read that texture, and the viewer never
#: selects them (the default volume render shader does not sample it). Under software WebGL
#: (SwiftShader: headless browsers, machines without a GPU) those passes were most of an exam
#: page's load time. The copy computes the gradient only while a gradient shader is selected.
NIIVUE_PATCH = (
    "g===0&&(this.volumeTexture=i,this.gradientTexture=Ti({",
    "g===0&&(this.volumeTexture=i,this.gradientTexture="
    "this.renderShader!==this.renderGradientShader&&"
    "this.renderShader!==this.renderGradientValuesShader?this.gradientTexture:Ti({",
)


def patched_niivue(build: bytes) -> bytes:
    """The NiiVue build with :data:`NIIVUE_PATCH` applied (error if the build differs)."""
    old, new = (s.encode("ascii") for s in NIIVUE_PATCH)
    if build.count(old) != 1:
        raise OutputError(STATIC / "niivue.umd.js", "not the NiiVue build gdsynth.review.render."
                                                    "NIIVUE_PATCH was written for (update the patch)")
    return build.replace(old, new)


def copy_static(dst: Path) -> Path:
    """Copy the viewer's static files (NiiVue build, its license, JS, CSS) into ``dst``; the
    NiiVue build gets :data:`NIIVUE_PATCH`."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(STATIC.iterdir()):
        if f.name == "niivue.umd.js":
            atomic_write_bytes(dst / f.name, patched_niivue(f.read_bytes()))
        elif f.is_file():
            atomic_write_bytes(dst / f.name, f.read_bytes())
    return dst
