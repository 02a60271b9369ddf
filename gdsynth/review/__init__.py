"""gdsynth.review: what radiologists look at (see docs/architecture.md).

* :func:`gdsynth.review.site.build_site` — static review site (cohort table, linked NiiVue views,
  overlays, lesion table, mosaics); ``gdsynth review``.
* :func:`gdsynth.review.study.create_study` — blinded, randomized real-vs-synthetic reader study;
  :func:`gdsynth.review.server.create_app` serves it (Flask) and
  :class:`gdsynth.review.store.AnswerStore` keeps the answers (SQLite);
  :func:`gdsynth.review.analysis.analyze_study` computes the statistics;
  ``gdsynth reader-study create|serve|analyze``.

Submodules are imported on demand (Flask, matplotlib and Jinja2 stay out of ``gdsynth --help``).
"""
