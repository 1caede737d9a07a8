-- Chat messages (PostgreSQL). sent_at is unix milliseconds.
CREATE TABLE chat_messages (
    id BIGSERIAL PRIMARY KEY,
    room TEXT NOT NULL,
    nick TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at BIGINT NOT NULL
);
-- The history of a room: its newest messages first.
CREATE INDEX chat_messages_room_id ON chat_messages (room, id);
