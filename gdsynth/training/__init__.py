"""Lightning training of the pix2pix generator: ``Pix2PixModule`` (gdsynth.training.module),
typed configuration (gdsynth.training.config), atomic checkpoints, trackers, export, and
``train_run`` (gdsynth.training.run) which ties them together, and the work of ``gdsynth train``
(gdsynth.training.launch: configuration, training exams, run)."""
