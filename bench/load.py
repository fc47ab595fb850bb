#!/usr/bin/env python3
"""Mixed, open-loop load against a running clinic server (bench/load.sh drives it).

    load.py run BASE ADMIN_TOKEN SERVER_PID OUT.json [--seconds S] [--rate R] [--warmup W]
                [--workers N] [--label NAME] [--records REQUESTS.csv]
    load.py report RESULT.json... > section.md

`run` first sets the clinic up through the HTTP API (a staff token, 8 providers, 500 patients,
200 pumps with a programme and a fill, 10 published articles, 1,344 booked mornings), then
issues requests on a fixed schedule, R a second for W + S seconds: request i is due at
start + i / R whatever happened to the earlier ones (open loop). Its latency counts from that
due time, so time spent waiting for a free generator thread counts too (no coordinated
omission); how late requests left ("lag") is reported, to show whether the generator kept up.
The first W seconds are warm-up: run, reported, but not in the statistics. The kinds and their
weights are in MIX. Every request expects one status (200 or 201); anything else, a connection
error or a timeout is an error. The server's RSS (VmRSS of SERVER_PID) and thread count are
sampled every 2 s.

Bookings never collide: each takes the next of a shuffled list of distinct afternoon slots
(follow_up, on the half hour, 12:00-18:30 America/Chicago, days 2-170 ahead, over the 8
providers), which pass every booking rule, so 409 is an error. Public appointment requests are
rate-limited per client address (burst 3, then 6 a minute): each is sent on a fresh connection
from its own loopback source address (127.1.x.y, a pool large enough that an address is
reused at most once every 60 s), as that many visitors would, so none is refused.

Exit status of `run`: 0 when there were no errors and RSS did not grow (verdict_memory()),
else 1. `report` turns result files into the Markdown that bench/load.sh puts in
docs/performance.md.
"""
import argparse
import datetime as dt
import http.client
import json
import math
import os
import queue
import random
import resource
import sys
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("America/Chicago")
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
PROVIDERS = 8
PATIENTS = 500
PUMPS = 200
ARTICLES = 10  # created here, besides the seeded one
SEED_DAYS = 28  # days 1..28 ahead carry booked mornings: what the day views and availability look at
MORNING = [f"{h:02d}:{m:02d}" for h in range(7, 10) for m in (0, 30)]  # 6 follow_ups, 07:00-09:30
AFTERNOON = [f"{h:02d}:{m:02d}" for h in range(12, 19) for m in (0, 30)]  # 14, 12:00-18:30
BOOK_DAYS = range(2, 171)  # the types' horizon is 180 days, their notice 60 minutes
RSS_EVERY = 2.0
STALE_AFTER = 3.0  # reconnect a keep-alive connection idle this long (actix closes at 5 s)

# kind: (weight in %, what it stands for)
MIX = {
    "day_view": (18, "GET /api/v1/appointments?provider_id&from&to (one provider's day, up to 50)"),
    "patient_read": (14, "GET /api/v1/patients/{id}"),
    "patient_search": (4, "GET /api/v1/patients?q=…&limit=20"),
    "pump_read": (6, "GET /api/v1/pumps/{id}"),
    "worklist": (2, "GET /api/v1/worklists/refills?within_days=14"),
    "availability": (8, "GET /api/v1/availability?provider_id&appointment_type=follow_up (7 days)"),
    "book": (6, "POST /api/v1/appointments (a distinct free slot, Idempotency-Key)"),
    "fill": (4, "POST /api/v1/pumps/{id}/fills"),
    "article_page": (24, "GET /articles/{slug} (HTML, 11 articles)"),
    "article_index": (4, "GET /articles (HTML)"),
    "article_api": (8, "GET /api/v1/articles?limit=10 (JSON)"),
    "public_request": (2, "POST /api/v1/appointment-requests (no token, fresh connection)"),
}


def fmt_utc(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(day: dt.date, hhmm: str = "00:00") -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, h, m, tzinfo=ZONE)


class Http:
    """Keep-alive connections, one per thread; public requests on a fresh one from a given address."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.local = threading.local()
        self.reconnects = 0

    def _conn(self):
        c = getattr(self.local, "conn", None)
        last = getattr(self.local, "last", 0.0)
        if c is not None and time.monotonic() - last > STALE_AFTER:
            c.close()
            c = None
        if c is None:
            c = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.reconnects += 1
        return c

    def call(self, method, path, body=None, headers=None, source=None):
        """→ (status, body bytes); status 0 and the exception's name on a transport failure."""
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        if source is not None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=30, source_address=(source, 0))
            hdrs["Connection"] = "close"
            try:
                c.request(method, path, body=data, headers=hdrs)
                r = c.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError) as e:
                return 0, type(e).__name__.encode()
            finally:
                c.close()
        c = self._conn()
        try:
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            raw = r.read()
            self.local.last = time.monotonic()
            if r.will_close:
                c.close()
                self.local.conn = None
            return r.status, raw
        except (http.client.HTTPException, OSError) as e:
            c.close()
            self.local.conn = None
            return 0, type(e).__name__.encode()


class Api:
    def __init__(self, http_, token):
        self.http = http_
        self.auth = {"Authorization": f"Bearer {token}"}

    def must(self, method, path, body=None, expect=(200, 201), headers=None):
        h = dict(self.auth)
        h.update(headers or {})
        status, raw = self.http.call(method, path, body, h)
        if status not in expect:
            sys.exit(f"load: setup {method} {path} answered {status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None


ARTICLE_BODY = """## {title}

This page explains, in plain words, what to expect. {filler}

### Before your visit

- Bring your pump card and a list of your medicines.
- Tell us about any new symptoms since your last refill.
- Plan about an hour for the whole visit.

### During the visit

The nurse checks the pump with the programmer, cleans the skin over the reservoir and
refills it through a thin needle. {filler}

### After the visit

Call the clinic if you notice fever, redness over the pump, or if your symptoms change
quickly. {filler}
"""


def setup(base, admin_token):
    """Create everything the mix needs; → the data the request makers draw from."""
    h = Http(base)
    admin = Api(h, admin_token)
    began = time.monotonic()
    staff_token = admin.must("POST", "/api/v1/tokens", {
        "name": "load front desk",
        "scopes": ["patients:read", "patients:write", "scheduling:write", "pumps:read", "pumps:write"]})["secret"]
    staff = Api(h, staff_token)
    today = dt.datetime.now(ZONE).date()

    hours = [{"weekday": w, "start": "07:00", "end": "19:00"} for w in WEEKDAYS]
    providers = [staff.must("POST", "/api/v1/providers", {
        "name": f"Dr. Load {i + 1}", "role": "pain physician", "time_zone": "America/Chicago",
        "hours": hours})["id"] for i in range(PROVIDERS)]

    def patient(i):
        return staff.must("POST", "/api/v1/patients", {
            "given_name": random.Random(i).choice(["Ann", "Luis", "Mei", "Omar", "Ruth", "Tomas"]),
            "family_name": f"Loadpatient{i:04d}", "email": f"load{i:04d}@example.org",
            "phone": f"(312) 555-{i % 10000:04d}", "date_of_birth": f"{1940 + i % 60}-0{1 + i % 9}-1{i % 10}",
            "email_consent": True})["id"]

    def pump(i):
        p = staff.must("POST", "/api/v1/pumps", {
            "patient_id": patients[i], "model": "synchromed-ii-40", "serial_number": f"LOAD-{i:06d}",
            "implanted_on": (today - dt.timedelta(days=400 + i)).isoformat()})["id"]
        now = dt.datetime.now(dt.timezone.utc)
        staff.must("POST", f"/api/v1/pumps/{p}/programs", {
            "effective_at": fmt_utc(now - dt.timedelta(days=30)), "kind": "flex",
            "steps": [{"start": "06:00", "end": "22:00", "rate_per_hour": "20"},
                      {"start": "22:00", "end": "06:00", "rate_per_hour": "35"}],
            "bolus": {"dose": "25", "max_per_day": 4}})
        staff.must("POST", f"/api/v1/pumps/{p}/fills", {
            "filled_at": fmt_utc(now - dt.timedelta(days=20 + i % 30)), "drug": "baclofen",
            "concentration": "2000", "concentration_unit": "mcg/mL", "volume_ml": "40",
            "residual_ml": "4", "clinician": "Load RN"})
        return p

    with ThreadPoolExecutor(8) as pool:
        patients = list(pool.map(patient, range(PATIENTS)))
        pumps = list(pool.map(pump, range(PUMPS)))

    slugs = ["intrathecal-pump-therapy"]
    topics = ["Your first refill visit", "Living with a baclofen pump", "Travelling with a pump",
              "When the pump alarms", "Pump replacement surgery", "Trial dose: what happens",
              "Managing pain between refills", "MRI scans and your pump", "Questions for your team",
              "Exercise after an implant"]
    for i, title in enumerate(topics[:ARTICLES]):
        filler = " ".join(["Most people go home the same day and return to their usual activities."] * (3 + i))
        a = admin.must("POST", "/api/v1/editor/articles", {
            "title": title, "summary": f"{title}: what to expect, step by step.",
            "body_markdown": ARTICLE_BODY.format(title=title, filler=filler), "author": "Clinic care team",
            "tags": ["refills" if i % 2 else "visits"], "conditions": ["severe-spasticity"]})
        admin.must("POST", f"/api/v1/editor/articles/{a['id']}/publish")
        slugs.append(a["slug"])

    # Booked mornings on days 1..SEED_DAYS: what day views list and availability works around.
    jobs = [(p, d, hhmm) for d in range(1, SEED_DAYS + 1) for p in providers for hhmm in MORNING]

    def book(job):
        p, d, hhmm = job
        staff.must("POST", "/api/v1/appointments", {
            "patient_id": patients[(d * 31 + MORNING.index(hhmm) * 7 + providers.index(p)) % PATIENTS], "provider_id": p,
            "appointment_type": "follow_up", "start": fmt_utc(local(today + dt.timedelta(days=d), hhmm))},
            expect=(201,))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(book, jobs))

    # The distinct slots the load books, shuffled over providers and days.
    slots = [(p, fmt_utc(local(today + dt.timedelta(days=d), hhmm)))
             for d in BOOK_DAYS for p in providers for hhmm in AFTERNOON]
    random.Random(7).shuffle(slots)
    return {
        "staff_token": staff_token, "providers": providers, "patients": patients, "pumps": pumps,
        "slugs": slugs, "slots": slots, "today": today, "seeded_appointments": len(jobs),
        "setup_seconds": round(time.monotonic() - began, 1),
    }


class Maker:
    """Builds one request of a kind: (method, path, body, headers, expected status, source address)."""

    def __init__(self, data, request_rate):
        self.d = data
        self.auth = {"Authorization": f"Bearer {data['staff_token']}"}
        self.lock = threading.Lock()
        self.next_slot = 0
        self.next_source = 0
        self.requests_sent = 0
        # Enough loopback addresses that each sends at most one request a minute (limit: 6).
        n = max(64, math.ceil(request_rate * 60 * 1.5))
        self.sources = [f"127.1.{1 + i // 250}.{1 + i % 250}" for i in range(n)]
        self.days = [self.d["today"] + dt.timedelta(days=k) for k in range(1, SEED_DAYS + 1)]

    def make(self, kind, rng):
        d = self.d
        if kind == "day_view":
            day = rng.choice(self.days)
            q = urllib.parse.urlencode({"provider_id": rng.choice(d["providers"]), "from": fmt_utc(local(day)),
                                        "to": fmt_utc(local(day + dt.timedelta(days=1))), "limit": 50})
            return "GET", f"/api/v1/appointments?{q}", None, self.auth, 200, None
        if kind == "patient_read":
            return "GET", f"/api/v1/patients/{rng.choice(d['patients'])}", None, self.auth, 200, None
        if kind == "patient_search":
            q = f"loadpatient0{rng.randrange(50):02d}"  # 10 patients each
            return "GET", f"/api/v1/patients?q={q}&limit=20", None, self.auth, 200, None
        if kind == "pump_read":
            return "GET", f"/api/v1/pumps/{rng.choice(d['pumps'])}", None, self.auth, 200, None
        if kind == "worklist":
            return "GET", "/api/v1/worklists/refills?within_days=14", None, self.auth, 200, None
        if kind == "availability":
            day = rng.choice(self.days)
            q = urllib.parse.urlencode({"provider_id": rng.choice(d["providers"]), "appointment_type": "follow_up",
                                        "from": fmt_utc(local(day)), "to": fmt_utc(local(day + dt.timedelta(days=7)))})
            return "GET", f"/api/v1/availability?{q}", None, self.auth, 200, None
        if kind == "book":
            with self.lock:
                if self.next_slot >= len(d["slots"]):
                    return None
                provider, start = d["slots"][self.next_slot]
                self.next_slot += 1
            body = {"patient_id": rng.choice(d["patients"]), "provider_id": provider,
                    "appointment_type": "follow_up", "start": start}
            hdrs = dict(self.auth, **{"Idempotency-Key": str(uuid.uuid4())})
            return "POST", "/api/v1/appointments", body, hdrs, 201, None
        if kind == "fill":
            body = {"filled_at": fmt_utc(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)),
                    "drug": "baclofen", "concentration": "2000", "concentration_unit": "mcg/mL",
                    "volume_ml": "40", "residual_ml": f"{rng.randint(2, 12)}", "clinician": "Load RN"}
            return "POST", f"/api/v1/pumps/{rng.choice(d['pumps'])}/fills", body, self.auth, 201, None
        if kind == "article_page":
            return "GET", f"/articles/{rng.choice(d['slugs'])}", None, {}, 200, None
        if kind == "article_index":
            return "GET", "/articles", None, {}, 200, None
        if kind == "article_api":
            return "GET", "/api/v1/articles?limit=10", None, {}, 200, None
        if kind == "public_request":
            with self.lock:
                source = self.sources[self.next_source % len(self.sources)]
                self.next_source += 1
                n = self.requests_sent = self.requests_sent + 1
            body = {"given_name": "Visitor", "family_name": f"Number{n}", "email": f"visitor{n}@example.org",
                    "phone": f"(773) 555-{n % 10000:04d}", "preferred_times": "Weekday mornings",
                    "reason": rng.choice(["consultation", "follow_up", "psychological_evaluation"]),
                    "consent_to_contact": True}
            return "POST", "/api/v1/appointment-requests", body, {}, 201, source
        raise ValueError(kind)


def rss_kib(pid):
    """→ (VmRSS in KiB, threads) of a process, or None."""
    rss = threads = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        return None
    return None if rss is None else (rss, threads)


def cpu_seconds(pid):
    """utime + stime of a process, seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def slow_buckets(rs, rate, warmup, over_s=0.1):
    out = {}
    for r in rs:
        if r[3] > over_s:
            b = int((r[0] / rate - warmup) // 10 * 10)
            out[b] = out.get(b, 0) + 1
    return {str(k): v for k, v in sorted(out.items())}


def pct(sorted_vals, p):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_vals:
        return None
    k = max(0, math.ceil(p * len(sorted_vals)) - 1)
    return sorted_vals[k]


def run(a):
    data = setup(a.base, a.token)
    print(f"  setup: {PROVIDERS} providers, {PATIENTS} patients, {PUMPS} pumps, {len(data['slugs'])} articles, "
          f"{data['seeded_appointments']} appointments in {data['setup_seconds']} s", flush=True)
    maker = Maker(data, a.rate * MIX["public_request"][0] / 100)
    h = Http(a.base)
    kinds = list(MIX)
    weights = [MIX[k][0] for k in kinds]
    total = int(round(a.rate * (a.warmup + a.seconds)))
    warm_n = int(round(a.rate * a.warmup))
    sched_rng = random.Random(20261128)
    plan = sched_rng.choices(kinds, weights, k=total)

    jobs = queue.Queue()
    records = []  # (i, kind, status, latency_s, service_s, lag_s)
    rec_lock = threading.Lock()
    samples = {}  # (kind, status) → first few failing requests

    def worker(wid):
        rng = random.Random(wid)
        while True:
            job = jobs.get()
            if job is None:
                return
            i, due, kind = job
            req = maker.make(kind, rng)
            if req is None:  # out of booking slots: never at the default rate
                with rec_lock:
                    records.append((i, kind, -1, 0.0, 0.0, 0.0))
                continue
            method, path, body, hdrs, expect, source = req
            sent = time.perf_counter()
            status, raw = h.call(method, path, body, hdrs, source)
            done = time.perf_counter()
            with rec_lock:
                records.append((i, kind, status, done - due, done - sent, sent - due))
                if status != expect:
                    s = samples.setdefault(f"{kind} {status}", [])
                    if len(s) < 3:
                        s.append({"request": f"{method} {path}", "body": body,
                                  "answer": raw[:400].decode("utf-8", "replace")})

    rss = []  # (t relative to the measured start, KiB, requests dispatched)
    stop = threading.Event()
    dispatched = [0]

    def sampler():
        while not stop.is_set():
            v = rss_kib(a.pid)
            if v is not None:
                rss.append((time.perf_counter() - t_measure, v[0], dispatched[0], v[1]))
            stop.wait(RSS_EVERY)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(a.workers)]
    for t in threads:
        t.start()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    srv_cpu0 = cpu_seconds(a.pid)
    t0 = time.perf_counter()
    epoch0 = time.time()
    t_measure = t0 + a.warmup
    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    print(f"  load: {a.rate}/s for {a.warmup} s warm-up + {a.seconds} s, {a.workers} generator threads", flush=True)
    next_report = 10.0
    for i in range(total):
        due = t0 + i / a.rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((i, due, plan[i]))
        dispatched[0] = i + 1
        elapsed = time.perf_counter() - t_measure
        if elapsed >= next_report:
            with rec_lock:
                errs = sum(1 for r in records if r[0] >= warm_n and r[2] != (201 if r[1] in ("book", "fill", "public_request") else 200))
            last = rss[-1][1] / 1024 if rss else float("nan")
            print(f"    t={elapsed:5.0f}s  sent {i + 1 - warm_n:6d}  errors {errs:3d}  rss {last:6.1f} MiB", flush=True)
            next_report += 10.0
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join(timeout=60)
    t_end = time.perf_counter()
    stop.set()
    st.join()
    final_rss = rss_kib(a.pid)
    if final_rss is not None:
        rss.append((t_end - t_measure, final_rss[0], total, final_rss[1]))
    srv_cpu1 = cpu_seconds(a.pid)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)

    expect_of = {k: (201 if k in ("book", "fill", "public_request") else 200) for k in kinds}
    measured = [r for r in records if r[0] >= warm_n]
    warm = [r for r in records if r[0] < warm_n]
    missing = total - len(records)

    def stats(rs):
        lat = sorted(r[3] * 1000 for r in rs)
        return {
            "n": len(rs),
            "errors": sum(1 for r in rs if r[2] != expect_of[r[1]]),
            "p50": pct(lat, 0.50), "p99": pct(lat, 0.99), "p999": pct(lat, 0.999),
            "max": lat[-1] if lat else None,
            "mean": sum(lat) / len(lat) if lat else None,
        }

    by_kind = {k: stats([r for r in measured if r[1] == k]) for k in kinds}
    statuses = {}
    for r in measured:
        if r[2] != expect_of[r[1]]:
            key = f"{r[1]} {r[2] if r[2] > 0 else ('no slot' if r[2] < 0 else 'transport error')}"
            statuses[key] = statuses.get(key, 0) + 1
    lags = sorted(r[5] * 1000 for r in measured)
    ok = sum(1 for r in measured if r[2] == expect_of[r[1]])
    # Achieved throughput: answers to the measured requests over the time from the measured
    # start to the last of those answers (due time + latency).
    last_done = max((t0 + r[0] / a.rate + r[3] for r in measured), default=t_measure + a.seconds)
    span = max(a.seconds, last_done - t_measure)
    result = {
        "label": a.label, "rate": a.rate, "seconds": a.seconds, "warmup": a.warmup, "workers": a.workers,
        "setup_seconds": data["setup_seconds"], "seeded_appointments": data["seeded_appointments"],
        "articles": len(data["slugs"]), "requests": len(measured), "ok": ok,
        "throughput": len(measured) / span, "ok_throughput": ok / span, "span_seconds": span,
        "wall_seconds": t_end - t0,
        "overall": stats(measured), "by_kind": by_kind,
        "errors": sum(statuses.values()) + missing, "errors_by_status": statuses, "unfinished": missing,
        "error_samples": samples,
        "warmup_requests": len(warm), "warmup_errors": stats(warm)["errors"] if warm else 0,
        "lag_ms": {"p50": pct(lags, 0.5), "p99": pct(lags, 0.99), "max": lags[-1] if lags else None},
        "rss": [(round(t, 1), k, n, th) for t, k, n, th in rss],  # (s, KiB, requests sent, threads)
        "server_cpu_seconds": (srv_cpu1 - srv_cpu0) if srv_cpu0 is not None and srv_cpu1 is not None else None,
        "generator_cpu_seconds": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        "reconnects": h.reconnects, "public_sources": len(maker.sources),
        "booked": maker.next_slot, "mix": {k: MIX[k][0] for k in kinds},
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "start_epoch": epoch0 + a.warmup,
        # Answers slower than 100 ms per 10 s of the measured time: stalls show as clusters.
        "slow_by_10s": slow_buckets(measured, a.rate, a.warmup),
    }
    result["memory"] = verdict_memory(result)
    result["pass"] = result["errors"] == 0 and result["memory"]["pass"]
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    if a.records:
        with open(a.records, "w") as f:
            f.write("i,due_s,kind,status,latency_ms,service_ms,lag_ms\n")
            for i, kind, st_, lat, svc, lag in sorted(records):
                f.write(f"{i},{i / a.rate - a.warmup:.3f},{kind},{st_},{lat * 1000:.2f},{svc * 1000:.2f},{lag * 1000:.2f}\n")
    print_summary(result)
    return 0 if result["pass"] else 1


# Memory verdict: mean RSS over the last quarter of the measured time against the second quarter
# (the first quarter still fills caches and pools). Growth fails when it is above both
# GROWTH_MIB and GROWTH_PCT of the second quarter's mean: a few MiB come and go with allocator
# arenas and the bounded caches (SQLite's page cache is up to 2 MiB per pooled connection, the
# content and availability caches are capped), while a leak of ~1 KiB a request shows as about
# 6 MiB between those quarters in a 2-minute run at 100 requests/s and more in longer runs.
GROWTH_MIB = 8.0
GROWTH_PCT = 10.0


def verdict_memory(r):
    d = r["seconds"]
    pts = [(p[0], p[1] / 1024) for p in r["rss"] if p[0] >= 0]
    q2 = [v for t, v in pts if d / 4 <= t < d / 2]
    q4 = [v for t, v in pts if t >= 3 * d / 4]
    if not q2 or not q4:
        return {"pass": False, "why": "too few RSS samples"}
    m2, m4 = sum(q2) / len(q2), sum(q4) / len(q4)
    growth = m4 - m2
    pct_ = 100 * growth / m2
    # Least-squares slope over the measured time, MiB a minute, for information.
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    slope = (sum((t - mt) * (v - mv) for t, v in pts) / var * 60) if var else 0.0
    warm = [p[1] / 1024 for p in r["rss"] if p[0] < 0]
    return {
        "q2_mib": m2, "q4_mib": m4, "growth_mib": growth, "growth_pct": pct_, "slope_mib_per_min": slope,
        "start_mib": warm[0] if warm else pts[0][1], "max_mib": max(v for _, v in pts), "end_mib": pts[-1][1],
        "pass": not (growth > GROWTH_MIB and pct_ > GROWTH_PCT),
    }


def ms(v):
    return "-" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def rss_series(r, every=10):
    """RSS at every multiple of `every` seconds (the nearest sample; warm-up negative), MiB."""
    pts = r["rss"]
    if not pts:
        return []
    out = []
    target = math.ceil(pts[0][0] / every) * every
    while target <= pts[-1][0] + 1:
        p = min(pts, key=lambda p: abs(p[0] - target))
        out.append((target, p[1] / 1024, p[3]))
        target += every
    return out


def print_summary(r):
    o, m = r["overall"], r["memory"]
    print(f"  {r['label']}: {r['requests']} requests in {r['seconds']} s = {r['throughput']:.1f}/s "
          f"(ok {r['ok_throughput']:.1f}/s); p50 {ms(o['p50'])} ms, p99 {ms(o['p99'])} ms, "
          f"p999 {ms(o['p999'])} ms, max {ms(o['max'])} ms; errors {r['errors']} {r['errors_by_status'] or ''}")
    print(f"  generator lag p50 {ms(r['lag_ms']['p50'])} ms, p99 {ms(r['lag_ms']['p99'])} ms, "
          f"max {ms(r['lag_ms']['max'])} ms; warm-up {r['warmup_requests']} requests, {r['warmup_errors']} errors")
    for k, s in r["by_kind"].items():
        print(f"    {k:15s} n {s['n']:6d}  p50 {ms(s['p50']):>7s}  p99 {ms(s['p99']):>7s}  "
              f"p999 {ms(s['p999']):>7s}  max {ms(s['max']):>7s}  errors {s['errors']}")
    if "q2_mib" in m:
        print(f"  RSS MiB: start {m['start_mib']:.1f}, 2nd quarter {m['q2_mib']:.1f}, last quarter {m['q4_mib']:.1f} "
              f"(growth {m['growth_mib']:+.1f} MiB, {m['growth_pct']:+.1f} %), slope {m['slope_mib_per_min']:+.2f} MiB/min, "
              f"max {m['max_mib']:.1f}: {'ok' if m['pass'] else 'GROWS'}")
    else:
        print(f"  RSS: no verdict, {m['why']} (the run is too short; use LOAD_SECONDS >= 20)")
    print("  RSS MiB (threads) every 10 s: " + ", ".join(f"{t}s {v:.1f} ({th})" for t, v, th in rss_series(r)))
    if r["slow_by_10s"]:
        off = r["start_epoch"] % 60
        print("  answers over 100 ms, by 10 s of the run (second of the UTC minute the bucket starts at): "
              + ", ".join(f"{k}s (:{(int(k) + off) % 60:02.0f}) {v}" for k, v in r["slow_by_10s"].items()))
    if r["server_cpu_seconds"] is not None:
        wall = r["wall_seconds"]
        print(f"  CPU: server {r['server_cpu_seconds']:.1f} s ({100 * r['server_cpu_seconds'] / wall:.0f} % of one core), "
              f"generator {r['generator_cpu_seconds']:.1f} s ({100 * r['generator_cpu_seconds'] / wall:.0f} %); "
              f"load average {' '.join(r['loadavg'])}")
    for key, s in r["error_samples"].items():
        for e in s:
            print(f"  error sample [{key}]: {e['request']} → {e['answer'][:200]}")
    print(f"  verdict: {'PASS' if r['pass'] else 'FAIL'}")


def slow_text(r):
    b = r["slow_by_10s"]
    if not b:
        return "No answer took over 100 ms."
    return (f"{sum(b.values())} answers took over 100 ms, in {len(b)} of the {math.ceil(r['seconds'] / 10)} "
            f"10-second windows (" + ", ".join(f"{v} from {k} s" for k, v in b.items()) + ").")


def report(paths, logged):
    rs = [json.load(open(p)) for p in paths]
    r0 = rs[0]
    out = []
    w = out.append
    w("| backend | requests | req/s | p50 ms | p99 ms | p999 ms | max ms | errors | generator lag p99 / max ms | server CPU | RSS MiB: start → Q2 → Q4 (growth) | verdict |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rs:
        o, m = r["overall"], r["memory"]
        cpu = f"{100 * r['server_cpu_seconds'] / r['wall_seconds']:.0f} %" if r["server_cpu_seconds"] is not None else "-"
        mem = (f"{m['start_mib']:.1f} → {m['q2_mib']:.1f} → {m['q4_mib']:.1f} ({m['growth_mib']:+.1f}, {m['growth_pct']:+.1f} %)"
               if "q2_mib" in m else m.get("why", "-"))
        errs = str(r["errors"]) + (" (" + ", ".join(f"{k}: {v}" for k, v in r["errors_by_status"].items()) + ")"
                                   if r["errors_by_status"] else "")
        w(f"| {r['label']} | {r['requests']} | {r['throughput']:.1f} | {ms(o['p50'])} | {ms(o['p99'])} | {ms(o['p999'])} | "
          f"{ms(o['max'])} | {errs} | {ms(r['lag_ms']['p99'])} / {ms(r['lag_ms']['max'])} | {cpu} | {mem} | "
          f"{'pass' if r['pass'] else 'FAIL'} |")
    w("")
    w("Latency by kind, ms from the due time (with fewer than 1,000 requests of a kind, its p999 is its maximum):")
    w("")
    w("| kind | weight |" + "".join(f" {r['label']} n | p50 | p99 | p999 |" for r in rs))
    w("|---|---:|" + "---:|---:|---:|---:|" * len(rs))
    for k in r0["by_kind"]:
        row = f"| {k} | {r0['mix'][k]} % |"
        for r in rs:
            s = r["by_kind"][k]
            row += f" {s['n']} | {ms(s['p50'])} | {ms(s['p99'])} | {ms(s['p999'])} |"
        w(row)
    w("")
    for r in rs:
        w(f"RSS of the {r['label']} server every 10 s, MiB (its threads; negative times are the warm-up): "
          + ", ".join(f"{t} s {v:.1f} ({th})" for t, v, th in rss_series(r)) + ".")
        w("")
    for r in rs:
        m = r["memory"]
        cpu = (f"{100 * r['server_cpu_seconds'] / r['wall_seconds']:.0f} %"
               if r["server_cpu_seconds"] is not None else "unknown")
        mem = (f"RSS {m['start_mib']:.1f} MiB at the start of the warm-up, {m['q2_mib']:.1f} MiB (mean of the second "
               f"quarter), {m['q4_mib']:.1f} MiB (mean of the last): {m['growth_mib']:+.1f} MiB "
               f"({m['growth_pct']:+.1f} %), least-squares slope {m['slope_mib_per_min']:+.2f} MiB a minute, "
               f"{'no growth' if m['pass'] else 'GROWS'} by the rule (fail above {GROWTH_MIB:.0f} MiB and "
               f"{GROWTH_PCT:.0f} %)") if "q2_mib" in m else f"RSS: {m.get('why')}"
        w(f"- {r['label']}: {r['requests']} requests in {r['seconds']:.0f} s after a {r['warmup']:.0f} s warm-up "
          f"({r['warmup_requests']} requests, {r['warmup_errors']} errors); {r['throughput']:.1f}/s achieved at "
          f"{r['rate']:g}/s offered; {r['errors']} errors; {r['booked']} bookings (warm-up included); "
          f"{r['by_kind']['public_request']['n']} public requests from {r['public_sources']} loopback addresses. "
          f"{mem}. Server CPU {cpu} of a core, generator "
          f"{100 * r['generator_cpu_seconds'] / r['wall_seconds']:.0f} %; 1-minute load average at the end "
          f"{r['loadavg'][0]}; the server logged {logged.get(r['label'], '?')} lines at WARN or above. "
          f"{slow_text(r)} "
          f"Setup through the API took {r['setup_seconds']} s. Verdict: **{'pass' if r['pass'] else 'FAIL'}**.")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("base")
    r.add_argument("token")
    r.add_argument("pid", type=int)
    r.add_argument("out")
    r.add_argument("--seconds", type=float, default=120)
    r.add_argument("--rate", type=float, default=100)
    r.add_argument("--warmup", type=float, default=15)
    r.add_argument("--workers", type=int, default=48)
    r.add_argument("--label", default="server")
    r.add_argument("--records", help="also write every request (due time from the measured start, kind, status, ms) as CSV")
    p = sub.add_parser("report")
    p.add_argument("results", nargs="+")
    p.add_argument("--logged", action="append", default=[], help="LABEL=N: lines the server logged at WARN+")
    a = ap.parse_args()
    if a.cmd == "run":
        sys.exit(run(a))
    print(report(a.results, dict(x.split("=", 1) for x in a.logged)))


if __name__ == "__main__":
    main()
