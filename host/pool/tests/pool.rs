//! Integration tests against the machine's PostgreSQL (127.0.0.1:5432, trust auth). Each test
//! tags its connections with its own `application_name` and counts them in `pg_stat_activity`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{admin, app, backends, config, eventually, pg, pid, pool, wait_backends};
use futures::future::join_all;
use tarn_pool::{Dirt, Pool, PoolConfig, PoolError, PoolStats};

/// The runtime moves pools, connections and checkout futures across tasks and threads.
#[test]
fn handles_and_futures_are_send() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<tarn_pool::PooledConnection>();
    send_sync::<PoolError>();
    // Compile-time only: never called.
    fn _futures(pool: &Pool, pg: tokio_postgres::Config) {
        fn send<T: Send>(_: T) {}
        send(Pool::connect("x", pg, PoolConfig::default()));
        send(pool.get());
        send(pool.health_check());
        send(pool.reconnect());
        send(pool.close(Duration::ZERO));
    }
}

#[tokio::test]
async fn eager_init_opens_exactly_pool_size() {
    let (admin, app) = (admin().await, app("eager"));
    let pool = pool("eager", &app, config(3, 2)).await;
    assert_eq!(
        pool.stats(),
        PoolStats {
            size: 3,
            checked_in: 3,
            checked_out: 0,
            overflow: 0,
            total: 3,
            waiting: 0
        }
    );
    assert_eq!(backends(&admin, &app).await, 3);
    assert_eq!(pool.metrics().connections_created, 3);
    assert_eq!(pool.name(), "eager");
    pool.close(Duration::from_secs(1)).await;
    assert_eq!(pool.stats().total, 0);
    assert_eq!(wait_backends(&admin, &app, 0).await, 0);
}

#[tokio::test]
async fn lazy_init_opens_nothing_until_first_use() {
    let (admin, app) = (admin().await, app("lazy"));
    let pool = pool(
        "lazy",
        &app,
        PoolConfig {
            lazy_init: true,
            ..config(2, 2)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pool.stats().total, 0);
    assert_eq!(backends(&admin, &app).await, 0);

    let conn = pool.get().await.expect("first checkout");
    assert!(backends(&admin, &app).await >= 1);
    drop(conn);
    // From the first use on, the pool keeps pool_size connections open.
    assert!(
        eventually(|| async { pool.stats().total == 2 }).await,
        "{:?}",
        pool.stats()
    );
    assert_eq!(wait_backends(&admin, &app, 2).await, 2);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn overflow_grows_to_the_cap_then_times_out_then_shrinks_back() {
    let (admin, app) = (admin().await, app("overflow"));
    let pool = pool(
        "overflow",
        &app,
        PoolConfig {
            pool_timeout: Duration::from_millis(300),
            ..config(2, 3)
        },
    )
    .await;

    let held: Vec<_> = join_all((0..5).map(|_| pool.get())).await;
    let held: Vec<_> = held
        .into_iter()
        .map(|c| c.expect("checkout under the cap"))
        .collect();
    assert_eq!(
        pool.stats(),
        PoolStats {
            size: 2,
            checked_in: 0,
            checked_out: 5,
            overflow: 3,
            total: 5,
            waiting: 0
        }
    );
    assert_eq!(backends(&admin, &app).await, 5);

    let started = Instant::now();
    let err = pool.get().await.expect_err("the cap is reached");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    match &err {
        PoolError::Timeout {
            pool_size: 2,
            max_overflow: 3,
            checked_out: 5,
            waiting: 0,
            waited,
        } => {
            assert!(*waited >= Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        err.to_string().starts_with(
            "pool limit of size 2 overflow 3 reached: 5 checked out, 0 waiting, timed out after 0."
        ),
        "{err}"
    );
    assert_eq!(pool.metrics().checkout_timeouts, 1);

    drop(held);
    assert_eq!(
        pool.stats(),
        PoolStats {
            size: 2,
            checked_in: 2,
            checked_out: 0,
            overflow: 0,
            total: 2,
            waiting: 0
        }
    );
    assert_eq!(pool.metrics().overflow_closed, 3);
    assert_eq!(wait_backends(&admin, &app, 2).await, 2);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn waiters_are_served_fifo_and_the_queue_is_bounded() {
    let app = app("fifo");
    let pool = pool(
        "fifo",
        &app,
        PoolConfig {
            max_waiting: Some(3),
            pool_timeout: Duration::from_secs(5),
            ..config(1, 0)
        },
    )
    .await;
    let held = pool.get().await.expect("checkout");

    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..3 {
        let (waiter, order) = (pool.clone(), Arc::clone(&order));
        waiters.push(tokio::spawn(async move {
            let conn = waiter.get().await.expect("a waiter is served");
            order.lock().expect("lock").push(i);
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(conn);
        }));
        // Let waiter i queue before waiter i + 1 arrives.
        assert!(eventually(|| async { pool.stats().waiting == i + 1 }).await);
    }

    let started = Instant::now();
    match pool.get().await {
        Err(PoolError::QueueFull {
            pool_size: 1,
            max_overflow: 0,
            checked_out: 1,
            waiting: 3,
        }) => {}
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "rejected at once"
    );
    assert_eq!(pool.metrics().queue_full_rejections, 1);

    drop(held);
    for waiter in waiters {
        waiter.await.expect("waiter");
    }
    assert_eq!(*order.lock().expect("lock"), vec![0, 1, 2]);
    let wait = pool.metrics().checkout_wait;
    assert_eq!(
        wait.count, 4,
        "one immediate checkout and three queued ones"
    );
    assert!(wait.sum_seconds > 0.0);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn recycle_replaces_connections_past_their_age() {
    let (admin, app) = (admin().await, app("recycle"));
    let pool = pool(
        "recycle",
        &app,
        PoolConfig {
            pool_recycle: Some(Duration::from_millis(400)),
            pool_pre_ping: false,
            ..config(1, 1)
        },
    )
    .await;
    let first = pid(&pool.get().await.expect("checkout")).await;
    let again = pid(&pool.get().await.expect("checkout")).await;
    assert_eq!(first, again, "young connections are reused");

    tokio::time::sleep(Duration::from_millis(450)).await;
    let second = pid(&pool.get().await.expect("checkout after recycle")).await;
    assert_ne!(first, second, "an old connection is replaced at checkout");
    assert!(pool.metrics().recycled >= 1);
    assert!(eventually(|| async { pool.stats().total == 1 }).await);
    assert_eq!(wait_backends(&admin, &app, 1).await, 1);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn killed_backends_are_hidden_from_callers() {
    let (admin, app) = (admin().await, app("killed"));
    let pool = pool(
        "killed",
        &app,
        PoolConfig {
            pre_ping_after: Duration::ZERO,
            ..config(2, 1)
        },
    )
    .await;
    let killed: Vec<bool> = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("terminate")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(killed, vec![true, true]);

    // No error reaches the caller: dead connections are detected (closed socket or failed
    // pre-ping) and replaced.
    for _ in 0..3 {
        let conn = pool.get().await.expect("checkout after the kill");
        conn.simple_query("SELECT 1")
            .await
            .expect("a working connection");
    }
    let m = pool.metrics();
    assert!(m.broken + m.failed_pings + m.invalidated >= 2, "{m:?}");
    assert!(
        eventually(|| async { pool.stats().total == 2 }).await,
        "{:?}",
        pool.stats()
    );
    assert_eq!(wait_backends(&admin, &app, 2).await, 2);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_dirty_transaction_is_rolled_back_before_reuse() {
    let (admin, app) = (admin().await, app("rollback"));
    let pool = pool("rollback", &app, config(1, 0)).await;
    let mut conn = pool.get().await.expect("checkout");
    let backend = pid(&conn).await;
    conn.batch_execute("BEGIN; CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1)")
        .await
        .expect("open a transaction");
    conn.mark(Dirt::TRANSACTION);
    drop(conn);
    assert_eq!(
        pool.stats().checked_out,
        1,
        "not available before the reset finishes"
    );

    // The server sees the backend idle, outside any transaction, once it is back in the pool.
    assert!(eventually(|| async { pool.stats().checked_in == 1 }).await);
    let row = admin
        .query_one(
            "SELECT state, xact_start IS NULL FROM pg_stat_activity WHERE pid = $1",
            &[&backend],
        )
        .await
        .expect("backend state");
    assert_eq!(row.get::<_, String>(0), "idle");
    assert!(row.get::<_, bool>(1));

    // pool_size 1: the next checkout gets the same backend, with nothing left of the transaction.
    let conn = pool.get().await.expect("checkout after reset");
    assert_eq!(pid(&conn).await, backend);
    let rows = conn
        .simple_query("SELECT now() = statement_timestamp(), to_regclass('pg_temp.t') IS NULL")
        .await
        .expect("query");
    let Some(row) = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    }) else {
        panic!("expected a row, got {rows:?}");
    };
    assert_eq!(row.get(0), Some("t"), "no transaction is open");
    assert_eq!(row.get(1), Some("t"), "the transaction was rolled back");
    assert_eq!(pool.metrics().resets, 1);
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn session_state_is_discarded_only_when_marked() {
    let app = app("session");
    let pool = pool("session", &app, config(1, 0)).await;
    let work_mem = |conn: tarn_pool::PooledConnection| async move {
        let row = conn.query_one("SHOW work_mem", &[]).await.expect("show");
        row.get::<_, String>(0)
    };
    let default = work_mem(pool.get().await.expect("checkout")).await;

    // Clean return: no reset round trip, so session state survives.
    let conn = pool.get().await.expect("checkout");
    conn.batch_execute("SET work_mem = '77MB'")
        .await
        .expect("set");
    drop(conn);
    assert_eq!(work_mem(pool.get().await.expect("checkout")).await, "77MB");
    assert_eq!(pool.metrics().resets, 0);

    // Marked SESSION: DISCARD ALL on return.
    let mut conn = pool.get().await.expect("checkout");
    conn.mark(Dirt::SESSION);
    drop(conn);
    let conn = pool.get().await.expect("checkout");
    let row = conn
        .query_one(
            "SELECT current_setting('work_mem'), current_setting('application_name')",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), default);
    assert_eq!(
        row.get::<_, String>(1),
        app,
        "DISCARD ALL keeps the startup application_name"
    );
    assert_eq!(pool.metrics().resets, 1);
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_in_flight_statement_is_cancelled_before_reuse() {
    let app = app("inflight");
    let pool = pool("inflight", &app, config(1, 0)).await;
    let mut conn = pool.get().await.expect("checkout");
    let backend = pid(&conn).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        conn.simple_query("SELECT pg_sleep(30)"),
    )
    .await;
    assert!(abandoned.is_err(), "the statement is still running");
    conn.mark(Dirt::IN_FLIGHT);
    drop(conn);

    let started = Instant::now();
    let conn = pool.get().await.expect("checkout after cancel");
    for _ in 0..3 {
        conn.simple_query("SELECT 1")
            .await
            .expect("no stray cancel hits later statements");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        pid(&conn).await,
        backend,
        "the connection was reset and reused"
    );
    assert_eq!(pool.metrics().resets, 1);
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_failed_reset_closes_the_connection() {
    let (admin, app) = (admin().await, app("resetfail"));
    let pool = pool("resetfail", &app, config(1, 0)).await;
    let mut conn = pool.get().await.expect("checkout");
    let backend = pid(&conn).await;
    // DISCARD ALL cannot run inside a transaction block: with only SESSION marked, it fails.
    conn.batch_execute("BEGIN").await.expect("begin");
    conn.mark(Dirt::SESSION);
    drop(conn);
    let conn = pool.get().await.expect("a new connection");
    assert_ne!(pid(&conn).await, backend);
    assert_eq!(pool.metrics().reset_failures, 1);
    drop(conn);
    assert_eq!(wait_backends(&admin, &app, 1).await, 1);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_disconnect_error_breaks_the_connection_and_invalidates_the_rest() {
    let (admin, app) = (admin().await, app("observe"));
    let pool = pool("observe", &app, config(2, 1)).await;
    let mut conn = pool.get().await.expect("checkout");
    let other = pid(&pool.get().await.expect("checkout")).await;
    let backend = pid(&conn).await;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&backend])
        .await
        .expect("terminate");
    let err = loop {
        // The termination notice may take a moment to arrive.
        match conn.simple_query("SELECT 1").await {
            Err(err) => break err,
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    assert!(tarn_pool::is_disconnect(&err), "{err:?}");
    conn.observe_error(&err);
    assert!(conn.is_broken());
    drop(conn);

    // The other (healthy) idle connection predates the disconnect: it is replaced too.
    let conn = pool.get().await.expect("checkout");
    let fresh = pid(&conn).await;
    assert_ne!(fresh, backend);
    assert_ne!(fresh, other);
    drop(conn);
    assert!(pool.metrics().invalidated >= 1);
    assert!(
        eventually(|| async { pool.stats().total == 2 }).await,
        "{:?}",
        pool.stats()
    );
    assert_eq!(wait_backends(&admin, &app, 2).await, 2);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn health_check_and_reconnect() {
    let (admin, app) = (admin().await, app("reconnect"));
    let pool = pool("reconnect", &app, config(2, 1)).await;
    pool.health_check().await.expect("healthy");
    let held = pool.get().await.expect("checkout");
    let held_pid = pid(&held).await;
    let before: Vec<i32> = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("pids")
        .iter()
        .map(|row| row.get(0))
        .collect();

    pool.reconnect().await;
    drop(held); // checked out across the reconnect: closed on return
    assert!(
        eventually(|| async { pool.stats().total == 2 }).await,
        "{:?}",
        pool.stats()
    );
    assert_eq!(wait_backends(&admin, &app, 2).await, 2);
    let after: Vec<i32> = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("pids")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "{before:?} -> {after:?}"
    );
    assert!(!after.contains(&held_pid));
    pool.health_check().await.expect("healthy after reconnect");
    assert_eq!(pool.metrics().failed_health_checks, 0);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn close_waits_for_connections_in_use_then_closes_everything() {
    let (admin, app) = (admin().await, app("close"));
    let pool = pool("close", &app, config(2, 2)).await;
    let held = pool.get().await.expect("checkout");
    let closer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            pool.close(Duration::from_secs(5)).await;
            started.elapsed()
        })
    };
    assert!(eventually(|| async { matches!(pool.get().await, Err(PoolError::Closed)) }).await);
    held.simple_query("SELECT 1")
        .await
        .expect("a checked-out connection still works");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    let took = closer.await.expect("close");
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(pool.stats().total, 0);
    assert_eq!(wait_backends(&admin, &app, 0).await, 0);
    assert!(matches!(pool.health_check().await, Err(PoolError::Closed)));
}

#[tokio::test]
async fn close_cuts_connections_still_in_use_after_the_grace_period() {
    let (admin, app) = (admin().await, app("cut"));
    let pool = pool("cut", &app, config(1, 0)).await;
    let held = pool.get().await.expect("checkout");
    let started = Instant::now();
    pool.close(Duration::from_millis(200)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(held.is_closed(), "the driver was stopped");
    assert_eq!(wait_backends(&admin, &app, 0).await, 0);
    drop(held);
    assert_eq!(pool.stats().total, 0);
}

#[tokio::test]
async fn connect_errors_name_the_host_but_never_the_password() {
    let pg: tokio_postgres::Config = "host=127.0.0.1 port=1 user=postgres password=sekret-pw"
        .parse()
        .expect("config");
    let err = Pool::connect("down", pg, config(2, 0))
        .await
        .expect_err("nothing listens");
    let text = err.to_string();
    assert!(matches!(err, PoolError::Connect { .. }), "{err:?}");
    assert!(
        text.starts_with("cannot connect to PostgreSQL at 127.0.0.1:1: "),
        "{text}"
    );
    assert!(
        !text.contains("sekret") && !format!("{err:?}").contains("sekret"),
        "{text}"
    );
}

#[tokio::test]
async fn a_silent_server_hits_the_connect_timeout() {
    // Accepts TCP connections but never answers the startup message.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let pg = format!("host=127.0.0.1 port={port} user=postgres")
        .parse()
        .expect("config");
    let started = Instant::now();
    let err = Pool::connect(
        "silent",
        pg,
        PoolConfig {
            connect_timeout: Duration::from_millis(300),
            ..config(2, 0)
        },
    )
    .await
    .expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: timed out after 0.3s")
    );
    silent.abort();
}

#[tokio::test]
async fn invalid_config_is_rejected() {
    let err = Pool::connect(
        "bad",
        pg("tp_bad"),
        PoolConfig {
            pool_size: 0,
            ..config(1, 0)
        },
    )
    .await
    .expect_err("invalid");
    assert!(
        matches!(
            err,
            PoolError::Config {
                field: "pool_size",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn overflow_idle_timeout_keeps_surplus_for_a_while() {
    let (admin, app) = (admin().await, app("reap"));
    let pool = pool(
        "reap",
        &app,
        PoolConfig {
            overflow_idle_timeout: Duration::from_millis(300),
            ..config(1, 2)
        },
    )
    .await;
    let held: Vec<_> = join_all((0..3).map(|_| pool.get())).await;
    drop(held);
    assert_eq!(pool.stats().total, 3, "kept idle for now");
    assert_eq!(pool.stats().checked_in, 3);
    assert!(
        eventually(|| async { pool.stats().total == 1 }).await,
        "{:?}",
        pool.stats()
    );
    assert_eq!(pool.metrics().overflow_closed, 2);
    assert_eq!(wait_backends(&admin, &app, 1).await, 1);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_stay_exact_under_concurrency() {
    let (admin, app) = (admin().await, app("stats"));
    let pool = pool(
        "stats",
        &app,
        PoolConfig {
            pool_timeout: Duration::from_secs(10),
            ..config(2, 3)
        },
    )
    .await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (pool, done) = (pool.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut samples = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let s = pool.stats();
                assert_eq!(s.checked_in + s.checked_out, s.total, "{s:?}");
                assert!(s.total <= 5, "{s:?}");
                assert_eq!(s.overflow, s.total.saturating_sub(2), "{s:?}");
                samples += 1;
                tokio::task::yield_now().await;
            }
            samples
        })
    };
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for round in 0..50 {
                    let mut conn = pool.get().await.expect("checkout");
                    if (i + round) % 7 == 0 {
                        conn.simple_query("SELECT 1").await.expect("query");
                        conn.mark(Dirt::TRANSACTION);
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(watcher.await.expect("watcher") > 0);
    // Let the background resets finish.
    assert!(
        eventually(|| async { pool.stats().checked_out == 0 }).await,
        "{:?}",
        pool.stats()
    );
    let s = pool.stats();
    assert!(s.total >= 2 && s.total <= 5, "{s:?}");
    let m = pool.metrics();
    assert_eq!(m.checkout_wait.count, 16 * 50);
    assert_eq!(
        m.connections_created - m.connections_closed,
        s.total as u64,
        "{m:?}"
    );
    assert_eq!(
        wait_backends(&admin, &app, s.total as i64).await,
        s.total as i64
    );
    pool.close(Duration::from_secs(1)).await;
}
