//! A TCP fault proxy on 127.0.0.1 between tarn and PostgreSQL, driven by the
//! test: pass traffic through, add latency, stall (accept bytes and forward
//! nothing: a half-open peer), reset every connection, or refuse new ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Delay every chunk, in both directions, by this much.
    Latency(Duration),
    /// Accept connections and bytes, forward nothing, answer nothing. When
    /// the stall ends, connections that lived through it are reset (their
    /// peer is gone; a real host would answer with RST).
    Stall,
    /// Reset (RST) every open connection and every new one.
    Reset,
    /// Close the listener: new connections are refused; open ones go on.
    Refuse,
}

/// A running proxy; stops (dropping every connection) when dropped.
pub struct Proxy {
    port: u16,
    fault: watch::Sender<Fault>,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Proxy {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (fault, _) = watch::channel(Fault::None);
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            SocketAddr::from(([127, 0, 0, 1], upstream)),
            fault.subscribe(),
            open.clone(),
        ));
        Proxy {
            port,
            fault,
            open,
            task,
        }
    }

    /// The port tarn should connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Applies `fault` from now on.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Back to forwarding everything.
    pub fn heal(&self) {
        self.set(Fault::None);
    }

    /// Connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener with `SO_REUSEADDR`, so the port can be bound again after a refusal.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    open: Arc<AtomicUsize>,
) {
    let addr = listener.local_addr().expect("proxy address");
    let mut listener = Some(listener);
    // Each connection's task ends with the proxy: they are aborted with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let current = *fault.borrow_and_update();
        match (&listener, current) {
            (Some(_), Fault::Refuse) => listener = None,
            (None, f) if f != Fault::Refuse => match listen(addr) {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    // The port is briefly unavailable: try again shortly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ => {}
        }
        let Some(active) = &listener else {
            if fault.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = active.accept() => {
                if let Ok((client, _)) = accepted {
                    let _ = client.set_nodelay(true);
                    let guard = OpenGuard::new(open.clone());
                    connections.spawn(proxy_connection(client, upstream, fault.clone(), guard));
                }
            }
            changed = fault.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Counts a connection as open while it lives.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>) -> OpenGuard {
        open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resets a connection: RST instead of FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Reads and drops whatever `client` sends until the fault changes.
async fn swallow(client: &mut TcpStream, fault: &mut watch::Receiver<Fault>) {
    let mut buf = [0u8; 8192];
    loop {
        tokio::select! {
            read = client.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            changed = fault.changed() => {
                if changed.is_err() || *fault.borrow() != Fault::Stall {
                    return;
                }
            }
        }
    }
}

async fn proxy_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    _open: OpenGuard,
) {
    let initial = *fault.borrow_and_update();
    match initial {
        Fault::Reset => return reset(client),
        Fault::Stall => {
            // A half-open peer: the connection is accepted, nothing ever answers.
            swallow(&mut client, &mut fault).await;
            return reset(client);
        }
        _ => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = server.set_nodelay(true);
    let mut stalled = false;
    let mut up = [0u8; 16384];
    let mut down = [0u8; 16384];
    loop {
        let (n, to_server) = tokio::select! {
            read = client.read(&mut up) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => (n, true),
            },
            read = server.read(&mut down) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => (n, false),
            },
            changed = fault.changed() => {
                let now = *fault.borrow();
                if changed.is_err() || now == Fault::Reset || (stalled && now != Fault::Stall) {
                    break;
                }
                continue;
            }
        };
        let current = *fault.borrow();
        match current {
            Fault::Stall => {
                stalled = true;
                continue;
            }
            Fault::Reset => break,
            Fault::Latency(delay) => tokio::time::sleep(delay).await,
            Fault::None | Fault::Refuse => {}
        }
        let written = if to_server {
            server.write_all(&up[..n]).await
        } else {
            client.write_all(&down[..n]).await
        };
        if written.is_err() {
            break;
        }
    }
    // A closed or broken side, a reset, or the end of a stall: the other
    // side sees a reset, as it would from a host that lost the connection.
    reset(client);
    reset(server);
}
