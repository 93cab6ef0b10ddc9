//! A TCP proxy the tests put between a bridge and its broker or database, to cut the bridge's
//! own connections without touching the shared servers: `cut` drops every connection open
//! through it, `refuse` closes new ones at once until `accept` again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    /// Bumped by `cut`: every connection opened under an older generation ends.
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    listener: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test proxy");
        let addr = listener.local_addr().expect("proxy address");
        let refusing = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (generation, _) = watch::channel(0u64);
        let upstream = upstream.to_string();
        let listener = {
            let refusing = Arc::clone(&refusing);
            let accepted = Arc::clone(&accepted);
            let generation = generation.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mut cut = generation.subscribe();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        let (mut client, mut server) = (client, server);
                        cut.borrow_and_update();
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                        // Dropping both ends resets the connection, as a lost peer would.
                    });
                }
            })
        };
        Proxy {
            addr,
            refusing,
            generation,
            accepted,
            listener,
        }
    }

    /// The port to give the bridge instead of the server's.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Drops every connection open through the proxy now.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Closes new connections at once (a server that is down) until `accept`.
    pub fn refuse(&self) {
        self.refusing.store(true, Ordering::SeqCst);
    }

    /// Forwards new connections again.
    pub fn accept(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }

    /// How many connections it has forwarded so far.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.listener.abort();
    }
}

/// `url` with its `host:port` replaced by the proxy's loopback address.
pub fn through(url: &str, proxy: &Proxy) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, tail) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |at| rest.split_at(at));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let user = &authority[..authority.len() - host_port.len()];
    format!("{scheme}://{user}127.0.0.1:{}{tail}", proxy.port())
}

/// The `host:port` of a URL (with the scheme's default port when none is given).
pub fn upstream_of(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:{default_port}")
    }
}
