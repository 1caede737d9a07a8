-- Five accounts with 1000 units each (the same SQL on every backend).
INSERT INTO bank_accounts (id, owner, balance) VALUES
    ('alice', 'Alice', 1000),
    ('bob', 'Bob', 1000),
    ('carol', 'Carol', 1000),
    ('dave', 'Dave', 1000),
    ('erin', 'Erin', 1000);
