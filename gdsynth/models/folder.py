"""Saving and loading a model folder: safetensors weights + JSON card. Never pickle."""

from __future__ import annotations

from pathlib import Path

from gdsynth.errors import GdsynthError, ModelError
from gdsynth.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard

#: Name accepted by ``-m/--model`` for the model shipped inside the package.
SHIPPED = {"phantom": "assets/models/phantom"}


def resolve_model_dir(model: str | Path) -> Path:
    """Turn ``phantom`` (the shipped model) or a folder path into a model folder path."""
    name = str(model)
    if name in SHIPPED:
        from importlib import resources

        folder = Path(str(resources.files("gdsynth").joinpath(SHIPPED[name])))
        if not (folder / WEIGHTS_NAME).is_file():
            raise ModelError(folder, f"the shipped '{name}' model is missing from this installation")
        return folder
    folder = Path(model)
    if not folder.exists():
        raise ModelError(folder, "model folder not found (give an exported model folder or 'phantom')")
    if folder.is_file():
        raise ModelError(
            folder,
            "is a file; give an exported model folder (generator.safetensors + model_card.json). "
            "Checkpoints (.ckpt) are not loaded by inference: export them with 'gdsynth train'",
        )
    return folder


def save_model_folder(folder: str | Path, generator, card: ModelCard) -> Path:  # generator: nn.Module
    """Write ``generator``'s weights (safetensors) and ``card`` (JSON) into ``folder``, atomically."""
    from safetensors.torch import save_file

    from gdsynth.io import atomic_path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "card": CARD_NAME})
    card.save(out / CARD_NAME)
    return out


#: Fewest bytes a stored parameter takes (float16/bfloat16; gdsynth itself writes float32).
MIN_BYTES_PER_PARAMETER = 2


def check_architecture(card: ModelCard, card_path: Path, weights: Path) -> int:
    """Refuse, before allocating anything, a card whose architecture is out of bounds or asks for
    more parameters than ``weights`` can hold; return the implied parameter count.

    A hostile or corrupted ``model_card.json`` (``features: 100000, depth: 30``...) would
    otherwise make the generator allocate gigabytes before failing. Raises :class:`ModelError`
    naming the card.
    """
    from gdsynth.models.registry import check_generator

    kwargs = card.architecture.get("kwargs", {})
    try:
        count = check_generator(card.architecture["name"], kwargs)
    except ModelError as exc:
        raise ModelError(card_path, exc.problem) from None
    if isinstance(kwargs, dict) and kwargs.get("in_channels") != card.in_channels:
        raise ModelError(card_path, f"architecture in_channels={kwargs.get('in_channels')} but the "
                                    f"card's inputs {card.inputs} in mode {card.mode} with "
                                    f"{card.context_slices} context slice(s) give {card.in_channels}")
    size = weights.stat().st_size
    if count * MIN_BYTES_PER_PARAMETER > size:
        raise ModelError(card_path, f"the architecture implies {count:,} parameters (at least "
                                    f"{count * MIN_BYTES_PER_PARAMETER:,} bytes of weights) but "
                                    f"{weights.name} holds {size:,} bytes: the card does not "
                                    "describe these weights")
    return count


def load_model_folder(model: str | Path, device: str = "cpu"):  # -> (nn.Module, ModelCard)
    """Load a model folder (or ``phantom``) as ``(generator in eval mode, card)``.

    Only ``safetensors`` weights and a JSON card are read; a missing, corrupt or mismatched file
    raises :class:`ModelError` naming it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from gdsynth.models.registry import build_generator

    folder = resolve_model_dir(model)
    card = ModelCard.load(folder / CARD_NAME)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelError(weights, "generator weights not found")
    # the weights file first (its size bounds what it can allocate), so a file that is not
    # safetensors at all (a pickle renamed, say) is named as the culprit, not the card
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(weights, f"not a valid safetensors file ({exc})") from None
    check_architecture(card, folder / CARD_NAME, weights)
    try:
        generator = build_generator(card.architecture["name"], **card.architecture.get("kwargs", {}))
    except ModelError as exc:
        raise ModelError(folder / CARD_NAME, exc.problem) from None
    except GdsynthError as exc:  # a value the network refuses (ConfigError)
        raise ModelError(folder / CARD_NAME, f"invalid architecture ({exc.problem})") from None
    except (TypeError, ValueError) as exc:  # kwargs not a mapping, or values the network refuses
        raise ModelError(folder / CARD_NAME, f"invalid architecture ({exc})") from None
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise ModelError(weights, f"weights do not match the card's architecture ({first})") from None
    return generator.to(device).eval(), card
