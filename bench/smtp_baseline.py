#!/usr/bin/env python3
"""A plain SMTP client for bench/reminders.sh: Python's smtplib over one connection sends N
messages of SIZE bytes to HOST:PORT and prints "RESULT baseline n=… seconds=… per_second=…".

    smtp_baseline.py HOST PORT N [SIZE]
"""
import smtplib
import sys
import time
from email.message import EmailMessage


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    msg = EmailMessage()
    msg["From"] = "Lakeside Pain Clinic <reminders@clinic.example>"
    msg["Subject"] = "Your appointment at Lakeside Pain Clinic"
    msg.set_content(("Hello Alex, this is a reminder of your appointment. " * 200)[:size])
    started = time.perf_counter()
    with smtplib.SMTP(host, port) as smtp:
        for i in range(n):
            del msg["To"]
            msg["To"] = f"p{i}@example.org"
            smtp.send_message(msg)
    seconds = time.perf_counter() - started
    print(f"RESULT baseline n={n} seconds={seconds:.2f} per_second={n / seconds:.0f}")


if __name__ == "__main__":
    main()
