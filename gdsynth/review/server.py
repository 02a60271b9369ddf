"""The reader-study web app (Flask): token login, one case per page, answers to SQLite.

Readers are identified by their token (in the URL ``/r/<token>/`` or through the login form);
answers are accepted only with a valid token for a case of that reader. Only files of
``STUDY/public`` are served (no ``..``, no absolute paths, no symlink leading outside, never the
key folder); everything else is 403/404.

A token in a URL is a reader's password: every log line of the server (werkzeug's access log,
Flask's error log) goes through :func:`redact` first, so ``/r/<token>/case/2`` is logged as
``/r/***/case/2`` and ``token=<token>`` as ``token=***``.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, request, send_file

from gdsynth.errors import ConfigError, InputFileMissingError, OutputError
from gdsynth.review.render import STATIC, render
from gdsynth.review.store import Answer, AnswerStore
from gdsynth.review.study import KEY, PUBLIC, token_hash

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


_TOKEN_IN_PATH = re.compile(r"(/r/)[^/\s?#\"']+")
_TOKEN_PARAM = re.compile(r"(\btoken=)[^&\s\"';]+", re.IGNORECASE)
REDACTED = "***"


def redact(text: str) -> str:
    """``text`` with reader tokens replaced by ``***`` (URL path ``/r/<token>`` and
    ``token=<token>`` parameters)."""
    text = _TOKEN_IN_PATH.sub(rf"\g<1>{REDACTED}", text)
    return _TOKEN_PARAM.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    """Logging filter that removes reader tokens from a record's message (see :func:`redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction(*loggers: logging.Logger) -> None:
    """Add one :class:`RedactTokens` filter to each logger (idempotent)."""
    for logger in loggers:
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def safe_path(root: Path, rel: str) -> Path:
    """Resolve ``rel`` inside ``root`` or abort: 403 for traversal/absolute/outside, 404 if absent."""
    parts = rel.replace("\\", "/").split("/")
    if (not rel or "\x00" in rel or rel.startswith(("/", "\\")) or os.path.isabs(rel)
            or ".." in parts or ":" in parts[0] or KEY in parts):
        abort(403)
    base = root.resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        abort(403)  # a symlink pointing outside the public folder
    if not target.is_file():
        abort(404)
    return target


class Study:
    """What the server knows of a study: readers (by token hash) and their case orders."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        readers = self.root / "readers.json"
        if not readers.exists():
            raise InputFileMissingError(readers, "not a reader study (run 'reader-study create')")
        self.readers = _load_readers(readers)
        self.public = self.root / PUBLIC
        self.store = AnswerStore(self.root / "answers.sqlite")

    def reader(self, token: str) -> str | None:
        """The reader owning ``token`` (constant-time comparison of hashes), or None."""
        digest = token_hash(token or "")
        found = None
        for name, info in self.readers.items():
            if hmac.compare_digest(info["token_sha256"], digest):
                found = name
        return found

    def order(self, reader: str) -> list[str]:
        return list(self.readers[reader]["order"])


def _load_readers(path: Path) -> dict[str, dict]:
    """``readers.json``: reader name → {token_sha256, order}; a damaged file is one
    :class:`ConfigError` naming it (the server does not start)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(path, f"not valid JSON ({exc}); restore it from a backup") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot be read ({exc.strerror or exc})") from None
    ok = isinstance(data, dict) and data and all(
        isinstance(info, dict) and isinstance(info.get("token_sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", info["token_sha256"])
        and isinstance(info.get("order"), list) and all(isinstance(c, str) for c in info["order"])
        for info in data.values())
    if not ok:
        raise ConfigError(path, "not a readers file: expected reader name -> {token_sha256, "
                                "order} for at least one reader; restore it from a backup")
    return dict(data)


#: Largest time (seconds) a reader may report on one case: a day.
MAX_SECONDS = 86400.0


def _number(value: object, low: float, high: float) -> float:
    """A JSON number (not a bool, not a string) that is finite and within [low, high]; else 400."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        abort(400)
    if isinstance(value, float) and not math.isfinite(value):
        abort(400)
    if not low <= value <= high:  # compared before any float(): 10**400 is an int
        abort(400)
    return float(value)


def _int(value: object, low: int, high: int) -> int:
    out = _number(value, low, high)
    if out != int(out):
        abort(400)
    return int(out)


def _lesions(value: object) -> list[list[float]]:
    if not isinstance(value, list) or len(value) > 100:
        abort(400)
    points = []
    for p in value:
        if not isinstance(p, list) or len(p) != 3:
            abort(400)
        points.append([round(_number(v, -1e4, 1e4), 3) for v in p])
    return points


def create_app(root: str | Path) -> Flask:
    """The Flask app serving the study in ``root``."""
    study = Study(Path(root))
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.url_map.merge_slashes = False  # "//etc/passwd" must reach safe_path, not be redirected
    # werkzeug's access log and Flask's "Exception on /r/<token>/..." never show a token
    install_log_redaction(logging.getLogger("werkzeug"), app.logger)

    @app.after_request
    def headers(response):
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    _add_login_routes(app, study)
    _add_case_routes(app, study)
    _add_answer_route(app, study)

    @app.get("/files/<path:rel>")
    def files(rel: str):
        return send_file(safe_path(study.public, rel), max_age=0)

    return app


def _reader_or_403(study: Study, token: str) -> str:
    name = study.reader(token)
    if name is None:
        abort(403)
    return name


def _add_login_routes(app: Flask, study: Study) -> None:
    """``/`` (the login form) and ``/login`` (token → the reader's pages)."""

    @app.get("/")
    def login_form():
        return render("study_login.html", static="/static/", error=None)

    @app.post("/login")
    def login():
        token = request.form.get("token", "")
        if study.reader(token) is None:
            return render("study_login.html", static="/static/", error="unknown token"), 403
        return redirect(f"/r/{token}/", code=303)


def _add_case_routes(app: Flask, study: Study) -> None:
    """``/r/<token>/`` (the reader's first unanswered case, or the end page) and
    ``/r/<token>/case/<n>`` (case ``n`` of the reader's order, 1-based)."""

    @app.get("/r/<token>/")
    def resume(token: str):
        reader = _reader_or_403(study, token)
        done = study.store.answered(reader)
        order = study.order(reader)
        for n, case_id in enumerate(order, start=1):
            if case_id not in done:
                return redirect(f"/r/{token}/case/{n}", code=303)
        return render("study_done.html", static="/static/", reader=reader, n=len(order),
                      token=token)

    @app.get("/r/<token>/case/<int:n>")
    def case(token: str, n: int):
        reader = _reader_or_403(study, token)
        order = study.order(reader)
        if not 1 <= n <= len(order):
            abort(404)
        case_id = order[n - 1]
        info = json.loads(safe_path(study.public, f"cases/{case_id}/case.json").read_text())
        for v in info["volumes"]:
            v["file"] = f"/files/cases/{case_id}/{v['name']}"
        previous = study.store.answered(reader).get(case_id)
        config = {"volumes": info["volumes"], "overlays": [], "sliceType": "axial",
                  "bundle": None, "caseId": case_id, "token": token, "n": n,
                  "total": len(order), "answer": previous.__dict__ if previous else None,
                  "answerUrl": f"/r/{token}/answer"}
        return render("study_case.html", static="/static/", config=config, reader=reader,
                      n=n, total=len(order), token=token,
                      n_done=len(study.store.answered(reader)))


def _add_answer_route(app: Flask, study: Study) -> None:
    """``POST /r/<token>/answer``: one validated answer to SQLite; JSON with the next page."""

    @app.post("/r/<token>/answer")
    def answer(token: str):
        reader = _reader_or_403(study, token)
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(400)
        case_id = str(data.get("case_id", ""))
        order = study.order(reader)
        if case_id not in order:
            abort(403)
        call = data.get("call")
        if call not in ("real", "synthetic"):
            abort(400)
        seconds = data.get("seconds")
        try:
            study.store.save(Answer(
                reader=reader, case_id=case_id, call=call,
                quality=_int(data.get("quality"), 1, 5),
                confidence=_int(data.get("confidence"), 1, 5),
                lesions=_lesions(data.get("lesions", [])),
                seconds=None if seconds is None else _number(seconds, 0.0, MAX_SECONDS),
            ))
        except OutputError as exc:  # disk full: the answer was not stored, and the reader is told
            app.logger.error("%s", exc)
            return jsonify({"ok": False, "error": "the answer could not be stored; "
                                                  "try again later"}), 507
        n = order.index(case_id) + 1
        following = f"/r/{token}/case/{n + 1}" if n < len(order) else f"/r/{token}/"
        return jsonify({"ok": True, "next": following})


def make_study_server(root: str | Path, host: str = "127.0.0.1", port: int = 8000):
    """The threaded werkzeug server of the study (not started; ``port=0`` picks a free one)."""
    from werkzeug.serving import make_server

    return make_server(host, port, create_app(root), threaded=True)


def run_study_server(root: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the threaded server until interrupted (werkzeug; bind to localhost by default)."""
    server = make_study_server(root, host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
