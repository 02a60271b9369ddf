"""Fine-tuning: start a run's generator from an exported model (``gdsynth train --init-from``).

The source is ``phantom`` (the shipped model) or a model folder written by ``gdsynth train``
(``generator.safetensors`` + ``model_card.json``; never a pickle). Before anything is written the
run's recipe is checked against the source's card: inputs (names and order), mode and context
slices, the generator's architecture (every keyword argument, heads included) and ``residual``,
then the spacing of the prepared exams. A mismatch is one line naming the model and what differs.
The discriminator starts fresh unless the folder holds ``discriminator.safetensors`` matching the
run's discriminator. The run's config (``init``) and the exported card (``training.init_from``)
record the source and the SHA-256 of its weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdsynth.errors import ModelError
from gdsynth.models.card import ModelCard
from gdsynth.training.config import TrainConfig

#: Optional discriminator weights beside the generator in a source folder.
DISCRIMINATOR_NAME = "discriminator.safetensors"
#: Largest spacing difference (mm) between the source's card and the prepared exams.
SPACING_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class InitSource:
    """A model a run starts from: ``model`` as given (``phantom`` or a folder), its resolved
    ``folder``, ``card``, generator ``state`` (tensors), the SHA-256 of its weights and, when the
    folder has one, the discriminator's ``discriminator_state``."""

    model: str
    folder: Path
    card: ModelCard
    state: dict[str, Any]
    sha256: str
    discriminator_state: dict[str, Any] | None = None


def load_init_source(model: str | Path, sha256: str | None = None) -> InitSource:
    """Read the card and weights (safetensors) of ``model`` (``phantom`` or a folder); with
    ``sha256``, refuse weights whose SHA-256 differs. Raises :class:`ModelError`."""
    from gdsynth.io import file_sha256
    from gdsynth.models.card import WEIGHTS_NAME
    from gdsynth.models.folder import load_model_folder, resolve_model_dir

    folder = resolve_model_dir(model)
    digest = file_sha256(folder / WEIGHTS_NAME) if (folder / WEIGHTS_NAME).is_file() else None
    if sha256 and digest and digest != sha256:
        raise ModelError(folder / WEIGHTS_NAME, f"SHA-256 {digest[:12]}… is not the recipe's "
                                                f"init.sha256 {sha256[:12]}…: the model changed")
    generator, card = load_model_folder(folder)
    state = {k: v.detach().clone() for k, v in generator.state_dict().items()}
    return InitSource(model=str(model), folder=folder, card=card, state=state,
                      sha256=digest or "", discriminator_state=_discriminator_state(folder))


def _discriminator_state(folder: Path) -> dict[str, Any] | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / DISCRIMINATOR_NAME
    if not path.is_file():
        return None
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(path, f"not a valid safetensors file ({exc})") from None


def _names(values) -> str:
    return ", ".join(map(str, values)) or "none"


def recipe_differences(card: ModelCard, config: TrainConfig) -> str | None:
    """What keeps a run of ``config`` from starting with the weights ``card`` describes (the
    first kind of difference found, in words), or None when they are compatible."""
    import torch

    from gdsynth.models.registry import build_generator
    from gdsynth.training.module import generator_kwargs

    d = config.data
    if list(card.inputs) != list(d.inputs):
        return f"takes {_names(card.inputs)}; this run's recipe has {_names(d.inputs)}"
    context = d.context_slices if d.mode == "2.5d" else 0
    if (card.mode, card.context_slices) != (d.mode, context):
        return (f"is {card.mode} with {card.context_slices} context slice(s); this run's recipe "
                f"is {d.mode} with {context}")
    if card.residual != config.generator.residual:
        return f"has residual={card.residual}; this run's recipe has generator.residual=" \
               f"{config.generator.residual}"
    ours_name = config.generator.name
    if card.architecture["name"] != ours_name:
        return f"is a {card.architecture['name']!r} generator; this run's recipe has {ours_name!r}"
    with torch.device("meta"):  # the normalized arguments, nothing allocated
        ours = build_generator(ours_name, **generator_kwargs(config)).kwargs
    theirs = card.architecture.get("kwargs", {})
    diff = [f"{k}={theirs.get(k)!r} (recipe: {ours.get(k)!r})"
            for k in sorted(set(ours) | set(theirs)) if theirs.get(k) != ours.get(k)]
    if diff:
        return "has generator " + ", ".join(diff)
    prep_spacing = (config.prep or {}).get("spacing")
    return spacing_difference(card, None if prep_spacing is None else float(prep_spacing))


def spacing_difference(card: ModelCard, spacing_mm: float | None) -> str | None:
    """How exams prepared at ``spacing_mm`` differ from the spacing ``card`` was trained at (in
    words), or None when they agree (or either is unknown)."""
    if spacing_mm is None or card.spacing_mm is None or \
            abs(spacing_mm - card.spacing_mm) <= SPACING_TOLERANCE_MM:
        return None
    return (f"was trained at {card.spacing_mm:g} mm; this run's exams are prepared at "
            f"{spacing_mm:g} mm (set prep.spacing: {card.spacing_mm:g})")


def grid_spacing(spacing: tuple[float, ...]) -> float:
    """The one spacing (mm) of a grid: isotropic, its spacing; else its coarsest axis."""
    return float(spacing[0]) if max(spacing) - min(spacing) < 1e-3 else float(max(spacing))


def check_init_spacing(config: TrainConfig, t1w: Path) -> None:
    """Before preparing: refuse (:class:`ModelError`) exams that would be prepared at another
    spacing than ``config.init.model`` was trained at (``prep.spacing`` when the recipe sets it,
    else the spacing of ``t1w``, the first exam's T1w, whose grid preparation keeps)."""
    from gdsynth.io import read_image
    from gdsynth.models.card import CARD_NAME
    from gdsynth.models.folder import resolve_model_dir

    if not config.init.model:
        return
    card = ModelCard.load(resolve_model_dir(config.init.model) / CARD_NAME)
    spacing = (config.prep or {}).get("spacing")
    if spacing is None:
        spacing = grid_spacing(read_image(t1w, allow_constant=True)[1].spacing)
    problem = spacing_difference(card, float(spacing))
    if problem is not None:
        raise ModelError(None, f"--init-from: model {config.init.model!r} {problem}")


def check_init_compatible(source: InitSource, config: TrainConfig,
                          spacing_mm: float | None = None) -> None:
    """Refuse (:class:`ModelError`, one line naming the model) a ``source`` whose card differs
    from ``config`` (:func:`recipe_differences`), prepared exams whose ``spacing_mm`` differs
    from the card's, or a discriminator in the folder that does not fit ``config``'s."""
    problem = recipe_differences(source.card, config) or spacing_difference(source.card,
                                                                             spacing_mm)
    if problem is not None:
        raise ModelError(None, f"--init-from: model {source.model!r} {problem}")
    if source.discriminator_state is not None and config.loss.adversarial_weight > 0:
        try:  # shapes only: the network lives on the meta device
            _fresh_discriminator(config).load_state_dict(source.discriminator_state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0][:200]
            raise ModelError(source.folder / DISCRIMINATOR_NAME, "--init-from: does not fit "
                             f"this run's discriminator ({first})") from None


def _fresh_discriminator(config: TrainConfig):  # -> nn.Module on the meta device
    import torch

    from gdsynth.models.registry import build_discriminator
    from gdsynth.training.module import discriminator_kwargs

    with torch.device("meta"):
        return build_discriminator("patchgan", **discriminator_kwargs(config))


def init_provenance(config: TrainConfig) -> dict[str, Any] | None:
    """What a run's card records under ``training.init_from``: the source model (``phantom`` or
    its folder) and the SHA-256 of its weights, from the run's config (so a resumed run keeps
    it); None for a run trained from scratch."""
    if not config.init.model:
        return None
    return {"model": config.init.model, "weights_sha256": config.init.sha256}


def apply_init(module, source: InitSource) -> None:  # module: Pix2PixModule
    """Copy ``source``'s generator weights (and discriminator, when it has one and the module
    trains one) into ``module``, strictly: every tensor, same shapes."""
    try:
        module.generator.load_state_dict(source.state, strict=True)
        if source.discriminator_state is not None and module.discriminator is not None:
            module.discriminator.load_state_dict(source.discriminator_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise ModelError(source.folder, f"--init-from: weights do not fit this run ({first})"
                         ) from None


__all__ = ["DISCRIMINATOR_NAME", "InitSource", "apply_init", "check_init_compatible",
           "check_init_spacing", "grid_spacing", "init_provenance", "load_init_source", "recipe_differences"]
