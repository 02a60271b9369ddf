"""torchio subjects, patch sampling, augmentation and the ``LightningDataModule`` for training.

Import from the submodules (``gdsynth.data.module``, ``gdsynth.data.subjects``...); this package
imports nothing heavy by itself.
"""
