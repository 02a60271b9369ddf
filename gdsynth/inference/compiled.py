"""Optional ``torch.compile`` (Inductor) of the generator for whole-volume inference.

On CPU, Inductor fuses what eager PyTorch runs as separate memory-bound passes (instance norm,
activation, the skip ``cat``) and reaches about 1.4x the eager throughput of the shipped U-Net
(``docs/benchmarks.md``). Compiling costs tens of seconds once per process (less with Inductor's
on-disk cache warm), so it pays off only over enough work: :func:`resolve_compile` decides for
``auto``.

* **One compilation for every exam**: graphs are compiled with dynamic shapes (batch, slice
  size), as fast as static ones for this network, so neither another exam's slice size nor the
  smaller last batch of a volume recompiles. Only a batch of one item would (size 1 is always
  specialised); :class:`PadSingle` repeats such a batch to two items instead.
* **Compiled once per generator**: :func:`compiled_model` / :func:`compiled_unet` keep the
  compiled callables with the generator (weakly), so each exam's predictor reuses them.
* **MC dropout**: the seeded masks of :mod:`gdsynth.inference.mc` stay exactly what they are
  eagerly. With a U-Net whose dropout modules end decoder blocks (the pix2pix layout), the encoder
  and the decoder are compiled separately and the decoder takes the masks as inputs (drawn
  eagerly, per sample, as the forward hooks draw them), so the compiled samples equal the eager
  ones up to float rounding. Other generators run MC dropout eagerly.
* **Fallback**: when compilation fails (no C++ compiler, unsupported backend, an Inductor
  error), one warning is logged and that generator runs eagerly from then on.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
import torch.fx.experimental._config
from torch import Tensor, nn

from gdsynth.runtime import COMPILE_AUTO_MIN_SAMPLES, CompileChoice

if TYPE_CHECKING:
    from gdsynth.models.unet import UNetGenerator

log = logging.getLogger(__name__)

#: ``auto`` compiles (on CPU) a run of at least this many exam × MC samples (1 mm exams).
AUTO_MIN_SAMPLES = COMPILE_AUTO_MIN_SAMPLES


@lru_cache(maxsize=1)
def cpp_compiler() -> str | None:
    """The C++ compiler Inductor's CPU backend would use (``$CXX``, else ``g++``), or None."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return str(get_cpp_compiler())
    except Exception:  # noqa: BLE001 - InvalidCxxCompiler, or a torch without Inductor
        return None


def compile_unsupported(device: torch.device | str) -> str | None:
    """Why the Inductor backend cannot run on ``device`` here, or None when it can."""
    kind = torch.device(device).type
    if kind == "cpu":
        return None if cpp_compiler() else "no C++ compiler found (set CXX or install g++)"
    if kind == "cuda":
        import importlib.util

        return None if importlib.util.find_spec("triton") else "triton is not installed"
    return f"torch.compile is not supported on {kind} here"


def resolve_compile(choice: str | bool | CompileChoice, device: torch.device | str,
                    samples: float) -> bool:
    """Whether to compile a run that synthesizes ``samples`` exam × MC samples on ``device``,
    counted in 1 mm exams (an exam prepared at s mm counts 1/s³: its slices are smaller).

    ``on`` → True (an unsupported setup then warns and runs eagerly); ``off`` → False; ``auto``
    → True only on CPU with a C++ compiler and ``samples >= AUTO_MIN_SAMPLES``: measured on the
    shipped U-Net, the cold compile time (about 40 s) is paid back after about 17 one-sample
    1 mm exams and after 2 exams with 10 MC samples. On CUDA the speedup has not been
    measured, so ``auto`` leaves it off.
    """
    choice = CompileChoice.parse(choice)
    if choice is not CompileChoice.auto:
        return choice is CompileChoice.on
    return (torch.device(device).type == "cpu" and samples >= AUTO_MIN_SAMPLES
            and compile_unsupported(device) is None)


_WARNED: set[str] = set()


def warn_once(message: str, level: int = logging.WARNING) -> None:
    """Log ``message`` once per process (cohorts build a predictor per exam)."""
    if message not in _WARNED:
        _WARNED.add(message)
        log.log(level, message)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _own(arg: Any) -> Any:
    """``arg`` with tensors (also in lists) made alike from call to call, as dynamo's guards see
    them: views are copied (dynamo guards the size of a view's base, so a slice of a bigger
    batch would recompile), and so are normal tensors under inference mode (an inference tensor
    has other dispatch keys). Copying a batch costs about 1 % of a forward."""
    if isinstance(arg, Tensor):
        if arg._base is not None or (torch.is_inference_mode_enabled() and not arg.is_inference()):
            return arg.clone()
        return arg
    if isinstance(arg, list):
        return [_own(a) for a in arg]
    return arg


class Compiled:
    """``fn`` through ``torch.compile(fn, dynamic=True)``, falling back to ``fn`` itself.

    If ``torch.compile`` or a compiled call raises, ``fn`` is run eagerly on the same arguments
    (so a genuine error of the model is raised as without compilation); when that succeeds the
    failure is logged once, as one warning, and every later call runs ``fn`` eagerly.
    """

    def __init__(self, fn: Callable[..., Any], what: str, *, backend: str = "inductor",
                 options: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.what = what
        self.compiled: Callable[..., Any] | None = None
        kwargs: dict[str, Any] = {"dynamic": True, "backend": backend}
        if options and backend == "inductor":
            kwargs["options"] = options
        try:
            self.compiled = torch.compile(fn, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compile problem means: run eagerly
            self._give_up(exc)

    @property
    def active(self) -> bool:
        """False once compilation has failed (calls then run eagerly)."""
        return self.compiled is not None

    def _give_up(self, exc: BaseException) -> None:
        self.compiled = None
        log.warning("torch.compile failed for %s (%s); running it eagerly", self.what,
                    _one_line(exc))

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            return self.fn(*args)
        try:
            # no duck sizing: sizes that happen to be equal (a slice's width and a channel
            # count, or H and W of a square slice) would be traced as one symbol, then specialised
            # or guarded equal, and another exam's slices would recompile
            with torch.fx.experimental._config.patch(use_duck_shape=False):
                return self.compiled(*[_own(a) for a in args])
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            out = self.fn(*args)
            self._give_up(exc)
            return out


# ------------------------------------------------------------------------ compiled generators
_PLAIN: weakref.WeakKeyDictionary[nn.Module, Compiled] = weakref.WeakKeyDictionary()
_UNET: weakref.WeakKeyDictionary[nn.Module, CompiledUNet] = weakref.WeakKeyDictionary()


def compiled_model(model: nn.Module, *, backend: str = "inductor") -> Compiled:
    """``model``'s forward, compiled (one :class:`Compiled` per model and process)."""
    found = _PLAIN.get(model)
    if found is None:
        found = _PLAIN[model] = Compiled(model, f"{type(model).__name__}", backend=backend)
    return found


class CompiledUNet:
    """The compiled :meth:`~gdsynth.models.unet.UNetGenerator.encode` and
    :meth:`~gdsynth.models.unet.UNetGenerator.decode` of one U-Net, for MC dropout with the masks
    as inputs of the decoder graph (see :func:`compiled_unet`)."""

    def __init__(self, model: UNetGenerator, *, backend: str = "inductor") -> None:
        self.model = model
        # Inductor runs the convolutions channels-last on CPU; by default it converts graph
        # outputs back to eager's layout, a copy of every skip tensor that the decoder graph
        # then converts again (this made the split graphs slower than eager, not 1.5x faster)
        keep_layout = {"keep_output_stride": False}
        self.encode = Compiled(lambda x: model.encode(x), "the U-Net encoder",
                               backend=backend, options=keep_layout)
        self.decode = Compiled(lambda skips, y, masks: model.decode(skips, y, masks),
                               "the U-Net decoder", backend=backend, options=keep_layout)

    @property
    def active(self) -> bool:
        return self.encode.active and self.decode.active


def compiled_unet(model: UNetGenerator, *, backend: str = "inductor") -> CompiledUNet:
    """The :class:`CompiledUNet` of ``model`` (one per model and process). Which U-Nets run MC
    dropout split this way: :meth:`gdsynth.inference.mc.SharedEncoder.wrap`."""
    found = _UNET.get(model)
    if found is None:
        found = _UNET[model] = CompiledUNet(model, backend=backend)
    return found


class PadSingle:
    """Predictor wrapper: a batch of one item is repeated to two and the first result returned.

    A graph compiled with dynamic shapes still specialises size 1, so the one-slice last batch
    of some volumes would compile a second graph (tens of seconds); predicting one extra item
    costs a fraction of a slice per volume. Other attributes are those of the wrapped predictor.
    """

    def __init__(self, predictor: Callable[[Tensor], Tensor]) -> None:
        self.predictor = predictor

    def __call__(self, batch: Tensor) -> Tensor:
        if batch.shape[0] != 1:
            return self.predictor(batch)
        return self.predictor(batch.repeat(2, *([1] * (batch.dim() - 1))))[:1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)


def compiled_runs(model: nn.Module) -> list[Compiled]:
    """The :class:`Compiled` callables made for ``model`` so far (for checks and benchmarks)."""
    runs = [_PLAIN[model]] if model in _PLAIN else []
    unet = _UNET.get(model)
    return runs + ([unet.encode, unet.decode] if unet is not None else [])


def compile_counters() -> dict[str, int]:
    """How many graphs dynamo has compiled in this process (``unique_graphs``), for benchmarks
    and tests that check that exams do not recompile."""
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"]["unique_graphs"])}
