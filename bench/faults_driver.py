#!/usr/bin/env python3
"""HTTP side of bench/faults.sh (Python 3.11 stdlib only). Subcommands:

  outage BASE TOKEN OUT.json --stop CMD --start CMD [--label L] [--warmup S] [--down S]
         [--stop-at-second S] [--after S] [--writers N] [--readers N] [--bound S] [--ready-within S]
      Steady load (writers create patients with distinct names, readers read them back,
      probes poll /readyz and /healthz) while CMD stops and later starts the database.
      Checks, then prints one "CHECK name PASS|FAIL detail" line per check and exits 1 on
      any FAIL: no status but 2xx/503 and no client-side error; every 503 a problem body
      (service_unavailable, Retry-After); no request slower than --bound; requests during
      the outage answered 503; /readyz red during the outage and green within
      --ready-within seconds of the database accepting connections again; every request
      started after that succeeds; /healthz always 200; every acknowledged write readable
      afterwards with its name (nothing acknowledged is lost).

  seed BASE TOKEN N
      N patients (email, consent) and one follow-up appointment each, 10+ days ahead, so N
      confirmation emails are due. Exits 1 unless all N are booked.

  outbox BASE TOKEN OUT.json [--kind K]
      Every outbox row (of kind K) into OUT.json; prints the count per state.

  status BASE TOKEN
      GET /api/v1/reminders/status, printed as one JSON line.

  sink-count LOG
      "total distinct" of a faults_smtp.py log.

  wait-idle BASE TOKEN [--timeout S]
      Polls /api/v1/reminders/status until nothing is ready and nothing is claimed.

  wait-attempts BASE TOKEN --min A [--kind K] [--timeout S]
      Polls the outbox until every row of kind K (default appointment_confirmation) is
      pending with at least A attempts; fails if a row is sent or failed meanwhile.

  verify-delivery SINK_LOG OUTBOX.json --expected N --max-duplicates D [--restart-time T]
                  [--expected-attempts A]
      Every row of OUTBOX.json is `sent`; the sink holds each row's Message-ID at least once
      and nothing else; total duplicates <= D; with --restart-time every repeated Message-ID
      was first received before T, i.e. from the killed process (only its unrecorded work
      repeats); with --expected-attempts every row has that many attempts.
"""
import argparse
import datetime as dt
import http.client
import json
import random
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo


class Api:
    """One keep-alive connection per thread; never retries (every answer is recorded)."""

    def __init__(self, base, token, timeout=30):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return c

    def call(self, method, path, body=None, auth=True):
        """(status, headers, parsed body) or raises after dropping the connection."""
        data = None if body is None else json.dumps(body).encode()
        c = self._conn()
        try:
            c.request(method, path, body=data, headers=self.headers if auth else {})
            r = c.getresponse()
            raw = r.read()
        except Exception:
            c.close()
            self.local.conn = None
            raise
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed

    def must(self, method, path, body=None, expected=200):
        status, _, parsed = self.call(method, path, body)
        if status != expected:
            sys.exit(f"faults: {method} {path} answered {status}: {parsed}")
        return parsed

    def pages(self, path):
        """Every item of a paged list."""
        items, cursor = [], None
        while True:
            sep = "&" if "?" in path else "?"
            p = f"{path}{sep}limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            page = self.must("GET", p)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items


# ---- outage -------------------------------------------------------------------------------


def outage(a):
    api = Api(a.base, a.token, timeout=a.client_timeout)
    probe = Api(a.base, a.token, timeout=a.client_timeout)
    run = f"f{int(time.time()) % 100000}" + "".join(ch for ch in a.label.lower() if ch.isalnum())
    records = []  # (t0, t1, op, status, content_type, code, retry_after, error)
    probes = []  # (t0, t1, path, status)
    acked = {}  # patient id -> family name
    lock = threading.Lock()
    stop = threading.Event()

    def record(op, fn):
        t0 = time.time()
        status = ctype = code = retry = err = None
        body = None
        try:
            status, headers, body = fn()
            ctype = headers.get("content-type")
            retry = headers.get("retry-after")
            if isinstance(body, dict):
                code = body.get("code")
        except Exception as e:  # noqa: BLE001 - every client-side failure is a finding
            err = f"{type(e).__name__}: {e}"
        t1 = time.time()
        with lock:
            records.append((t0, t1, op, status, ctype, code, retry, err))
        return status, body

    def writer(i):
        n = 0
        while not stop.is_set():
            n += 1
            family = f"{run}-w{i}-n{n}"
            body = {"given_name": "Fault", "family_name": family,
                    "email": f"{family}@example.org", "email_consent": False}
            status, resp = record("write", lambda: api.call("POST", "/api/v1/patients", body))
            if status == 201:
                with lock:
                    acked[resp["id"]] = family
            time.sleep(a.pause)

    def reader(_i):
        while not stop.is_set():
            with lock:
                ids = list(acked) if acked else []
            if ids:
                pid = random.choice(ids)
                record("read", lambda: api.call("GET", f"/api/v1/patients/{pid}"))
            else:
                record("read", lambda: api.call("GET", "/api/v1/patients?limit=5"))
            time.sleep(a.pause)

    def probe_once(client, path):
        t0 = time.time()
        try:
            status, _, _ = client.call("GET", path, auth=False)
        except Exception as e:  # noqa: BLE001
            status = f"{type(e).__name__}"
        with lock:
            probes.append((t0, time.time(), path, status))

    def prober(path, every):
        while not stop.is_set():
            probe_once(probe, path)
            time.sleep(every)

    def launcher(path, every):
        # A probe waits up to 5 s for a connection while the database is down, so each
        # probe runs in its own thread on its own connection: one starts every `every` s.
        while not stop.is_set():
            threading.Thread(target=probe_once, args=(Api(a.base, a.token, timeout=a.client_timeout), path),
                             daemon=True).start()
            time.sleep(every)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(a.writers)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(a.readers)]
    threads += [threading.Thread(target=launcher, args=("/readyz", 0.5)),
                threading.Thread(target=prober, args=("/healthz", 1.0))]
    began = time.time()
    for t in threads:
        t.start()
    time.sleep(a.warmup)
    if a.stop_at_second is not None:
        # Stop the database at this second of the minute, so that the outage covers the
        # reminder scheduler's tick (second 0, UTC) as well.
        time.sleep((a.stop_at_second - time.time()) % 60)
    marks = {"stop_begin": time.time()}
    r = subprocess.run(a.stop, shell=True, capture_output=True, text=True)
    marks["stop_end"] = time.time()
    if r.returncode != 0:
        print(f"faults: stop command failed: {r.stdout}{r.stderr}", file=sys.stderr)
    time.sleep(a.down)
    marks["start_begin"] = time.time()
    r = subprocess.run(a.start, shell=True, capture_output=True, text=True)
    marks["start_end"] = time.time()
    if r.returncode != 0:
        print(f"faults: start command failed: {r.stdout}{r.stderr}", file=sys.stderr)
    time.sleep(a.after)
    stop.set()
    for t in threads:
        t.join(timeout=a.client_timeout + 5)
    ended = time.time()

    # Nothing acknowledged is lost: list everything stored under this run's names.
    verify = Api(a.base, a.token, timeout=60)
    stored = {p["id"]: p["family_name"] for p in verify.pages(f"/api/v1/patients?q={run}-")}
    write_failed = sum(1 for r in records if r[2] == "write" and r[3] != 201)

    rel = lambda t: round(t - marks["stop_begin"], 2)  # noqa: E731
    # Started once the database was down, answered before it was started again.
    in_outage = lambda r: r[0] >= marks["stop_end"] and r[1] <= marks["start_begin"]  # noqa: E731
    ready_after = [p for p in probes if p[2] == "/readyz" and p[0] >= marks["start_end"] and p[3] == 200]
    t_ready = min((p[1] for p in ready_after), default=None)

    checks = []

    def check(name, ok, detail):
        checks.append((name, bool(ok), detail))

    statuses = {}
    for r in records:
        key = r[3] if r[3] is not None else "client_error"
        statuses[key] = statuses.get(key, 0) + 1
    bad_status = {k: v for k, v in statuses.items() if k not in (200, 201, 503)}
    errors = [r[7] for r in records if r[7]]
    check("only_2xx_or_503", not bad_status,
          f"statuses {statuses}" + (f"; first client errors {errors[:3]}" if errors else ""))
    r503 = [r for r in records if r[3] == 503]
    bad_bodies = [r for r in r503 if not (r[4] or "").startswith("application/problem+json")
                  or r[5] != "service_unavailable" or not r[6]]
    check("503_are_problem_bodies", r503 and not bad_bodies,
          f"{len(r503)} answers 503, {len(bad_bodies)} without application/problem+json, "
          f"code service_unavailable and Retry-After")
    slowest = max(records, key=lambda r: r[1] - r[0])
    slow_s = slowest[1] - slowest[0]
    check("no_hang", slow_s <= a.bound,
          f"slowest request {slow_s:.2f} s ({slowest[2]}, status {slowest[3]}, started at "
          f"{rel(slowest[0])} s), bound {a.bound} s")
    during = [r for r in records if in_outage(r)]
    during_503 = sum(1 for r in during if r[3] == 503)
    lat_503 = sorted(r[1] - r[0] for r in r503)
    p50 = lat_503[len(lat_503) // 2] if lat_503 else 0
    check("outage_answers_503", during and during_503 == len(during),
          f"{during_503} of {len(during)} requests inside the outage answered 503 "
          f"(503 latency median {p50:.2f} s, max {lat_503[-1] if lat_503 else 0:.2f} s)")
    # /readyz probes started while the database was down and answered before it was up.
    ready_out = [p for p in probes if p[2] == "/readyz" and p[0] >= marks["stop_end"]
                 and p[0] < marks["start_begin"] and p[1] <= marks["start_end"]]
    check("readyz_red_during_outage", ready_out and all(p[3] == 503 for p in ready_out),
          f"{sum(1 for p in ready_out if p[3] == 503)} of {len(ready_out)} /readyz probes started "
          f"during the outage answered 503")
    green = None if t_ready is None else t_ready - marks["start_end"]
    check("readyz_green_again", green is not None and green <= a.ready_within,
          f"/readyz 200 {green:.2f} s after the database accepted connections (bound {a.ready_within} s)"
          if green is not None else "/readyz never answered 200 again")
    after = [r for r in records if t_ready is not None and r[0] >= t_ready + 1.0]
    after_ok = sum(1 for r in after if r[3] in (200, 201))
    check("requests_resume", after and after_ok == len(after),
          f"{after_ok} of {len(after)} requests after /readyz turned green succeeded")
    health = [p for p in probes if p[2] == "/healthz"]
    check("healthz_always_200", health and all(p[3] == 200 for p in health),
          f"{sum(1 for p in health if p[3] == 200)} of {len(health)} /healthz probes answered 200")
    lost = {i: f for i, f in acked.items() if stored.get(i) != f}
    extra = {i: f for i, f in stored.items() if i not in acked}
    check("acknowledged_writes_kept", acked and not lost,
          f"{len(acked)} writes acknowledged with 201, {len(lost)} missing afterwards; "
          f"{write_failed} writes not acknowledged, of which {len(extra)} were stored anyway")

    summary = {
        "label": a.label, "run": run,
        "seconds": round(ended - began, 1),
        "marks": {k: rel(v) for k, v in marks.items()},
        "ready_again_s": None if green is None else round(green, 2),
        "statuses": {str(k): v for k, v in statuses.items()},
        "requests": len(records), "acknowledged_writes": len(acked),
        "unacknowledged_writes": write_failed, "stored_without_ack": len(extra),
        "during_outage": len(during), "during_outage_503": during_503,
        "slowest_s": round(slow_s, 2), "median_503_s": round(p50, 2),
        "after_ready": len(after), "after_ready_ok": after_ok,
        "readyz": [(rel(p[0]), round(p[1] - p[0], 2), p[3]) for p in probes if p[2] == "/readyz"
                   and marks["stop_begin"] - 2 <= p[0] <= marks["start_end"] + 3],
        "checks": {n: ok for n, ok, _ in checks},
        "first_client_errors": errors[:5],
        "non_503_failures": [
            {"t": rel(r[0]), "op": r[2], "status": r[3], "code": r[5], "error": r[7]}
            for r in records if r[3] not in (200, 201, 503)][:20],
    }
    with open(a.out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"  [{a.label}] {len(records)} requests in {summary['seconds']} s; stop took "
          f"{marks['stop_end'] - marks['stop_begin']:.2f} s, database down "
          f"{marks['start_end'] - marks['stop_end']:.2f} s; statuses {statuses}")
    for name, ok, detail in checks:
        print(f"CHECK {a.label}:{name} {'PASS' if ok else 'FAIL'} {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


# ---- seed, outbox, status, sink ----------------------------------------------------------

ZONE = ZoneInfo("America/Chicago")
PROVIDERS = 10
SLOTS = [(h, m) for h in range(7, 19) for m in (0, 30)]  # 07:00 … 18:30, 24 a day
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def seed(a):
    api = Api(a.base, a.token, timeout=60)
    hours = [{"weekday": w, "start": "07:00", "end": "19:00"} for w in WEEKDAYS]
    tag = f"k{int(time.time()) % 100000}"
    providers = [api.must("POST", "/api/v1/providers", {
        "name": f"Dr. Fault {i + 1}", "role": "pain physician", "time_zone": "America/Chicago",
        "hours": hours}, 201)["id"] for i in range(PROVIDERS)]
    today = dt.datetime.now(ZONE).date()

    def book(j):
        patient = api.must("POST", "/api/v1/patients", {
            "given_name": "Kit", "family_name": f"{tag}-{j}", "email": f"{tag}-{j}@example.org",
            "email_consent": True}, 201)["id"]
        k = j // PROVIDERS
        day = today + dt.timedelta(days=10 + k // len(SLOTS))
        h, m = SLOTS[k % len(SLOTS)]
        start = dt.datetime(day.year, day.month, day.day, h, m, tzinfo=ZONE).isoformat()
        status, _, body = api.call("POST", "/api/v1/appointments", {
            "patient_id": patient, "provider_id": providers[j % PROVIDERS],
            "appointment_type": "follow_up", "start": start})
        if status != 201:
            print(f"faults: booking {start} answered {status}: {body}", file=sys.stderr)
        return status == 201

    t0 = time.time()
    with ThreadPoolExecutor(4) as pool:
        booked = sum(pool.map(book, range(a.n)))
    print(f"  booked {booked} of {a.n} appointments in {time.time() - t0:.1f} s")
    return 0 if booked == a.n else 1


def outbox(a):
    api = Api(a.base, a.token, timeout=60)
    path = "/api/v1/reminders" + (f"?kind={a.kind}" if a.kind else "")
    rows = api.pages(path)
    with open(a.out, "w") as f:
        json.dump(rows, f)
    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    print(json.dumps({"rows": len(rows), "states": states,
                      "attempts": sorted({r["attempts"] for r in rows})}))
    return 0


def status(a):
    print(json.dumps(Api(a.base, a.token).must("GET", "/api/v1/reminders/status")))
    return 0


def wait_idle(a):
    """Until the outbox has nothing ready and nothing claimed (every outcome recorded)."""
    api = Api(a.base, a.token)
    deadline = time.time() + a.timeout
    while True:
        st = api.must("GET", "/api/v1/reminders/status")
        if st["ready"] == 0 and st["sending"] == 0:
            print(json.dumps(st))
            return 0
        if time.time() > deadline:
            print(f"faults: outbox not idle after {a.timeout} s: {json.dumps(st)}", file=sys.stderr)
            return 1
        time.sleep(1)


def wait_attempts(a):
    """Until every row of KIND has at least MIN attempts; fails if one is sent or failed first."""
    api = Api(a.base, a.token)
    deadline = time.time() + a.timeout
    while True:
        rows = api.pages(f"/api/v1/reminders?kind={a.kind}")
        wrong = [r for r in rows if r["state"] not in ("pending", "sending")]
        if wrong:
            print(f"faults: {len(wrong)} rows left pending while SMTP was down, e.g. "
                  f"{wrong[0]['state']} {wrong[0]['last_error']}", file=sys.stderr)
            return 1
        done = [r for r in rows if r["attempts"] >= a.min and r["state"] == "pending"]
        if rows and len(done) == len(rows):
            errors = sorted({(r["last_error"] or "")[:80] for r in rows})
            waits = sorted({round((dt.datetime.fromisoformat(r["next_attempt_at"])
                                   - dt.datetime.fromisoformat(r["updated_at"])).total_seconds())
                            for r in rows})
            print(json.dumps({"rows": len(rows), "attempts": sorted({r["attempts"] for r in rows}),
                              "retry_in_s": waits, "last_error": errors}))
            return 0
        if time.time() > deadline:
            print(f"faults: not every row reached {a.min} attempts in {a.timeout} s", file=sys.stderr)
            return 1
        time.sleep(2)


def read_sink(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def sink_count(a):
    msgs = read_sink(a.log)
    print(len(msgs), len({m["message_id"] for m in msgs}))
    return 0


def verify_delivery(a):
    msgs = read_sink(a.log)
    with open(a.outbox) as f:
        rows = json.load(f)
    copies, first = {}, {}
    for m in msgs:
        copies[m["message_id"]] = copies.get(m["message_id"], 0) + 1
        first.setdefault(m["message_id"], m["t"])
    expected_ids = {r["message_id"] for r in rows}
    checks = []

    def check(name, ok, detail):
        checks.append((name, bool(ok), detail))

    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    attempts = {}
    for r in rows:
        attempts[r["attempts"]] = attempts.get(r["attempts"], 0) + 1
    check("outbox_all_sent", len(rows) == a.expected and states == {"sent": a.expected},
          f"{len(rows)} rows (expected {a.expected}), states {states}, rows by attempts "
          f"{dict(sorted(attempts.items()))}")
    missing = expected_ids - set(copies)
    unknown = set(copies) - expected_ids
    check("every_email_arrived", not missing and not unknown,
          f"{len(set(copies))} distinct Message-IDs at the sink, {len(missing)} of the outbox's "
          f"{len(expected_ids)} missing, {len(unknown)} unknown")
    dups = len(msgs) - len(copies)
    most = max(copies.values(), default=0)
    check("duplicates_bounded", dups <= a.max_duplicates and most <= 2,
          f"{len(msgs)} messages received, {dups} repeats (bound {a.max_duplicates}), "
          f"at most {most} copies of one Message-ID")
    if a.restart_time is not None:
        late = [mid for mid, c in copies.items() if c > 1 and first[mid] > a.restart_time]
        before = sum(1 for m in msgs if m["t"] <= a.restart_time)
        check("only_the_killed_run_repeats", not late,
              f"{before} messages received from the killed process, {len(msgs) - before} after the "
              f"restart; {len(late)} repeated Message-IDs were first sent after the restart")
        # The rows claimed twice are the batch the killed process held; every repeat is one.
        reclaimed = {r["message_id"] for r in rows if r["attempts"] > 1}
        repeated = {mid for mid, c in copies.items() if c > 1}
        check("repeats_within_the_killed_batch",
              len(reclaimed) <= a.max_duplicates and repeated <= reclaimed,
              f"{len(reclaimed)} rows claimed twice (the batch in flight at the kill, at most "
              f"{a.max_duplicates}); {len(repeated)} repeated Message-IDs, "
              f"{len(repeated - reclaimed)} of them outside that batch")
    if a.expected_attempts is not None:
        att = {}
        for r in rows:
            att[r["attempts"]] = att.get(r["attempts"], 0) + 1
        check("attempts", set(att) == {a.expected_attempts},
              f"attempts per row {att} (expected all {a.expected_attempts})")
    for name, ok, detail in checks:
        print(f"CHECK {a.label}:{name} {'PASS' if ok else 'FAIL'} {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("outage")
    o.add_argument("base")
    o.add_argument("token")
    o.add_argument("out")
    o.add_argument("--stop", required=True)
    o.add_argument("--start", required=True)
    o.add_argument("--label", default="outage")
    o.add_argument("--warmup", type=float, default=8)
    o.add_argument("--stop-at-second", type=float)
    o.add_argument("--down", type=float, default=10)
    o.add_argument("--after", type=float, default=20)
    o.add_argument("--writers", type=int, default=4)
    o.add_argument("--readers", type=int, default=2)
    o.add_argument("--pause", type=float, default=0.02)
    o.add_argument("--bound", type=float, default=10)
    o.add_argument("--ready-within", type=float, default=15)
    o.add_argument("--client-timeout", type=float, default=30)
    s = sub.add_parser("seed")
    s.add_argument("base")
    s.add_argument("token")
    s.add_argument("n", type=int)
    b = sub.add_parser("outbox")
    b.add_argument("base")
    b.add_argument("token")
    b.add_argument("out")
    b.add_argument("--kind")
    st = sub.add_parser("status")
    st.add_argument("base")
    st.add_argument("token")
    w = sub.add_parser("wait-idle")
    w.add_argument("base")
    w.add_argument("token")
    w.add_argument("--timeout", type=float, default=240)
    wa = sub.add_parser("wait-attempts")
    wa.add_argument("base")
    wa.add_argument("token")
    wa.add_argument("--kind", default="appointment_confirmation")
    wa.add_argument("--min", type=int, required=True)
    wa.add_argument("--timeout", type=float, default=300)
    c = sub.add_parser("sink-count")
    c.add_argument("log")
    v = sub.add_parser("verify-delivery")
    v.add_argument("log")
    v.add_argument("outbox")
    v.add_argument("--expected", type=int, required=True)
    v.add_argument("--max-duplicates", type=int, required=True)
    v.add_argument("--restart-time", type=float)
    v.add_argument("--expected-attempts", type=int)
    v.add_argument("--label", default="delivery")
    a = ap.parse_args()
    return {"outage": outage, "seed": seed, "outbox": outbox, "status": status,
            "sink-count": sink_count,
            "wait-idle": wait_idle, "wait-attempts": wait_attempts, "verify-delivery": verify_delivery}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
