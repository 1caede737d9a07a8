CREATE TABLE world (id INTEGER PRIMARY KEY, randomnumber INTEGER NOT NULL);
WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 10000)
INSERT INTO world (id, randomnumber) SELECT x, abs(random()) % 10000 + 1 FROM seq;
