"""Schema of `catalog.db`: migrations registered in code, applied in order.

`PRAGMA user_version` holds the number of migrations applied. A migration is a
function taking a `sqlite_utils.Database`; add new ones at the end, never edit
an old one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    run_script(
        db.conn,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta (key, value) VALUES ('seq', 0);

        -- An item is one distinct content (keyed by hash); duplicates are extra paths.
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,              -- photo | document
            format TEXT NOT NULL,            -- from content: jpeg, png, pdf, ..., unknown, empty
            size INTEGER NOT NULL,
            width INTEGER, height INTEGER,   -- as displayed (after EXIF orientation)
            taken_at TEXT,                   -- ISO 8601, local time as recorded
            taken_at_source TEXT, -- exif-original|xmp-…|iptc|gps-utc|pdf|file-mtime (docs)
            camera_make TEXT, camera_model TEXT, lens TEXT,
            gps_lat REAL, gps_lon REAL,
            orientation INTEGER,
            pages INTEGER,
            title TEXT, author TEXT,
            metadata TEXT,                   -- JSON: everything the metadata stage found
            added_at REAL NOT NULL,
            session_id INTEGER,
            seq INTEGER NOT NULL
        );
        CREATE INDEX items_seq ON items (seq);
        CREATE INDEX items_taken ON items (taken_at);

        -- Where each item lives. `raw` is the exact bytes of the path so that
        -- non-UTF-8 names survive; `display` is for people.
        CREATE TABLE paths (
            id INTEGER PRIMARY KEY,
            raw BLOB NOT NULL UNIQUE,
            display TEXT NOT NULL,
            item_id INTEGER NOT NULL REFERENCES items (id),
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            session_id INTEGER,
            missing INTEGER NOT NULL DEFAULT 0,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL
        );
        CREATE INDEX paths_item ON paths (item_id);

        -- One import of files/folders: its counters and its pause/cancel flags.
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            roots TEXT NOT NULL,             -- JSON list of display paths
            state TEXT NOT NULL,             -- scanning | processing | done | cancelled
            paused INTEGER NOT NULL DEFAULT 0,
            started_at REAL NOT NULL,
            scanned_at REAL,
            files_seen INTEGER NOT NULL DEFAULT 0,
            items_new INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            relinked INTEGER NOT NULL DEFAULT 0,
            unchanged INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            unreadable INTEGER NOT NULL DEFAULT 0,
            seq INTEGER NOT NULL
        );

        -- Files a scan could not catalogue at all (unreadable, vanished), with the reason.
        CREATE TABLE scan_problems (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions (id),
            display TEXT NOT NULL,
            reason TEXT NOT NULL
        );

        -- The ledger: one row per (item, stage). The truth about work; Huey only
        -- carries (job id, token) to a worker.
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items (id),
            stage TEXT NOT NULL,
            version TEXT NOT NULL,           -- stage/model version the result belongs to
            lane TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            session_id INTEGER,
            state TEXT NOT NULL,             -- queued | running | done | failed | dead | cancelled
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            error TEXT,
            not_before REAL NOT NULL DEFAULT 0,  -- retry backoff
            dispatched INTEGER NOT NULL DEFAULT 0,  -- a message for it is in Huey
            token INTEGER NOT NULL DEFAULT 0,    -- matches the one message allowed to run it
            suspect INTEGER NOT NULL DEFAULT 0,  -- was running when a host died: run it alone
            owner TEXT,                      -- worker host holding it (becomes a lease)
            lease_until REAL,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            seq INTEGER NOT NULL,
            UNIQUE (item_id, stage)
        );
        CREATE INDEX jobs_feed ON jobs (lane, state, dispatched, priority, id);
        CREATE INDEX jobs_seq ON jobs (seq);
        CREATE INDEX jobs_session ON jobs (session_id, state);
        CREATE INDEX jobs_state ON jobs (state);

        -- Stage results keyed by item, stage and version: re-running is an upsert.
        CREATE TABLE results (
            item_id INTEGER NOT NULL REFERENCES items (id),
            stage TEXT NOT NULL,
            version TEXT NOT NULL,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (item_id, stage, version)
        );

        CREATE TABLE thumbnails (
            item_id INTEGER NOT NULL REFERENCES items (id),
            size TEXT NOT NULL,              -- thumb | preview
            path TEXT NOT NULL,              -- relative to the library folder
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            PRIMARY KEY (item_id, size)
        );

        CREATE TABLE lanes (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0);
        INSERT INTO lanes (name) VALUES ('interactive'), ('import'), ('batch'), ('learning');

        CREATE TABLE watched (
            id INTEGER PRIMARY KEY,
            raw BLOB NOT NULL UNIQUE,
            display TEXT NOT NULL,
            added_at REAL NOT NULL
        );
        """,
    )


@migration
def m002_counters(db: sqlite_utils.Database) -> None:
    """Job counts and per-item "missing" kept by triggers, so status and progress cost
    the same at a million jobs as at ten (a GROUP BY over 200k jobs took 240 ms)."""
    run_script(
        db.conn,
        """
        CREATE TABLE job_counts (
            lane TEXT NOT NULL,
            stage TEXT NOT NULL,
            state TEXT NOT NULL,
            session_id INTEGER NOT NULL,     -- 0 for jobs of no import session
            n INTEGER NOT NULL,
            PRIMARY KEY (lane, stage, state, session_id)
        );
        INSERT INTO job_counts (lane, stage, state, session_id, n)
            SELECT lane, stage, state, coalesce(session_id, 0), count(*) FROM jobs
            GROUP BY lane, stage, state, coalesce(session_id, 0);

        CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
            INSERT INTO job_counts (lane, stage, state, session_id, n)
            VALUES (new.lane, new.stage, new.state, coalesce(new.session_id, 0), 1)
            ON CONFLICT (lane, stage, state, session_id) DO UPDATE SET n = n + 1;
        END;

        CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, lane, stage, session_id ON jobs
        WHEN old.state IS NOT new.state OR old.lane IS NOT new.lane
          OR old.stage IS NOT new.stage OR old.session_id IS NOT new.session_id
        BEGIN
            UPDATE job_counts SET n = n - 1
            WHERE lane = old.lane AND stage = old.stage AND state = old.state
              AND session_id = coalesce(old.session_id, 0);
            INSERT INTO job_counts (lane, stage, state, session_id, n)
            VALUES (new.lane, new.stage, new.state, coalesce(new.session_id, 0), 1)
            ON CONFLICT (lane, stage, state, session_id) DO UPDATE SET n = n + 1;
        END;

        CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
            UPDATE job_counts SET n = n - 1
            WHERE lane = old.lane AND stage = old.stage AND state = old.state
              AND session_id = coalesce(old.session_id, 0);
        END;

        -- An item is missing when none of its paths exists any more.
        ALTER TABLE items ADD COLUMN missing INTEGER NOT NULL DEFAULT 0;
        UPDATE items SET missing = NOT EXISTS
            (SELECT 1 FROM paths p WHERE p.item_id = items.id AND p.missing = 0);
        CREATE INDEX items_missing ON items (missing) WHERE missing = 1;

        CREATE TRIGGER paths_missing_insert AFTER INSERT ON paths BEGIN
            UPDATE items SET missing = NOT EXISTS
                (SELECT 1 FROM paths p WHERE p.item_id = new.item_id AND p.missing = 0)
            WHERE id = new.item_id;
        END;

        CREATE TRIGGER paths_missing_update AFTER UPDATE OF missing, item_id ON paths BEGIN
            UPDATE items SET missing = NOT EXISTS
                (SELECT 1 FROM paths p WHERE p.item_id = items.id AND p.missing = 0)
            WHERE id IN (old.item_id, new.item_id);
        END;
        """,
    )


@migration
def m003_jobs_finished_index(db: sqlite_utils.Database) -> None:
    """Progress rates read the jobs finished in the last 30 s through this index."""
    db.conn.execute(
        "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL"
    )


JOBS_V4 = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    item_id INTEGER REFERENCES items (id),   -- NULL for task jobs
    task_key TEXT,                   -- task jobs: what the task is about, e.g. 'label:7'
    stage TEXT NOT NULL,
    version TEXT NOT NULL,           -- stage/model version the job is for
    result_version TEXT,             -- version of the result stored now (NULL: none yet)
    lane TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    session_id INTEGER,
    state TEXT NOT NULL,   -- queued | running | done | failed | dead | cancelled | skipped
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    crashes INTEGER NOT NULL DEFAULT 0,  -- attempts that ended with the host dying
    error TEXT,
    not_before REAL NOT NULL DEFAULT 0,  -- retry backoff
    blocked INTEGER NOT NULL DEFAULT 0,  -- requirements (same item) without a result yet
    dispatched INTEGER NOT NULL DEFAULT 0,  -- a message for it is in Huey
    token INTEGER NOT NULL DEFAULT 0,    -- matches the one message allowed to run it
    suspect INTEGER NOT NULL DEFAULT 0,  -- >0: was running when a host died; run it in a
                                         -- batch of at most this many, with nothing else
    batch_n INTEGER NOT NULL DEFAULT 1,  -- size of the batch it was claimed in
    rerun INTEGER NOT NULL DEFAULT 0,    -- task jobs: asked again while running
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_done INTEGER, progress_total INTEGER, progress_note TEXT,
    owner TEXT,                      -- worker host holding it
    lease_until REAL,                -- renewed while it runs; expired = the host is gone
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    seq INTEGER NOT NULL,
    UNIQUE (item_id, stage)
)
"""

JOB_INDEXES_V4 = (
    # The feeder's queries: ready jobs of a lane in priority order, and the same per
    # import session (used when a paused session's jobs lead the queue).
    """CREATE INDEX jobs_ready ON jobs (lane, priority, id)
       WHERE state = 'queued' AND dispatched = 0 AND blocked = 0 AND suspect = 0""",
    """CREATE INDEX jobs_ready_session ON jobs (lane, session_id, priority, id)
       WHERE state = 'queued' AND dispatched = 0 AND blocked = 0 AND suspect = 0""",
    "CREATE INDEX jobs_suspect ON jobs (id) WHERE suspect > 0",
    "CREATE INDEX jobs_running ON jobs (owner) WHERE state = 'running'",
    "CREATE INDEX jobs_dispatched ON jobs (id) WHERE dispatched = 1",
    "CREATE UNIQUE INDEX jobs_task ON jobs (stage, task_key) WHERE item_id IS NULL",
    "CREATE INDEX jobs_seq ON jobs (seq)",
    "CREATE INDEX jobs_session ON jobs (session_id, state)",
    "CREATE INDEX jobs_state ON jobs (state)",
    "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL",
)


@migration
def m004_job_core(db: sqlite_utils.Database) -> None:
    """Batches, dependencies, versions, task jobs, leases: the jobs table is rebuilt
    (SQLite cannot drop NOT NULL from item_id in place) and gains its columns."""
    conn = db.conn
    triggers = [
        row[0]
        for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs'"
        )
    ]
    old_columns = [
        "id", "item_id", "stage", "version", "lane", "priority", "session_id", "state",
        "attempts", "max_attempts", "error", "not_before", "dispatched", "token", "suspect",
        "owner", "lease_until", "created_at", "started_at", "finished_at", "seq",
    ]  # fmt: skip
    cols = ", ".join(old_columns)
    conn.execute(JOBS_V4.replace("CREATE TABLE jobs", "CREATE TABLE jobs_v4"))
    conn.execute(
        f"""INSERT INTO jobs_v4 ({cols}, result_version)
            SELECT {cols}, CASE WHEN state = 'done' THEN version END FROM jobs"""
    )
    conn.execute("DROP TABLE jobs")
    conn.execute("ALTER TABLE jobs_v4 RENAME TO jobs")
    for sql in JOB_INDEXES_V4:
        conn.execute(sql)
    for sql in triggers:
        conn.execute(sql)
    run_script(
        conn,
        """
        -- Re-indexing runs as a session of its own, creating its jobs in chunks.
        ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'import';
        ALTER TABLE sessions ADD COLUMN planned INTEGER;
        ALTER TABLE sessions ADD COLUMN stage TEXT;
        ALTER TABLE sessions ADD COLUMN target_version TEXT;
        ALTER TABLE sessions ADD COLUMN cursor INTEGER;

        -- The version of each stage the library's jobs were last brought to.
        CREATE TABLE stage_versions (stage TEXT PRIMARY KEY, version TEXT NOT NULL);
        INSERT INTO stage_versions (stage, version)
            SELECT stage, max(version) FROM jobs GROUP BY stage;

        -- Worker hosts serving the library: heartbeat and what they hold (models).
        CREATE TABLE hosts (
            owner TEXT PRIMARY KEY,
            pid INTEGER,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            stopped_at REAL,
            info TEXT NOT NULL DEFAULT '{}'
        );
        """,
    )


@migration
def m005_models(db: sqlite_utils.Database) -> None:
    """What the models make: vectors, detections, tags, and the user's own tag words."""
    run_script(
        db.conn,
        """
        -- One L2-normalised float16 vector per (item, model spec); `digest` is the
        -- weights digest it was computed with. `seq` lets a vector index catch up.
        CREATE TABLE vectors (
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            digest TEXT NOT NULL DEFAULT '',
            seq INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (item_id, model)
        ) WITHOUT ROWID;
        CREATE INDEX vectors_model_seq ON vectors (model, seq);

        -- Objects found by the detector; box in pixels of the upright image.
        CREATE TABLE detections (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            label TEXT NOT NULL,
            score REAL NOT NULL,
            x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL
        );
        CREATE INDEX detections_item ON detections (item_id);

        -- Tags of an item, each with where it came from: zero-shot, detect, classifier,
        -- later user.
        CREATE TABLE item_tags (
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            source TEXT NOT NULL,
            score REAL NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (item_id, source, tag)
        ) WITHOUT ROWID;
        CREATE INDEX item_tags_tag ON item_tags (tag, score);

        -- Words the user added to the zero-shot vocabulary (`shoebox tags add`).
        CREATE TABLE tag_words (
            word TEXT PRIMARY KEY,
            added_at REAL NOT NULL
        );
        """,
    )


@migration
def m006_text(db: sqlite_utils.Database) -> None:
    """What reading documents makes: page text, passage vectors, and the full-text index."""
    run_script(
        db.conn,
        """
        -- One row per page read: from the PDF's text layer or by OCR. `rotation` is the
        -- clockwise turn applied to read it upright; `width`/`height` the size of the
        -- upright page image the word boxes are in. `words` is JSON
        -- [[x0, y0, x1, y1, conf, start, end], ...] with start/end offsets into `text`.
        CREATE TABLE ocr_pages (
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            page INTEGER NOT NULL,
            source TEXT NOT NULL,
            rotation INTEGER NOT NULL DEFAULT 0,
            confidence REAL,
            lang TEXT NOT NULL DEFAULT '',
            width INTEGER NOT NULL DEFAULT 0,
            height INTEGER NOT NULL DEFAULT 0,
            text TEXT NOT NULL,
            words TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (item_id, page)
        ) WITHOUT ROWID;

        -- One float16 vector per passage of a document's text (model = text model spec);
        -- key = item_id << 12 | passage number; (page, start, end) locate the passage.
        CREATE TABLE text_vectors (
            key INTEGER NOT NULL,
            model TEXT NOT NULL,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            digest TEXT NOT NULL DEFAULT '',
            seq INTEGER NOT NULL DEFAULT 0,
            page INTEGER NOT NULL DEFAULT 0,
            start INTEGER NOT NULL DEFAULT 0,
            "end" INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (key, model)
        ) WITHOUT ROWID;
        CREATE INDEX text_vectors_model_seq ON text_vectors (model, seq);
        CREATE INDEX text_vectors_item ON text_vectors (item_id);

        -- Full text: one row per item (rowid = item id) over its file names, folder
        -- names, tags and page text; diacritics folded, prefixes indexed for typing.
        CREATE VIRTUAL TABLE search_text USING fts5(
            name, folders, tags, body,
            tokenize = 'unicode61 remove_diacritics 2',
            prefix = '2 3'
        );

        -- Items whose search_text row is out of date; triggers add them (not with
        -- INSERT OR IGNORE: an outer upsert's conflict clause overrides a trigger's), and
        -- engine/search/fts.py rebuilds their rows (paths need Python to decode).
        CREATE TABLE search_dirty (item_id INTEGER PRIMARY KEY);
        CREATE TRIGGER search_dirty_path_ins AFTER INSERT ON paths BEGIN
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_path_upd AFTER UPDATE OF raw, display, item_id, missing
            ON paths BEGIN
            INSERT INTO search_dirty (item_id) SELECT OLD.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = OLD.item_id);
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_path_del AFTER DELETE ON paths BEGIN
            INSERT INTO search_dirty (item_id) SELECT OLD.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = OLD.item_id);
        END;
        CREATE TRIGGER search_dirty_tag_ins AFTER INSERT ON item_tags BEGIN
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_tag_upd AFTER UPDATE ON item_tags BEGIN
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_tag_del AFTER DELETE ON item_tags BEGIN
            INSERT INTO search_dirty (item_id) SELECT OLD.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = OLD.item_id);
        END;
        CREATE TRIGGER search_dirty_page_ins AFTER INSERT ON ocr_pages BEGIN
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_page_upd AFTER UPDATE ON ocr_pages BEGIN
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_page_del AFTER DELETE ON ocr_pages BEGIN
            INSERT INTO search_dirty (item_id) SELECT OLD.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = OLD.item_id);
        END;
        CREATE TRIGGER search_text_item_del AFTER DELETE ON items BEGIN
            DELETE FROM search_text WHERE rowid = OLD.id;
            DELETE FROM search_dirty WHERE item_id = OLD.id;
        END;

        -- Existing items get their names indexed.
        INSERT INTO search_dirty (item_id) SELECT id FROM items;
        """,
    )


@migration
def m007_labels(db: sqlite_utils.Database) -> None:
    """The user's own categories: labels, their decisions, trained versions, the
    automatic labels a version applied, and the review queue it left."""
    run_script(
        db.conn,
        """
        -- `key` is the casefolded name (one "Receipts" per library, any spelling);
        -- `seq` moves on every change of the label (decisions, trainings): the GUI
        -- refreshes what it shows of labels when MAX(seq) moves.
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            key TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            active_version INTEGER,       -- NULL: no trained version yet
            threshold REAL,               -- the active version's; NULL: suggest only
            estimated_precision REAL,
            threshold_reason TEXT NOT NULL DEFAULT '',
            require_bound INTEGER NOT NULL DEFAULT 0,  -- auto only once the audited lower
                                                       -- bound meets the target
            seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX labels_seq ON labels (seq);

        -- What the user said: 1 = this item is the label, -1 = it is not. Permanent
        -- until the user changes it; nothing automatic writes here. `score`,
        -- `threshold` and `version` are what the active model thought when the user
        -- decided (audited precision counts the decisions made above the threshold).
        CREATE TABLE label_decisions (
            label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            verdict INTEGER NOT NULL,
            origin TEXT NOT NULL,         -- example | review | page | removed | cli
            score REAL,
            threshold REAL,
            version INTEGER,
            decided_at REAL NOT NULL,
            PRIMARY KEY (label_id, item_id)
        ) WITHOUT ROWID;
        CREATE INDEX label_decisions_item ON label_decisions (item_id);

        -- Labels a version applied by itself (never over a decision).
        CREATE TABLE item_labels (
            label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            score REAL NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (label_id, item_id)
        ) WITHOUT ROWID;
        CREATE INDEX item_labels_item ON item_labels (item_id);

        -- The review queue a version chose, most useful first; `why` is JSON: the ids
        -- of the nearest labelled examples.
        CREATE TABLE label_suggestions (
            label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            rank INTEGER NOT NULL,
            score REAL NOT NULL,
            reason TEXT NOT NULL,
            why TEXT NOT NULL DEFAULT '[]',
            version INTEGER NOT NULL,
            PRIMARY KEY (label_id, item_id)
        ) WITHOUT ROWID;
        CREATE INDEX label_suggestions_rank ON label_suggestions (label_id, rank);

        -- Every training: its held-out metrics, where its model file is (relative to
        -- label-models/), and whether it became active (or why not).
        CREATE TABLE label_versions (
            label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            created_at REAL NOT NULL,
            models TEXT NOT NULL,         -- JSON: the embedding model of each block
            file TEXT NOT NULL,
            status TEXT NOT NULL,         -- active | retired | rejected
            reason TEXT NOT NULL DEFAULT '',
            metrics TEXT NOT NULL,        -- JSON
            PRIMARY KEY (label_id, version)
        ) WITHOUT ROWID;

        -- `review undo`: each entry is one user action (a decision, a confirmed page)
        -- with what it replaced, newest last.
        CREATE TABLE label_undo (
            id INTEGER PRIMARY KEY,
            label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
            at REAL NOT NULL,
            what TEXT NOT NULL,           -- words for the Undo menu item
            before TEXT NOT NULL          -- JSON
        );

        -- Labels are searchable words too (search_text.tags).
        CREATE TRIGGER search_dirty_decision_ins AFTER INSERT ON label_decisions BEGIN
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_decision_upd AFTER UPDATE ON label_decisions BEGIN
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_decision_del AFTER DELETE ON label_decisions BEGIN
            INSERT INTO search_dirty (item_id) SELECT OLD.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = OLD.item_id);
        END;
        CREATE TRIGGER search_dirty_auto_ins AFTER INSERT ON item_labels BEGIN
            INSERT INTO search_dirty (item_id) SELECT NEW.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = NEW.item_id);
        END;
        CREATE TRIGGER search_dirty_auto_del AFTER DELETE ON item_labels BEGIN
            INSERT INTO search_dirty (item_id) SELECT OLD.item_id
                WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE item_id = OLD.item_id);
        END;
        """,
    )


@migration
def m008_remote_workers(db: sqlite_utils.Database) -> None:
    """Worker hosts on other machines: the keys they sign with, and the library's own."""
    run_script(
        db.conn,
        """
        -- One row per enrolled worker; a removed worker keeps its row with `revoked_at`
        -- so that its messages are refused as revoked, not as unknown.
        CREATE TABLE workers (
            name TEXT PRIMARY KEY,
            key_id TEXT NOT NULL UNIQUE,
            secret BLOB NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL,
            last_seen_at REAL,
            jobs_done INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            info TEXT NOT NULL DEFAULT '{}'
        );
        -- The library's dispatch key (it signs the jobs it sends) and its id.
        CREATE TABLE remote_identity (
            library_id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            secret BLOB NOT NULL,
            created_at REAL NOT NULL
        );
        """,
    )


@migration
def m009_metrics(db: sqlite_utils.Database) -> None:
    """Per-minute figures of each stage on each worker host (engine/jobs/metrics.py)."""
    run_script(
        db.conn,
        """
        -- One row per (minute, host, stage); stage '' is the host's own capacity row.
        -- `samples`: up to 64 job durations (s) of that row, for p50/p95.
        CREATE TABLE metrics (
            minute INTEGER NOT NULL,
            host TEXT NOT NULL,
            stage TEXT NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            busy_s REAL NOT NULL DEFAULT 0,
            capacity_s REAL NOT NULL DEFAULT 0,
            samples TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (minute, host, stage)
        );
        """,
    )


@migration
def m010_finished_index_ends_only(db: sqlite_utils.Database) -> None:
    """Rates read jobs that ended; `waiting` jobs (a model or a source folder that is not
    here) carry a `finished_at` too and, 200,000 of them in the last 30 s, made each
    rate read walk them all (110 ms on the GUI thread per poll). The index now holds
    only the ends a rate counts (progress.FINISHED_STATES, spelled out: a partial
    index is used only where the query repeats its condition word for word)."""
    db.conn.execute("DROP INDEX IF EXISTS jobs_finished")
    db.conn.execute(JOBS_FINISHED_INDEX)


JOBS_FINISHED_INDEX = (
    "CREATE INDEX jobs_finished ON jobs (finished_at) "
    "WHERE state IN ('done', 'failed', 'dead', 'skipped')"
)


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: `executescript` would commit the open transaction,
    and a migration must apply whole or not at all."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement!r}")


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations inside the caller's transaction; returns the version."""
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"This library was written by a newer Shoebox (schema {version}); "
            f"this version understands up to {len(MIGRATIONS)}."
        )
    if version == len(MIGRATIONS):
        return version
    # A catalog about to change shape is backed up first (backups/, engine/backup.py).
    from engine.backup import before_migration

    before_migration(conn, version, len(MIGRATIONS))
    import sqlite_utils  # only when migrating: it costs ~90 ms of CLI start-up

    db = sqlite_utils.Database(conn)
    for number, fn in enumerate(MIGRATIONS[version:], start=version + 1):
        fn(db)
        conn.execute(f"PRAGMA user_version = {number}")
    return len(MIGRATIONS)
