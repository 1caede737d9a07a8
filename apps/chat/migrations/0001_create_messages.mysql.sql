-- Chat messages (MySQL/MariaDB: an indexed column cannot be TEXT; room
-- names are at most 32 characters). sent_at is unix milliseconds.
CREATE TABLE chat_messages (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    room VARCHAR(32) NOT NULL,
    nick TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at BIGINT NOT NULL
);
-- The history of a room: its newest messages first.
CREATE INDEX chat_messages_room_id ON chat_messages (room, id);
