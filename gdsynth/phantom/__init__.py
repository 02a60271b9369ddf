"""Digital MS phantom: virtual subjects with pre/post-gadolinium MRI and ground truth.

``generate_dataset`` writes a BIDS raw dataset plus ``derivatives/phantom`` truth;
``simulate_subject`` returns one subject's volumes in memory (for tests and benchmarks).
"""

from gdsynth.phantom.config import SITES, PhantomConfig, Site, get_site
from gdsynth.phantom.dataset import enhancing_truth_path, generate_dataset, truth_path
from gdsynth.phantom.simulate import ExamVolumes, SubjectVolumes, simulate_subject

__all__ = [
    "SITES",
    "ExamVolumes",
    "PhantomConfig",
    "Site",
    "SubjectVolumes",
    "enhancing_truth_path",
    "generate_dataset",
    "get_site",
    "simulate_subject",
    "truth_path",
]
