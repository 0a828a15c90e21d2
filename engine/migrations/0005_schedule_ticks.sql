-- Each tick of a flight's schedule is taken once: the primary key makes a second claim fail.
CREATE TABLE schedule_ticks (
    tenant   TEXT NOT NULL,
    schedule TEXT NOT NULL,
    tick     TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    PRIMARY KEY (tenant, schedule, tick)
);
