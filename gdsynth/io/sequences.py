"""The sequence registry: every image kind an exam is made of, described once and read everywhere.

One :class:`SequenceInfo` per sequence says how its raw file is named in BIDS (suffix, entities
such as ``ce-gadolinium``, datatype folder), how a cohort table names its column and what it is
for (:class:`Role`): a pre-contrast **input** the generator may take, the **target** it learns to
synthesize (the real post-gadolinium T1w), or a **prior** read beside the inputs but never fed to
the generator. Discovery, cohort tables, preparation, the model card's ``inputs``, ``predict``'s
``--input NAME=FILE`` and the review page all read this table, so a new sequence (say a
PD-weighted image) is one :func:`register` call (plus, where it is new physics, the phantom).

Lookups raise :class:`~gdsynth.errors.ConfigError` listing the registered names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from gdsynth.errors import ConfigError

#: The sequence that defines the prepared space, the residual target and the enhancement map.
REFERENCE = "T1w"
#: The real post-gadolinium T1w: training and evaluation target.
POST = "T1w_gd"
#: Entity keys that tell sequences of one suffix apart: a raw ``_ce-X_T2w`` is no T2w.
_DEFINING = ("ce",)


class Role(str, Enum):
    """What a sequence is for."""

    INPUT = "input"    # pre-contrast, may be a generator input (model card ``inputs``)
    TARGET = "target"  # the real post-Gd T1w the generator learns to synthesize
    PRIOR = "prior"    # read and prepared beside the inputs, never a generator input


@dataclass(frozen=True)
class SequenceInfo:
    """One sequence: its name in gdsynth (card ``inputs``, ``--input NAME=``, prepared-file keys),
    its raw BIDS naming and its role.

    Attributes:
        name: gdsynth's name (``T1w``, ``T1w_gd``, ``PD``...); the cohort-table column is
            ``name.lower()``.
        suffix: BIDS suffix of the raw file (``T1w``, ``FLAIR``, ``PDw``, ``dwi``...).
        entities: canonical BIDS entities of the raw file, e.g. ``(("ce", "gadolinium"),)``.
        datatype: BIDS datatype folder the raw file lives in (``anat``, ``dwi``...).
        role: :class:`Role`.
        aliases: other accepted values of an entity on read, e.g.
            ``(("ce", ("gd", "gado")),)``.
        description: one line for help texts.
    """

    name: str
    suffix: str
    entities: tuple[tuple[str, str], ...] = ()
    datatype: str = "anat"
    role: Role = Role.INPUT
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    description: str = ""

    @property
    def column(self) -> str:
        """Column of this sequence in a cohort table."""
        return self.name.lower()

    @property
    def entity_dict(self) -> dict[str, str]:
        """:attr:`entities` as a dict (keyword arguments of ``derivative_path``)."""
        return dict(self.entities)

    def matches(self, suffix: str, entities: Mapping[str, str]) -> bool:
        """Whether a raw file with this BIDS ``suffix`` and ``entities`` is this sequence."""
        if suffix != self.suffix:
            return False
        own, also = self.entity_dict, dict(self.aliases)
        for key in dict.fromkeys((*_DEFINING, *own)):
            value = entities.get(key, "").lower()
            accepted = {own[key].lower(), *(a.lower() for a in also.get(key, ()))} if key in own \
                else {""}
            if value not in accepted:
                return False
        return True


#: The registry, in order (the order of inputs, table columns and prepared files).
SEQUENCES: dict[str, SequenceInfo] = {}


def register(info: SequenceInfo) -> SequenceInfo:
    """Add ``info`` to :data:`SEQUENCES`; a name or a BIDS naming already registered is refused."""
    if info.name in SEQUENCES:
        raise ConfigError(None, f"sequence {info.name!r} is already registered")
    if not info.name or not info.name.replace("_", "").isalnum() or info.name.lower() == "mask":
        raise ConfigError(None, f"sequence name {info.name!r} must be alphanumeric (and not mask)")
    clash = [s.name for s in SEQUENCES.values() if s.matches(info.suffix, info.entity_dict)]
    if clash:
        raise ConfigError(None, f"sequence {info.name!r} has the BIDS naming of {clash[0]!r}")
    SEQUENCES[info.name] = info
    return info


def unregister(name: str) -> None:
    """Remove ``name`` from :data:`SEQUENCES`."""
    sequence(name)
    del SEQUENCES[name]


@contextmanager
def registered(*infos: SequenceInfo) -> Iterator[tuple[SequenceInfo, ...]]:
    """Register ``infos`` for the duration of a ``with`` block (tests, one-off scripts)."""
    done: list[str] = []
    try:
        for info in infos:
            register(info)
            done.append(info.name)
        yield infos
    finally:
        for name in reversed(done):
            SEQUENCES.pop(name, None)


def sequence(name: str) -> SequenceInfo:
    """The registered sequence called ``name``; :class:`ConfigError` lists the valid names."""
    try:
        return SEQUENCES[name]
    except (KeyError, TypeError):
        raise ConfigError(None, f"unknown sequence {name!r}; registered: "
                                f"{', '.join(SEQUENCES)}") from None


def names(*roles: Role) -> tuple[str, ...]:
    """Registered names in order, only those of ``roles`` when given."""
    return tuple(n for n, s in SEQUENCES.items() if not roles or s.role in roles)


def input_names() -> tuple[str, ...]:
    """The pre-contrast inputs (:attr:`Role.INPUT`), in registry order."""
    return names(Role.INPUT)


def check_inputs(requested: Iterable[str], what: str = "inputs") -> list[str]:
    """``requested`` as a list of registered input names; :class:`ConfigError` names a wrong one
    and lists the valid names (``what`` names the setting in the message)."""
    requested, valid = list(requested), input_names()
    bad = [str(s) for s in requested if s not in valid]
    if bad:
        raise ConfigError(None, f"{what} {requested} invalid: {', '.join(bad)} unknown; choose "
                                f"among {', '.join(valid)}")
    return requested


def classify(suffix: str, entities: Mapping[str, str]) -> str | None:
    """Name of the registered sequence a raw file with ``suffix`` and ``entities`` is, or None."""
    return next((s.name for s in SEQUENCES.values() if s.matches(suffix, entities)), None)


def datatypes() -> tuple[str, ...]:
    """The BIDS datatype folders discovery scans (those of registered sequences, ``anat`` first)."""
    return tuple(dict.fromkeys(("anat", *(s.datatype for s in SEQUENCES.values()))))


for _info in (
    SequenceInfo("T1w", "T1w", description="pre-contrast T1-weighted"),
    SequenceInfo("T2w", "T2w", description="T2-weighted"),
    SequenceInfo("FLAIR", "FLAIR", description="T2-FLAIR"),
    SequenceInfo("T1w_gd", "T1w", (("ce", "gadolinium"),), role=Role.TARGET,
                 aliases=(("ce", ("gd", "gadolinium1", "gado")),),
                 description="real post-gadolinium T1-weighted"),
):
    register(_info)
