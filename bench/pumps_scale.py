#!/usr/bin/env python3
"""Helpers for bench/pumps_scale.sh (SQLite side, and small calculations for both backends).

    pumps_scale.py dates                              clinic today (America/Chicago) and today + 14
    pumps_scale.py seed-sqlite DB TEMPLATE_PUMP_ID --pumps N --patients P --overdue O --horizon D
    pumps_scale.py query-sqlite DB UNTIL --limit L --runs R   EXPLAIN QUERY PLAN, then R timed runs
    pumps_scale.py counts-sqlite DB UNTIL             pumps, fills, pumps due on or before UNTIL
    pumps_scale.py stats                              seconds on stdin → "median_ms p95_ms n"

seed-sqlite copies the patient, pump and fill rows that the server created through the API
for TEMPLATE_PUMP_ID: P patients, N pumps (unique ids and serials, status active, O of them
overdue by 1–30 days, the rest due uniformly over the next D days, each pump's stored
forecast JSON carrying its own due date) and one fill per pump. Ids are UUID v7-shaped and
increasing, as the server's are. Deterministic (fixed random seed).
"""
import argparse
import datetime as dt
import random
import sqlite3
import statistics
import sys
import time
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("America/Chicago")
BATCH = 50_000

# The worklist query exactly as clinic_pumps::worklist::refills issues it (diesel, SQLite).
WORKLIST_SQL = (
    "SELECT `pumps`.`id`, `patients`.`given_name`, `patients`.`family_name` "
    "FROM (`pumps` INNER JOIN `patients` ON (`pumps`.`patient_id` = `patients`.`id`)) "
    "WHERE ((`pumps`.`status` = ?) AND (`pumps`.`due_date` <= ?)) "
    "ORDER BY `pumps`.`due_date`, `pumps`.`id` LIMIT ?"
)


def today():
    return dt.datetime.now(ZONE).date()


def uid(kind, n):
    """A UUID v7-shaped id, increasing with n; kind separates patients, pumps and fills."""
    return f"01900000-{kind:04x}-7000-8000-{n:012x}"


def cmd_dates(_a):
    t = today()
    print(t.isoformat(), (t + dt.timedelta(days=14)).isoformat())


def row_of(conn, table, key, value):
    cur = conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,))
    cols = [d[0] for d in cur.description]
    row = cur.fetchone()
    if row is None:
        sys.exit(f"pumps_scale: no {table} row with {key} = {value}")
    return cols, list(row)


def insert_many(conn, table, cols, rows):
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    conn.executemany(sql, rows)


def cmd_seed_sqlite(a):
    started = time.perf_counter()
    conn = sqlite3.connect(a.db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1048576")  # 1 GiB while loading
    pcols, pump = row_of(conn, "pumps", "id", a.template)
    fcols, fill = row_of(conn, "pump_fills", "pump_id", a.template)
    acols, patient = row_of(conn, "patients", "id", pump[pcols.index("patient_id")])
    P, F, A = ({k: i for i, k in enumerate(c)} for c in (pcols, fcols, acols))

    orig_due = pump[P["due_date"]]
    due_key = f'"due_date":"{orig_due}"'
    forecast = pump[P["forecast"]]
    if forecast.count(due_key) != 1:
        sys.exit(f"pumps_scale: the template forecast does not hold {due_key} once: {forecast}")
    head, tail = forecast.split(due_key)

    rng = random.Random(20261128)
    t = today()

    conn.execute("BEGIN")
    rows = []
    for i in range(a.patients):
        r = list(patient)
        r[A["id"]] = uid(1, i)
        r[A["family_name"]] = f"Patient{i:05d}"
        r[A["email"]] = f"bench{i:05d}@example.org"
        r[A["search_key"]] = f"bench patient{i:05d} bench{i:05d}@example.org"
        rows.append(r)
    insert_many(conn, "patients", acols, rows)
    conn.execute("COMMIT")

    done = 0
    while done < a.pumps:
        n = min(BATCH * 5, a.pumps - done)
        conn.execute("BEGIN")
        for start in range(done, done + n, BATCH):
            pumps, fills = [], []
            for i in range(start, min(start + BATCH, done + n)):
                if i < a.overdue:
                    due = t - dt.timedelta(days=rng.randint(1, 30))
                else:
                    due = t + dt.timedelta(days=rng.randrange(a.horizon))
                d = due.isoformat()
                r = list(pump)
                r[P["id"]] = uid(2, i)
                r[P["patient_id"]] = uid(1, i % a.patients)
                r[P["serial_number"]] = f"BENCH-{i:07d}"
                r[P["due_date"]] = d
                r[P["forecast"]] = f'{head}"due_date":"{d}"{tail}'
                pumps.append(r)
                f = list(fill)
                f[F["id"]] = uid(3, i)
                f[F["pump_id"]] = r[P["id"]]
                fills.append(f)
            insert_many(conn, "pumps", pcols, pumps)
            insert_many(conn, "pump_fills", fcols, fills)
        conn.execute("COMMIT")
        done += n
        print(f"  sqlite: {done} pumps inserted ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"{time.perf_counter() - started:.1f}")


def cmd_query_sqlite(a):
    conn = sqlite3.connect(a.db)
    args = ("active", a.until, a.limit)
    for row in conn.execute("EXPLAIN QUERY PLAN " + WORKLIST_SQL, args):
        print("PLAN", row[-1])
    rows = conn.execute(WORKLIST_SQL, args).fetchall()  # warm the cache
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        rows = conn.execute(WORKLIST_SQL, args).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    print(f"ROWS {len(rows)}")
    print(f"TIMES {statistics.median(times):.3f} {max(times):.3f}")
    print(f"SQLITE {sqlite3.sqlite_version}")


def cmd_counts_sqlite(a):
    conn = sqlite3.connect(a.db)
    total = conn.execute("SELECT count(*) FROM pumps").fetchone()[0]
    fills = conn.execute("SELECT count(*) FROM pump_fills").fetchone()[0]
    window = conn.execute(
        "SELECT count(*) FROM pumps WHERE status = 'active' AND due_date <= ?", (a.until,)).fetchone()[0]
    print(total, fills, window)


def cmd_stats(_a):
    ms = sorted(float(x) * 1000 for x in sys.stdin.read().split())
    if not ms:
        sys.exit("pumps_scale: no timings")
    p95 = ms[max(0, -(-len(ms) * 95 // 100) - 1)]
    print(f"{statistics.median(ms):.2f} {p95:.2f} {len(ms)}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("dates").set_defaults(func=cmd_dates)
    s = sub.add_parser("seed-sqlite")
    s.add_argument("db")
    s.add_argument("template")
    s.add_argument("--pumps", type=int, default=1_000_000)
    s.add_argument("--patients", type=int, default=10_000)
    s.add_argument("--overdue", type=int, default=300)
    s.add_argument("--horizon", type=int, default=400)
    s.set_defaults(func=cmd_seed_sqlite)
    q = sub.add_parser("query-sqlite")
    q.add_argument("db")
    q.add_argument("until")
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--runs", type=int, default=20)
    q.set_defaults(func=cmd_query_sqlite)
    c = sub.add_parser("counts-sqlite")
    c.add_argument("db")
    c.add_argument("until")
    c.set_defaults(func=cmd_counts_sqlite)
    sub.add_parser("stats").set_defaults(func=cmd_stats)
    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
