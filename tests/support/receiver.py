"""A webhook receiver as its own process: records every POST it gets (path, headers,
body, what it answered) as one JSON line, and answers with the status written in a
file (200 when there is none), so a test can make it fail, stop it and start it again.

    python receiver.py PORT RECORD_FILE STATUS_FILE
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    record: Path
    status: Path

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            answer = int(self.status.read_text().strip() or 200)
        except (OSError, ValueError):
            answer = 200
        line = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode(),
            "status": answer,
        }
        with LOCK, self.record.open("a") as out:
            out.write(json.dumps(line) + "\n")  # recorded before the answer goes out
            out.flush()
        self.send_response(answer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the record file is the log


def main() -> None:
    port, record, status = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    Handler.record, Handler.status = record, status
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
