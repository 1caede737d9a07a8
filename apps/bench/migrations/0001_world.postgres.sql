CREATE TABLE world (id INTEGER PRIMARY KEY, randomnumber INTEGER NOT NULL);
INSERT INTO world (id, randomnumber) SELECT x, floor(random() * 10000 + 1)::integer FROM generate_series(1, 10000) AS x;
