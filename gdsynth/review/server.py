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
import os
import re
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, request, send_file

from gdsynth.errors import InputFileMissingError, OutputError
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
        data = json.loads(readers.read_text(encoding="utf-8"))
        self.readers = {name: info for name, info in data.items()}
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


def _int(value: object, low: int, high: int) -> int:
    try:
        out = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        abort(400)
    if not low <= out <= high:
        abort(400)
    return out


def _lesions(value: object) -> list[list[float]]:
    if not isinstance(value, list) or len(value) > 100:
        abort(400)
    points = []
    for p in value:
        if not isinstance(p, list) or len(p) != 3:
            abort(400)
        try:
            points.append([round(float(v), 3) for v in p])
        except (TypeError, ValueError):
            abort(400)
    return points


def create_app(root: str | Path) -> Flask:
    """The Flask app serving the study in ``root``."""
    study = Study(Path(root))
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.url_map.merge_slashes = False  # "//etc/passwd" must reach safe_path, not be redirected
    # werkzeug's access log and Flask's "Exception on /r/<token>/..." never show a token
    install_log_redaction(logging.getLogger("werkzeug"), app.logger)

    def reader_or_403(token: str) -> str:
        name = study.reader(token)
        if name is None:
            abort(403)
        return name

    @app.after_request
    def headers(response):
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.get("/")
    def login_form():
        return render("study_login.html", static="/static/", error=None)

    @app.post("/login")
    def login():
        token = request.form.get("token", "")
        if study.reader(token) is None:
            return render("study_login.html", static="/static/", error="unknown token"), 403
        return redirect(f"/r/{token}/", code=303)

    @app.get("/r/<token>/")
    def resume(token: str):
        reader = reader_or_403(token)
        done = study.store.answered(reader)
        order = study.order(reader)
        for n, case_id in enumerate(order, start=1):
            if case_id not in done:
                return redirect(f"/r/{token}/case/{n}", code=303)
        return render("study_done.html", static="/static/", reader=reader, n=len(order),
                      token=token)

    @app.get("/r/<token>/case/<int:n>")
    def case(token: str, n: int):
        reader = reader_or_403(token)
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

    @app.post("/r/<token>/answer")
    def answer(token: str):
        reader = reader_or_403(token)
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
                seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
            ))
        except OutputError as exc:  # disk full: the answer was not stored, and the reader is told
            app.logger.error("%s", exc)
            return jsonify({"ok": False, "error": "the answer could not be stored; "
                                                  "try again later"}), 507
        n = order.index(case_id) + 1
        following = f"/r/{token}/case/{n + 1}" if n < len(order) else f"/r/{token}/"
        return jsonify({"ok": True, "next": following})

    @app.get("/files/<path:rel>")
    def files(rel: str):
        return send_file(safe_path(study.public, rel), max_age=0)

    return app


def make_study_server(root: str | Path, host: str = "127.0.0.1", port: int = 8000):
    """The threaded werkzeug server of the study (not started; ``port=0`` picks a free one)."""
    from werkzeug.serving import make_server

    return make_server(host, port, create_app(root), threaded=True)


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the threaded server until interrupted (werkzeug; bind to localhost by default)."""
    server = make_study_server(root, host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
