-- Guestbook entries (MySQL/MariaDB). created_at is unix seconds.
CREATE TABLE guestbook_entries (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
