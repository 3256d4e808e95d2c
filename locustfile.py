"""Locust load test for tarn's sample app (guest/rust), the same requests as the Rust suite.

    pip install locust
    cargo run --release -p tarn -- up --database-url postgres://postgres@127.0.0.1:5432/postgres
    locust -f locustfile.py --host http://127.0.0.1:3000                      # web UI on :8089
    locust -f locustfile.py --host http://127.0.0.1:3000 --headless -u 32 -r 8 -t 60s

The lookup task needs the benchmark table; create it once with

    psql -h 127.0.0.1 -U postgres -c "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY,
      name text NOT NULL, score float8 NOT NULL); INSERT INTO bench_items SELECT g, 'item ' || g,
      g * 0.5 FROM generate_series(1, 10000) g ON CONFLICT (id) DO NOTHING"

(`cargo run --release -p tarn-bench -- suite` creates it too). Locust itself is Python and
uses far more CPU per request than tarn does: on a small machine it, not tarn, is the
bottleneck. For tarn's numbers use the Rust suite (BENCHMARKS.md); use this to see how
your own traffic mix behaves, and point it only at servers you run.
"""

import random

from locust import HttpUser, between, task

LOOKUP_ROWS = 10_000


class SampleAppUser(HttpUser):
    """One user of the sample app: mostly reads, some writes, a health check now and then."""

    wait_time = between(0.0, 0.05)

    @task(10)
    def select_one(self):
        with self.client.post("/query", json={"sql": "SELECT 1"}, name="/query SELECT 1",
                              catch_response=True) as r:
            if r.status_code != 200 or r.json().get("rows") != [[1]]:
                r.failure(f"unexpected answer {r.status_code}: {r.text[:200]}")

    @task(10)
    def lookup(self):
        item = random.randint(1, LOOKUP_ROWS)
        body = {"sql": "SELECT id, name, score FROM bench_items WHERE id = $1", "params": [item]}
        with self.client.post("/query", json=body, name="/query lookup", catch_response=True) as r:
            if r.status_code != 200 or r.json().get("row_count") != 1:
                r.failure(f"unexpected answer {r.status_code}: {r.text[:200]}")

    @task(3)
    def write_note(self):
        body = {"title": "locust", "body": "written by locustfile.py"}
        with self.client.post("/notes", json=body, name="/notes", catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"unexpected answer {r.status_code}: {r.text[:200]}")

    @task(1)
    def health(self):
        self.client.get("/health")

    @task(1)
    def pool_stats(self):
        self.client.get("/pool/stats")
