#!/usr/bin/env python3
"""Seed a running clinic server for bench/scheduling.sh, through the HTTP API only.

    seed_appointments.py BASE TOKEN OUT_DIR [--appointments N] [--days D] [--clients C]

Makes 5 providers working every day 07:00-19:00 in America/Chicago, 50 patients, raises the
booking horizon of every appointment type to 730 days, and books N appointments (default
20,000) spread over the providers and the next D days (default 600), with C concurrent
keep-alive clients. The seeded appointments fill each provider's mornings (07:00-12:40, at
most 7 a day, no two overlapping), so every afternoon stays free for the booking benchmark.

Writes into OUT_DIR:
  seed.json        providers, patients, counts and timings, the availability window
  slots.txt        "provider_id patient_id start" per line: distinct free afternoon slots
                   (follow_up, every 30 minutes 13:00-18:30 local) for the wrk booking run
Exits non-zero unless exactly N appointments were stored.
"""
import argparse
import datetime as dt
import http.client
import json
import pathlib
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("America/Chicago")
PROVIDERS = 5
PATIENTS = 50
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
# One morning, packed on the 15-minute grid (blocked span = duration + buffer after):
# consultation 60+10, refill 30+10, follow_up 20+5.
MORNING = [
    ("07:00", "consultation"),
    ("08:15", "refill"),
    ("09:00", "follow_up"),
    ("09:30", "refill"),
    ("10:15", "consultation"),
    ("11:30", "follow_up"),
    ("12:00", "refill"),
]
AFTERNOON = [f"{h:02d}:{m:02d}" for h in range(13, 19) for m in (0, 30)]  # 13:00 … 18:30
FIRST_DAY = 2  # days from today: clear of the 60-minute minimum notice
LAST_DAY = 725  # horizon is 730 days


class Client:
    """One keep-alive connection per thread."""

    local = threading.local()

    def __init__(self, base, token):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return c

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(3):
            c = self.conn()
            try:
                c.request(method, path, body=data, headers=self.headers)
                r = c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, ConnectionError, OSError):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.1)


def local_instant(day: dt.date, hhmm: str) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, h, m, tzinfo=ZONE)


def must(status, body, expected, what):
    if status != expected:
        sys.exit(f"seed: {what} answered {status}: {body}")
    return body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("token")
    ap.add_argument("out_dir")
    ap.add_argument("--appointments", type=int, default=20000)
    ap.add_argument("--days", type=int, default=600)
    ap.add_argument("--clients", type=int, default=32)
    a = ap.parse_args()
    out = pathlib.Path(a.out_dir)
    api = Client(a.base, a.token)
    per_provider = -(-a.appointments // PROVIDERS)
    if per_provider > a.days * len(MORNING) or FIRST_DAY + a.days > LAST_DAY:
        sys.exit("seed: too many appointments for the days asked")

    # Horizon first: the seed reaches ~600 days ahead, the booking run up to 725.
    for t in must(*api.call("GET", "/api/v1/appointment-types"), 200, "list types")["items"]:
        if t["horizon_days"] < 730:
            must(*api.call("PATCH", f"/api/v1/appointment-types/{t['code']}",
                           {"version": t["version"], "horizon_days": 730}), 200, f"raise {t['code']} horizon")

    hours = [{"weekday": w, "start": "07:00", "end": "19:00"} for w in WEEKDAYS]
    providers = [
        must(*api.call("POST", "/api/v1/providers", {
            "name": f"Dr. Bench {i + 1}", "role": "pain physician",
            "time_zone": "America/Chicago", "hours": hours}), 201, "create provider")["id"]
        for i in range(PROVIDERS)
    ]
    with ThreadPoolExecutor(8) as pool:
        patients = list(pool.map(lambda i: must(*api.call("POST", "/api/v1/patients", {
            "given_name": "Bench", "family_name": f"Patient{i:03d}",
            "email": f"bench{i:03d}@example.org", "email_consent": False}), 201, "create patient")["id"],
            range(PATIENTS)))

    today = dt.datetime.now(ZONE).date()
    jobs = []
    for n in range(a.appointments):
        p, j = n % PROVIDERS, n // PROVIDERS
        day, slot = j % a.days, j // a.days  # round-robin over the days, then down the morning
        hhmm, kind = MORNING[slot]
        start = local_instant(today + dt.timedelta(days=FIRST_DAY + day), hhmm)
        jobs.append({"patient_id": patients[n % PATIENTS], "provider_id": providers[p],
                     "appointment_type": kind, "start": start.isoformat()})

    statuses = {}
    lock = threading.Lock()

    def book(body):
        status, resp = api.call("POST", "/api/v1/appointments", body)
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
            if status != 201 and statuses[status] <= 3:
                print(f"seed: booking {body['start']} answered {status}: {resp}", file=sys.stderr)

    began = time.monotonic()
    with ThreadPoolExecutor(a.clients) as pool:
        for _ in pool.map(book, jobs):
            pass
    seconds = time.monotonic() - began
    created = statuses.get(201, 0)

    # Free afternoon slots for the booking benchmark, interleaved over providers and days.
    lines = []
    for d in range(FIRST_DAY, LAST_DAY + 1):
        for hhmm in AFTERNOON:
            for i, prov in enumerate(providers):
                start = local_instant(today + dt.timedelta(days=d), hhmm).astimezone(dt.timezone.utc)
                patient = patients[(d * len(AFTERNOON) + i) % PATIENTS]
                lines.append(f"{prov} {patient} {start.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    (out / "slots.txt").write_text("\n".join(lines) + "\n")

    # The availability window: 90 days, starting 10 days out, every day holding appointments.
    frm = dt.datetime.combine(today + dt.timedelta(days=10), dt.time(0, 0), ZONE).astimezone(dt.timezone.utc)
    to = frm + dt.timedelta(days=90)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    summary = {
        "providers": providers,
        "patients": len(patients),
        "requested": a.appointments,
        "created": created,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(seconds, 1),
        "bookings_per_second": round(created / seconds) if seconds else 0,
        "free_slots": len(lines),
        "availability_from": frm.strftime(fmt),
        "availability_to": to.strftime(fmt),
    }
    (out / "seed.json").write_text(json.dumps(summary, indent=2))
    print(f"  seeded {created} appointments ({summary['statuses']}) in {seconds:.1f} s "
          f"({summary['bookings_per_second']}/s, {a.clients} clients); {len(lines)} free slots for the booking run")
    if created != a.appointments:
        sys.exit(f"seed: {created} of {a.appointments} appointments stored")


if __name__ == "__main__":
    main()
