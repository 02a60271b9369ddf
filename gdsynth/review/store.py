"""Reader answers in SQLite: WAL journal, one transaction per answer, one row per reader and case.

A second answer of the same reader for the same case replaces the first (upsert; ``revisions``
counts the changes), so a reader may correct a call, and nothing is lost on a crash or restart:
each answer is committed (``synchronous=FULL``) before the server replies.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gdsynth.errors import OutputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    reader      TEXT NOT NULL,
    case_id     TEXT NOT NULL,
    call        TEXT NOT NULL CHECK (call IN ('real', 'synthetic')),
    quality     INTEGER NOT NULL CHECK (quality BETWEEN 1 AND 5),
    confidence  INTEGER NOT NULL CHECK (confidence BETWEEN 1 AND 5),
    lesions     TEXT NOT NULL DEFAULT '[]',
    seconds     REAL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    revisions   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (reader, case_id)
);
"""

UPSERT = """
INSERT INTO answers (reader, case_id, call, quality, confidence, lesions, seconds,
                     created_at, updated_at)
VALUES (:reader, :case_id, :call, :quality, :confidence, :lesions, :seconds, :now, :now)
ON CONFLICT (reader, case_id) DO UPDATE SET
    call = excluded.call, quality = excluded.quality, confidence = excluded.confidence,
    lesions = excluded.lesions, seconds = excluded.seconds, updated_at = excluded.updated_at,
    revisions = answers.revisions + 1
"""


@dataclass(frozen=True)
class Answer:
    """One reader's answer for one case; ``lesions`` are clicked points in world RAS mm."""

    reader: str
    case_id: str
    call: str
    quality: int
    confidence: int
    lesions: list[list[float]] = field(default_factory=list)
    seconds: float | None = None


class AnswerStore:
    """The answers database of a study (``STUDY/answers.sqlite``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one unit of work; commits on success, rolls back on error."""
        try:
            with closing(sqlite3.connect(self.path, timeout=30.0)) as conn:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA busy_timeout=30000")
                with conn:  # a transaction: all of it or nothing (a full disk rolls it back)
                    yield conn
        except sqlite3.IntegrityError:
            raise  # a refused value (CHECK constraint): the caller's error, not the file's
        except sqlite3.DatabaseError as exc:
            if "full" in str(exc) or "I/O" in str(exc):
                raise OutputError(self.path, f"cannot write the answer ({exc}); disk full? "
                                             "earlier answers are kept") from exc
            raise OutputError(self.path, f"not a usable answers database ({exc})") from exc

    def save(self, answer: Answer) -> None:
        """Insert or replace the answer of ``answer.reader`` for ``answer.case_id``."""
        row = {
            "reader": answer.reader, "case_id": answer.case_id, "call": answer.call,
            "quality": int(answer.quality), "confidence": int(answer.confidence),
            "lesions": json.dumps([[float(v) for v in p] for p in answer.lesions]),
            "seconds": answer.seconds, "now": time.time(),
        }
        with self.connect() as conn:
            conn.execute(UPSERT, row)

    def answers(self, reader: str | None = None) -> list[Answer]:
        """All answers (of one reader), ordered by reader then time of first answer."""
        sql = "SELECT * FROM answers" + (" WHERE reader = ?" if reader else "")
        sql += " ORDER BY reader, created_at"
        with self.connect() as conn:
            rows = conn.execute(sql, (reader,) if reader else ()).fetchall()
        return [
            Answer(r["reader"], r["case_id"], r["call"], r["quality"], r["confidence"],
                   json.loads(r["lesions"]), r["seconds"])
            for r in rows
        ]

    def answered(self, reader: str) -> dict[str, Answer]:
        """A reader's answers by case id."""
        return {a.case_id: a for a in self.answers(reader)}
