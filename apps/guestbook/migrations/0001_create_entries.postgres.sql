-- Guestbook entries (PostgreSQL). created_at is unix seconds.
CREATE TABLE guestbook_entries (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
