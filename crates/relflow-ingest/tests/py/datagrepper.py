"""A test Datagrepper for the process-level backfill test.

    datagrepper.py FILE

Serves Datagrepper's documented `/v2/search` JSON (`raw_messages`, `count`,
`page`, `pages`, `total`; arguments `start`, `end`, `topic` (repeatable,
exact), `page`, `rows_per_page` (at most 100), `order`) over the fedmsg
envelopes in FILE (one JSON object per line), on a free port of 127.0.0.1,
and prints "listening on http://127.0.0.1:PORT". The real `datagrepper`
cannot run here (see gaps_backfill.rs). Stops on SIGTERM or when stdin closes.
"""
import json
import math
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

with open(sys.argv[1]) as f:
    MESSAGES = [json.loads(line) for line in f if line.strip()]


class Search(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/v2/search":
            self.send_error(404)
            return
        q = parse_qs(url.query)
        start, end = float(q["start"][0]), float(q["end"][0])
        page = int(q.get("page", ["1"])[0])
        rows = max(1, min(100, int(q.get("rows_per_page", ["25"])[0])))
        topics = q.get("topic", [])
        hits = [m for m in MESSAGES if start <= m["timestamp"] <= end and (not topics or m["topic"] in topics)]
        if q.get("order", ["desc"])[0] == "desc":
            hits.reverse()
        shown = hits[(page - 1) * rows : page * rows]
        body = {"raw_messages": shown, "count": len(shown), "page": page,
                "pages": math.ceil(len(hits) / rows), "total": len(hits)}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Search)
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
