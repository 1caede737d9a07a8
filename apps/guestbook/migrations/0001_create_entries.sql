-- Guestbook entries (SQLite and the default for other backends). created_at is unix seconds.
CREATE TABLE guestbook_entries (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
