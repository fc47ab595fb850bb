#!/usr/bin/env python3
"""A small SMTP sink for bench/faults.sh: plain SMTP (no TLS, no AUTH) on 127.0.0.1:PORT,
one thread per connection, every accepted message appended to LOG as one JSON line:

    {"n": 1, "t": 1717000000.123, "message_id": "<…@clinic-platform>", "to": "…", "bytes": 4242}

    faults_smtp.py PORT LOG [--delay SECONDS]

--delay makes it a slow relay: after the final "." of a message it waits that long, then
records the message, then answers 250. A message is recorded before the 250 goes out, as a
real relay stores it before answering; so a client killed during the wait still counts as
having delivered it (that is what makes a repeat after a crash a duplicate for the patient).

Prints "listening on PORT" once the socket is bound. Python 3.11 stdlib only.
"""
import argparse
import json
import re
import socketserver
import sys
import threading
import time

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
TO = re.compile(rb"^To:\s*(.+?)\r?$", re.IGNORECASE | re.MULTILINE)


class Sink:
    def __init__(self, log_path, delay):
        self.log = open(log_path, "a", buffering=1, encoding="utf-8")
        self.delay = delay
        self.lock = threading.Lock()
        self.count = 0

    def record(self, raw: bytes, rcpts):
        head = raw.split(b"\r\n\r\n", 1)[0]
        mid = MESSAGE_ID.search(head)
        to = TO.search(head)
        with self.lock:
            self.count += 1
            line = {
                "n": self.count,
                "t": round(time.time(), 4),
                "message_id": mid.group(1).decode("ascii", "replace") if mid else None,
                "to": to.group(1).decode("utf-8", "replace") if to else ",".join(rcpts),
                "bytes": len(raw),
            }
            self.log.write(json.dumps(line) + "\n")
            self.log.flush()
            return self.count


class Handler(socketserver.StreamRequestHandler):
    timeout = 120

    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink: Sink = self.server.sink
        rcpts = []
        try:
            self.reply("220 faults-sink ESMTP")
            while True:
                line = self.rfile.readline(65536)
                if not line:
                    return
                cmd = line.strip().decode("ascii", "replace")
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.reply("250-faults-sink\r\n250-8BITMIME\r\n250 SIZE 52428800")
                elif verb == "HELO":
                    self.reply("250 faults-sink")
                elif verb == "MAIL":
                    rcpts = []
                    self.reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].strip())
                    self.reply("250 2.1.5 Ok")
                elif verb == "DATA":
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    chunks = []
                    while True:
                        l = self.rfile.readline(1 << 20)
                        if not l:
                            return
                        if l in (b".\r\n", b".\n"):
                            break
                        if l.startswith(b".."):
                            l = l[1:]
                        chunks.append(l)
                    if sink.delay:
                        time.sleep(sink.delay)
                    n = sink.record(b"".join(chunks), rcpts)
                    self.reply(f"250 2.0.0 Ok: queued as faults-{n}")
                elif verb in ("RSET", "NOOP"):
                    if verb == "RSET":
                        rcpts = []
                    self.reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    self.reply("221 2.0.0 Bye")
                    return
                else:
                    self.reply("502 5.5.2 Command not recognized")
        except (ConnectionError, TimeoutError, OSError):
            return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("log")
    ap.add_argument("--delay", type=float, default=0.0)
    a = ap.parse_args()
    server = Server(("127.0.0.1", a.port), Handler)
    server.sink = Sink(a.log, a.delay)
    print(f"listening on {a.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
