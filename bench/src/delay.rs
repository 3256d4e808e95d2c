//! A delay line in front of PostgreSQL, to measure the servers with the database across a
//! network on a machine where it is on loopback (no `tc netem` in this kernel): every chunk
//! of bytes reaches the other side a fixed time after it was read, in both directions,
//! without holding back what follows it, so pipelined messages stay pipelined and a round
//! trip costs twice the delay plus the line's own wake-ups (the suite measures and reports
//! the real round trip: 1.36–1.39 ms at 0.5 ms each way on the 2-vCPU benchmark machine).
//!
//! Each direction of a connection is a reader thread and a writer thread that sleeps until
//! each chunk is due (tokio's millisecond timer added up to a millisecond per hop). The line
//! delays bytes only: the TCP handshake is not delayed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A running delay line. Dropped, it accepts no more connections; open ones run until
/// either side closes.
pub struct DelayProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`,
    /// delaying each direction by `one_way`.
    pub fn start(upstream: SocketAddr, one_way: Duration) -> Result<DelayProxy> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("delay-line".into())
            .spawn(move || rt.block_on(serve(listener, upstream, one_way, stopped)))?;
        Ok(DelayProxy {
            addr,
            upstream,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `url` (a `postgres://` URL naming the line's upstream as `host:port`) pointed at the
    /// line.
    pub fn url(&self, url: &str) -> Result<String> {
        let authority = format!("@{}", self.upstream);
        if !url.contains(&authority) {
            bail!(
                "the database URL does not name {} as host:port: cannot delay it",
                self.upstream
            );
        }
        Ok(url.replacen(&authority, &format!("@{}", self.addr), 1))
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The median time of `SELECT 1` round trips to `url` (through a delay line, how long a
/// round trip really takes).
pub async fn round_trip(url: &str) -> Result<Duration> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to {url}"))?;
    let driver = tokio::spawn(conn);
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        client.simple_query("SELECT 1").await?;
        times.push(started.elapsed());
    }
    drop(client);
    let _ = driver.await;
    times.sort();
    Ok(times[times.len() / 2])
}

/// The TCP address of the server a `postgres://` URL names.
pub fn upstream(url: &str) -> Result<SocketAddr> {
    let config: tokio_postgres::Config = url.parse().context("parse the database URL")?;
    let (Some(tokio_postgres::config::Host::Tcp(host)), Some(&port)) =
        (config.get_hosts().first(), config.get_ports().first())
    else {
        bail!("a delayed database needs a TCP host and port in its URL");
    };
    let ip = host
        .parse()
        .with_context(|| format!("a delayed database needs an IP address, not `{host}`"))?;
    Ok(SocketAddr::new(ip, port))
}

async fn serve(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    one_way: Duration,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let client = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            if let Err(e) = join(client, server, one_way) {
                eprintln!("delay line: {e:#}");
            }
        });
    }
}

/// Runs the two lines of a client/server pair on threads of their own.
fn join(client: TcpStream, server: TcpStream, one_way: Duration) -> Result<()> {
    let client = blocking(client)?;
    let server = blocking(server)?;
    line(client.try_clone()?, server.try_clone()?, one_way)?;
    line(server, client, one_way)
}

fn blocking(stream: TcpStream) -> Result<std::net::TcpStream> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Copies `from` to `to` on two threads, each chunk `one_way` after it was read (a reader
/// that never waits for the writer, and a writer that sleeps until each chunk is due);
/// shuts `to` down after the last one.
fn line(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    one_way: Duration,
) -> Result<()> {
    let (chunks, due) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::Builder::new()
        .name("delay-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if chunks
                    .send((Instant::now() + one_way, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        })?;
    std::thread::Builder::new()
        .name("delay-write".into())
        .spawn(move || {
            for (at, chunk) in due {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                if to.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn rewrites_the_url_to_the_line() {
        let upstream: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        assert_eq!(
            super::upstream("postgres://postgres@127.0.0.1:5432/bench").unwrap(),
            upstream
        );
        let proxy = DelayProxy::start(upstream, Duration::from_millis(1)).unwrap();
        let url = proxy
            .url("postgres://postgres@127.0.0.1:5432/bench")
            .unwrap();
        assert_eq!(url, format!("postgres://postgres@{}/bench", proxy.addr));
        assert!(proxy.url("postgres://x@10.0.0.1:5432/b").is_err());
        assert!(super::upstream("postgres://x@db.example:5432/b").is_err());
    }

    #[test]
    fn delays_each_direction_and_keeps_the_bytes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let upstream = echo.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut s, _) = echo.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    s.write_all(&buf[..n]).await.unwrap();
                }
            });
            let proxy = DelayProxy::start(upstream, Duration::from_millis(20)).unwrap();
            let mut client = TcpStream::connect(proxy.addr).await.unwrap();
            let started = std::time::Instant::now();
            client.write_all(b"ping").await.unwrap();
            let mut answer = [0u8; 4];
            client.read_exact(&mut answer).await.unwrap();
            let round_trip = started.elapsed();
            assert_eq!(&answer, b"ping");
            assert!(round_trip >= Duration::from_millis(40), "{round_trip:?}");
            assert!(round_trip < Duration::from_millis(500), "{round_trip:?}");
        });
    }
}
