//! A bounded load generator: loopback only, a fixed number of requests and a
//! fixed time budget, stopping by itself. Every request is recorded: when it
//! started, how long it took, its status, and whether it finished before
//! its deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::http::send_with;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: &'static str,
    /// Path (and query).
    pub path: String,
    /// Body.
    pub body: Bytes,
}

impl Request {
    /// `GET path`.
    pub fn get(path: &str) -> Request {
        Request {
            method: "GET",
            path: path.to_string(),
            body: Bytes::new(),
        }
    }

    /// `POST /query` running `sql` (no parameters).
    pub fn query(sql: &str) -> Request {
        Request {
            method: "POST",
            path: "/query".into(),
            body: Bytes::from(serde_json::json!({ "sql": sql }).to_string()),
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An HTTP response.
    Status {
        /// The status code.
        status: u16,
        /// The `Retry-After` header, if any.
        retry_after: Option<String>,
    },
    /// The connection failed before a response.
    Error(String),
    /// No response before the deadline: the request hung.
    Hung,
}

/// One request's record.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The request's number, from 0.
    pub index: usize,
    /// When it was sent, from the start of the run.
    pub started: Duration,
    /// How long it took (the deadline, if it hung).
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// Its response headers and body, as text (for the secrets check).
    pub text: String,
}

impl Sample {
    /// When it ended, from the start of the run.
    pub fn ended(&self) -> Duration {
        self.started + self.latency
    }

    /// Whether it got a 2xx response.
    pub fn served(&self) -> bool {
        matches!(self.outcome, Outcome::Status { status, .. } if (200..300).contains(&status))
    }

    /// Its status code, if it got a response.
    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Status { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// What to send and how hard.
#[derive(Clone)]
pub struct Load {
    /// tarn's application port.
    pub port: u16,
    /// Requests to send in all.
    pub requests: usize,
    /// Requests in flight at once (each worker sends one after another).
    pub concurrency: usize,
    /// Pause between one worker's requests.
    pub pause: Duration,
    /// A request without a response after this long counts as hung.
    pub deadline: Duration,
    /// No request is sent after this much time has passed.
    pub budget: Duration,
    /// The request to send as number `i`.
    pub request: Arc<dyn Fn(usize) -> Request + Send + Sync>,
}

impl Load {
    /// `requests` copies of `request`, `concurrency` at a time, no pause,
    /// 10 s deadline, 60 s budget.
    pub fn new(port: u16, requests: usize, concurrency: usize, request: Request) -> Load {
        Load {
            port,
            requests,
            concurrency,
            pause: Duration::ZERO,
            deadline: Duration::from_secs(10),
            budget: Duration::from_secs(60),
            request: Arc::new(move |_| request.clone()),
        }
    }

    /// Runs the load to completion.
    pub async fn run(self) -> Report {
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let load = Arc::new(self);
        let workers: Vec<_> = (0..load.concurrency.max(1))
            .map(|_| {
                let load = load.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= load.requests || started.elapsed() >= load.budget {
                            return samples;
                        }
                        samples.push(load.one(index, started).await);
                        if !load.pause.is_zero() {
                            tokio::time::sleep(load.pause).await;
                        }
                    }
                })
            })
            .collect();
        let mut samples = Vec::with_capacity(load.requests);
        for worker in workers {
            samples.extend(worker.await.expect("load worker"));
        }
        samples.sort_by_key(|s| s.index);
        Report {
            samples,
            elapsed: started.elapsed(),
        }
    }

    async fn one(&self, index: usize, run_started: Instant) -> Sample {
        let request = (self.request)(index);
        let started = run_started.elapsed();
        let sent = Instant::now();
        let reply = tokio::time::timeout(
            self.deadline,
            send_with(self.port, request.method, &request.path, &[], request.body),
        )
        .await;
        let latency = sent.elapsed();
        let (outcome, text) = match reply {
            Ok(Ok(reply)) => {
                let mut text: String = reply
                    .headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {v}\n"))
                    .collect();
                text.push_str(&reply.text());
                (
                    Outcome::Status {
                        status: reply.status,
                        retry_after: reply.header("retry-after").map(str::to_string),
                    },
                    text,
                )
            }
            Ok(Err(e)) => (Outcome::Error(e.to_string()), e.to_string()),
            Err(_) => (Outcome::Hung, String::new()),
        };
        Sample {
            index,
            started,
            latency,
            outcome,
            text,
        }
    }
}

/// Everything a run recorded.
#[derive(Debug, Clone)]
pub struct Report {
    /// One record per request sent, in request order.
    pub samples: Vec<Sample>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Report {
    /// Requests sent.
    pub fn sent(&self) -> usize {
        self.samples.len()
    }

    /// Requests answered 2xx.
    pub fn served(&self) -> usize {
        self.samples.iter().filter(|s| s.served()).count()
    }

    /// Requests that finished without a 2xx (error status or connection error).
    pub fn failed(&self) -> usize {
        self.samples
            .iter()
            .filter(|s| !s.served() && s.outcome != Outcome::Hung)
            .count()
    }

    /// Requests without a response before their deadline.
    pub fn hung(&self) -> usize {
        self.samples
            .iter()
            .filter(|s| s.outcome == Outcome::Hung)
            .count()
    }

    /// How many ended with each status (`"200"`, `"503"`, `"error"`, `"hung"`).
    pub fn statuses(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.samples {
            let key = match &s.outcome {
                Outcome::Status { status, .. } => status.to_string(),
                Outcome::Error(_) => "error".into(),
                Outcome::Hung => "hung".into(),
            };
            *counts.entry(key).or_default() += 1;
        }
        counts
    }

    /// The latency below which `p` (0..=1) of the requests finished.
    pub fn latency_percentile(&self, p: f64) -> Duration {
        let mut latencies: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        latencies.sort();
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((latencies.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
        latencies[rank]
    }

    /// The slowest request.
    pub fn max_latency(&self) -> Duration {
        self.samples
            .iter()
            .map(|s| s.latency)
            .max()
            .unwrap_or_default()
    }

    /// One line of figures: sent / served / failed / hung, statuses, latencies.
    pub fn summary(&self) -> String {
        format!(
            "sent {} served {} failed {} hung {} statuses {:?} p50 {:?} p99 {:?} max {:?} in {:?}",
            self.sent(),
            self.served(),
            self.failed(),
            self.hung(),
            self.statuses(),
            self.latency_percentile(0.5),
            self.latency_percentile(0.99),
            self.max_latency(),
            self.elapsed
        )
    }

    /// The samples that did not get a 2xx.
    pub fn unserved(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| !s.served())
    }
}
