//! The node's network: one listener for every cell it serves, a dialer per peer it should
//! dial, and the registry of links (one live connection per peer and cell).
//!
//! Who dials whom: a node dials a peer that has addresses if its own key is lower, or if it
//! has no address itself (the peer could not dial it). So exactly one side dials when both
//! can, and there is one connection per pair, not two racing ones. An inbound connection
//! from a peer becomes that peer's link, replacing an older one (the peer reconnected).
//!
//! Architecture invariant: the network knows cells only as member lists and peer addresses.
//! It does not read config files; the daemon gives it what it needs.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use exocore_protocol::admin::{AdminRequest, AdminResponse, PeerPing};
use exocore_protocol::envelope::Service;
use exocore_protocol::identity::{Keypair, PublicKey};
use exocore_protocol::message::{ErrorBody, ErrorCode};
use exocore_protocol::{session, wire};
use futures_lite::future;
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::connection::{Answer, AnswerFuture, Connection, Incoming, Pending, Services};
use super::subscription::EventSink;
use super::NetError;

/// Connections open at once, all cells together; more are refused at accept.
pub const CONNECTIONS_MAX: usize = 512;
/// Handshakes in progress at once; a slow or silent client holds one for at most the
/// handshake timeout.
pub const HANDSHAKES_MAX: usize = 128;
/// How long the side that does not normally dial a peer waits, with the link down, before
/// it dials anyway.
pub const FALLBACK_DIAL_GRACE: Duration = Duration::from_secs(10);
/// How long a ping between nodes may take before the peer counts as unreachable.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// A link older than this is no dialing race: a second connection with the same peer key
/// while it still answers comes from another node holding that key.
pub const SETTLED_LINK_AGE: Duration = Duration::from_secs(5);
/// How long the existing link may take to answer before the newcomer replaces it.
const CLONE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Another node of a cell, as the network needs it.
#[derive(Debug, Clone)]
pub struct PeerNode {
    /// Its key.
    pub id: PublicKey,
    /// Its name, for logs.
    pub name: String,
    /// Where to dial it.
    pub addresses: Vec<String>,
}

/// A cell as the network needs it.
#[derive(Debug, Clone)]
pub struct CellNet {
    /// The cell's key.
    pub id: PublicKey,
    /// The cell's name, for logs.
    pub name: String,
    /// Every key allowed to connect: nodes and clients.
    pub members: Vec<PublicKey>,
    /// The other nodes with a role, in the cell's order: those this node keeps links with.
    pub peers: Vec<PeerNode>,
    /// Whether this node has an address other nodes can dial.
    pub dialable: bool,
}

#[derive(Default)]
struct Link {
    connection: Option<Connection>,
    /// Who opened `connection`: of two live connections, the one opened by the lower key
    /// stays (both ends apply the same rule, so they agree).
    initiator: Option<PublicKey>,
    last_error: Option<String>,
    /// When anything was last received over a link that is now down, µs since the epoch.
    last_seen_us: Option<u64>,
}

/// Why a connection from a second node with a peer's key is closed: what that node logs.
pub const DUPLICATE_KEY: &str = "another node with this node's key is already connected: \
    two nodes share one node key (was a node directory copied?); give this node its own \
    identity with `exo node init` in a new directory and join it to the cell";

/// The link to one peer, as [`Network::peer_links`] reports it.
#[derive(Debug, Clone)]
pub struct PeerLink {
    /// The peer's key.
    pub id: PublicKey,
    /// Its name in the cell.
    pub name: String,
    /// Whether a connection is up.
    pub connected: bool,
    /// When anything was last received from it, µs since the Unix epoch.
    pub last_seen_us: Option<u64>,
    /// Why the last connection ended or the last dial failed.
    pub last_error: Option<String>,
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Inbound,
    Outbound,
}

struct Inner {
    keypair: Keypair,
    /// The cells served, replaced at runtime when a membership change commits
    /// ([`Network::update_cell`]).
    cells: Mutex<HashMap<PublicKey, CellNet>>,
    /// The (cell, peer) pairs that have a dialer running.
    dialers: Mutex<HashSet<(PublicKey, PublicKey)>>,
    services: Arc<dyn Services>,
    links: Mutex<HashMap<(PublicKey, PublicKey), Link>>,
    connections: Mutex<HashMap<u64, Connection>>,
    handshakes: AtomicUsize,
    next_connection_id: AtomicU64,
    shutdown: (async_channel::Sender<()>, async_channel::Receiver<()>),
}

/// The node's network. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Network {
    /// A network for `keypair`'s node serving `cells`; requests for services other than Ping
    /// and CellAdmin go to `services`.
    pub fn new(keypair: Keypair, cells: Vec<CellNet>, services: Arc<dyn Services>) -> Network {
        let inner = Inner {
            keypair,
            cells: Mutex::new(cells.into_iter().map(|cell| (cell.id, cell)).collect()),
            dialers: Mutex::new(HashSet::new()),
            services,
            links: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            handshakes: AtomicUsize::new(0),
            next_connection_id: AtomicU64::new(1),
            shutdown: async_channel::bounded(1),
        };
        Network {
            inner: Arc::new(inner),
        }
    }

    /// Accepts connections on `listener` until [`Network::shutdown`].
    pub async fn serve(&self, listener: TcpListener) {
        let accept = async {
            loop {
                match listener.accept().await {
                    Ok((stream, address)) => self.accept(stream, address),
                    Err(err) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        warn!("accept failed: {err}");
                        Timer::after(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        self.unless_stopped(accept).await;
    }

    fn accept(&self, stream: TcpStream, address: SocketAddr) {
        let inner = &self.inner;
        if lock(&inner.connections).len() >= CONNECTIONS_MAX {
            warn!("refused connection from {address}: already {CONNECTIONS_MAX} connections");
            return;
        }
        if inner.handshakes.fetch_add(1, Ordering::AcqRel) >= HANDSHAKES_MAX {
            inner.handshakes.fetch_sub(1, Ordering::AcqRel);
            warn!("refused connection from {address}: already {HANDSHAKES_MAX} handshakes in progress");
            return;
        }
        let network = self.clone();
        smol::spawn(async move {
            let _ = stream.set_nodelay(true);
            let inner = &network.inner;
            let members_of = |cell: &PublicKey| network.cell(cell).map(|c| c.members);
            let result = session::respond(stream, &inner.keypair, members_of).await;
            inner.handshakes.fetch_sub(1, Ordering::AcqRel);
            match result {
                Ok(session) => {
                    let peer = session.peer().clone();
                    network
                        .run(
                            session,
                            peer.cell,
                            peer.remote,
                            address.to_string(),
                            Direction::Inbound,
                        )
                        .await;
                }
                Err(err) => warn!("refused connection from {address}: {err}"),
            }
        })
        .detach();
    }

    /// Registers a new session, runs it to its end, and unregisters it. Returns whether
    /// anything was received from the peer.
    async fn run(
        &self,
        session: session::Session<TcpStream>,
        cell: PublicKey,
        remote: PublicKey,
        address: String,
        direction: Direction,
    ) -> bool {
        let inner = &self.inner;
        let initiator = match direction {
            Direction::Outbound => inner.keypair.public(),
            Direction::Inbound => remote,
        };
        let id = inner.next_connection_id.fetch_add(1, Ordering::Relaxed);
        let pending = Pending::new(id, cell, remote, address.clone());
        let connection = pending.connection().clone();
        lock(&inner.connections).insert(id, connection.clone());
        let mut peer_name = self.peer_name(&cell, &remote);
        let cell_name = self.cell(&cell).map(|c| c.name).unwrap_or_default();
        if let (Some(name), Some(existing)) = (&peer_name, self.link(&cell, &remote)) {
            // A settled link that still answers: this is a second node with the same key.
            if existing.age() >= SETTLED_LINK_AGE
                && existing.ping(CLONE_PROBE_TIMEOUT).await.is_ok()
            {
                warn!(
                    "cell `{cell_name}`: `{name}` ({}) is connected from {} and another node \
                     with its key connected from {address}: two nodes share one node key (a \
                     node directory copied to another machine?); the second is refused",
                    remote.fingerprint(),
                    existing.address()
                );
                connection.close(DUPLICATE_KEY);
                peer_name = None;
            }
        }
        if let Some(name) = peer_name.clone() {
            let admitted = {
                let mut links = lock(&inner.links);
                let link = links.entry((cell, remote)).or_default();
                match (&link.connection, link.initiator) {
                    (Some(_), Some(existing)) if initiator.to_bytes() > existing.to_bytes() => None,
                    _ => {
                        link.last_error = None;
                        link.initiator = Some(initiator);
                        Some(link.connection.replace(connection.clone()))
                    }
                }
            };
            match admitted {
                None => {
                    // Both ends dialed: keep the connection opened by the lower key.
                    connection.close("duplicate link: the one dialed by the lower key stays");
                    peer_name = None;
                }
                Some(replaced) => {
                    if let Some(old) = replaced {
                        old.close("replaced by a newer connection");
                    }
                    let direction = match direction {
                        Direction::Inbound => "inbound",
                        Direction::Outbound => "outbound",
                    };
                    info!(
                        "peer up: `{name}` ({}) in cell `{cell_name}`, {direction} {address}",
                        remote.fingerprint()
                    );
                }
            }
        } else {
            debug!(
                "client {} connected to cell `{cell_name}` from {address}",
                remote.fingerprint()
            );
        }

        let reason = pending
            .run(
                session,
                Arc::new(Routes {
                    network: self.clone(),
                }),
            )
            .await;

        lock(&inner.connections).remove(&id);
        if let Some(name) = peer_name {
            let mut links = lock(&inner.links);
            if let Some(link) = links.get_mut(&(cell, remote)) {
                if link.connection.as_ref().map(Connection::id) == Some(id) {
                    link.connection = None;
                    link.initiator = None;
                    link.last_error = Some(reason.clone());
                    link.last_seen_us = Some(connection.last_received_us());
                }
            }
            info!(
                "peer down: `{name}` ({}) in cell `{cell_name}`: {reason}",
                remote.fingerprint()
            );
        } else {
            debug!(
                "client {} left cell `{cell_name}`: {reason}",
                remote.fingerprint()
            );
        }
        connection.received_any()
    }

    /// A peer ended a link it accepted before sending anything: what a node does when the
    /// key that dialed it is not a member of the cell. Said once per peer until a link works.
    fn refused_after_handshake(&self, cell: &PublicKey, peer: &PeerNode) {
        let cell_name = self.cell(cell).map(|c| c.name).unwrap_or_default();
        let reason = format!(
            "`{}` closed the link right after the handshake: it does not take this node as a member of cell `{cell_name}` (was this node removed from the cell, maybe while it was down?)",
            peer.name
        );
        let mut links = lock(&self.inner.links);
        let link = links.entry((*cell, peer.id)).or_default();
        if link.last_error.as_deref() != Some(reason.as_str()) {
            warn!("{reason}");
        }
        link.last_error = Some(reason);
    }

    /// The name of `node` if it is another node with a role in `cell` (a peer, not a client).
    fn peer_name(&self, cell: &PublicKey, node: &PublicKey) -> Option<String> {
        let cell = self.cell(cell)?;
        cell.peers
            .iter()
            .find(|p| p.id == *node)
            .map(|p| p.name.clone())
    }

    /// Starts one dialer per peer this node should dial (see the module doc).
    ///
    /// The other side of a pair dials too, but only after the link has been down for
    /// [`FALLBACK_DIAL_GRACE`]: if the preferred side cannot reach this node's address (a
    /// NAT, a wrong address), the link still forms the other way.
    pub fn start_dialers(&self) {
        let cells: Vec<CellNet> = lock(&self.inner.cells).values().cloned().collect();
        for cell in &cells {
            self.start_cell_dialers(cell);
        }
    }

    /// Starts a dialer for each peer of `cell` that has an address and no dialer yet.
    fn start_cell_dialers(&self, cell: &CellNet) {
        let me = self.inner.keypair.public();
        for peer in &cell.peers {
            if peer.addresses.is_empty() || !lock(&self.inner.dialers).insert((cell.id, peer.id)) {
                continue;
            }
            let preferred = !cell.dialable || me.to_bytes() < peer.id.to_bytes();
            let grace = if preferred {
                Duration::ZERO
            } else {
                FALLBACK_DIAL_GRACE
            };
            let network = self.clone();
            let (cell, peer) = (cell.id, peer.id);
            smol::spawn(async move {
                network.dial_loop(cell, peer, grace).await;
                lock(&network.inner.dialers).remove(&(cell, peer));
            })
            .detach();
        }
    }

    /// The cell `id` as the network serves it now.
    fn cell(&self, id: &PublicKey) -> Option<CellNet> {
        lock(&self.inner.cells).get(id).cloned()
    }

    /// The peer `node` of `cell` with its current addresses, if it still is one.
    fn current_peer(&self, cell: &PublicKey, node: &PublicKey) -> Option<PeerNode> {
        lock(&self.inner.cells)
            .get(cell)?
            .peers
            .iter()
            .find(|p| p.id == *node && !p.addresses.is_empty())
            .cloned()
    }

    /// Replaces what the network knows of a cell after a membership change, without a
    /// restart: connections of keys that are no longer members are closed (and refused at
    /// the handshake from now on), dialers start for new peers, and a removed peer's dialer
    /// stops at its next attempt.
    pub fn update_cell(&self, cell: CellNet) {
        let removed: Vec<Connection> = lock(&self.inner.connections)
            .values()
            .filter(|c| c.cell() == cell.id && !cell.members.contains(&c.remote()))
            .cloned()
            .collect();
        let id = cell.id;
        lock(&self.inner.cells).insert(id, cell.clone());
        for connection in removed {
            info!(
                "closing the link to {} in cell `{}`: it is no longer a member",
                connection.remote().fingerprint(),
                cell.name
            );
            connection.close("no longer a member of the cell");
        }
        self.start_cell_dialers(&cell);
    }

    /// Stops serving a cell (this node was removed from it): its connections are closed,
    /// its dialers stop, and connections for it are refused.
    pub fn remove_cell(&self, id: &PublicKey, reason: &str) {
        lock(&self.inner.cells).remove(id);
        let closing: Vec<Connection> = lock(&self.inner.connections)
            .values()
            .filter(|c| c.cell() == *id)
            .cloned()
            .collect();
        for connection in closing {
            connection.close(reason);
        }
    }

    async fn dial_loop(&self, cell: PublicKey, node: PublicKey, grace: Duration) {
        let mut backoff = Backoff::new();
        let mut down_since = Instant::now();
        loop {
            // The peer as the cell knows it now: gone after a membership change removed it.
            let Some(peer) = self.current_peer(&cell, &node) else {
                return;
            };
            let linked = self.link(&cell, &peer.id).is_some();
            if linked {
                down_since = Instant::now();
            }
            if linked || down_since.elapsed() < grace {
                // Linked (maybe through an inbound connection), or giving the preferred side
                // its chance to dial: check again later.
                // Linked through an inbound connection: check again later.
                if self
                    .unless_stopped(Timer::after(Duration::from_secs(1)))
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            }
            match self.unless_stopped(self.dial(&cell, &peer)).await {
                None => return,
                Some(Ok((session, address))) => {
                    backoff.reset();
                    // Not raced with the shutdown: shutdown closes the connection, and `run`
                    // must finish to unregister it.
                    let received_any = self
                        .run(session, cell, peer.id, address, Direction::Outbound)
                        .await;
                    if !received_any {
                        self.refused_after_handshake(&cell, &peer);
                    }
                    down_since = Instant::now();
                }
                Some(Err(err)) => {
                    let mut links = lock(&self.inner.links);
                    let link = links.entry((cell, peer.id)).or_default();
                    if link.last_error.as_deref() != Some(err.as_str()) {
                        info!("cannot reach `{}`: {err}", peer.name);
                    }
                    link.last_error = Some(err);
                }
            }
            let delay = backoff.next_delay(fastrand::u64(..));
            if self.unless_stopped(Timer::after(delay)).await.is_none() {
                return;
            }
        }
    }

    /// Runs `work` unless the network shuts down first (then `None`).
    async fn unless_stopped<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        let stopped = self.inner.shutdown.1.clone();
        future::or(async { Some(work.await) }, async {
            let _ = stopped.recv().await;
            None
        })
        .await
    }

    async fn dial(
        &self,
        cell: &PublicKey,
        peer: &PeerNode,
    ) -> Result<(session::Session<TcpStream>, String), String> {
        let mut last_error = String::from("no address");
        for address in &peer.addresses {
            let connect = async {
                TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| e.to_string())
            };
            let timeout = async {
                Timer::after(exocore_protocol::HANDSHAKE_TIMEOUT).await;
                Err("connection timed out".to_string())
            };
            let stream = match future::or(connect, timeout).await {
                Ok(stream) => stream,
                Err(err) => {
                    last_error = format!("{address}: {err}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match session::initiate(stream, &self.inner.keypair, cell, &[peer.id]).await {
                Ok(session) => return Ok((session, address.clone())),
                Err(err) => last_error = format!("{address}: {err}"),
            }
        }
        Err(last_error)
    }

    /// The live connection to `node` in `cell`, if any.
    pub fn link(&self, cell: &PublicKey, node: &PublicKey) -> Option<Connection> {
        lock(&self.inner.links)
            .get(&(*cell, *node))
            .and_then(|l| l.connection.clone())
    }

    /// The state of the link to every peer of `cell`, in the cell's order.
    pub fn peer_links(&self, cell: &PublicKey) -> Vec<PeerLink> {
        let Some(cell_net) = lock(&self.inner.cells).get(cell).cloned() else {
            return Vec::new();
        };
        let links = lock(&self.inner.links);
        cell_net
            .peers
            .iter()
            .map(|peer| {
                let link = links.get(&(*cell, peer.id));
                let connection = link.and_then(|l| l.connection.as_ref());
                PeerLink {
                    id: peer.id,
                    name: peer.name.clone(),
                    connected: connection.is_some(),
                    last_seen_us: connection
                        .map(Connection::last_received_us)
                        .or(link.and_then(|l| l.last_seen_us)),
                    last_error: link.and_then(|l| l.last_error.clone()),
                }
            })
            .collect()
    }

    /// Sends a request to `node` of `cell` over its link.
    pub async fn request(
        &self,
        cell: &PublicKey,
        node: &PublicKey,
        service: Service,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let connection = self.connection_to(cell, node)?;
        connection.request(service, payload, timeout).await
    }

    /// The live connection to `node` of `cell`, or why there is none.
    fn connection_to(&self, cell: &PublicKey, node: &PublicKey) -> Result<Connection, NetError> {
        let links = lock(&self.inner.links);
        let link = links.get(&(*cell, *node));
        match link.and_then(|l| l.connection.clone()) {
            Some(connection) => Ok(connection),
            None => Err(NetError::NotConnected(
                link.and_then(|l| l.last_error.clone()),
            )),
        }
    }

    /// Sends a one-way message to `node` of `cell` over its link.
    pub fn notify(
        &self,
        cell: &PublicKey,
        node: &PublicKey,
        service: Service,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        let connection = self.connection_to(cell, node)?;
        connection.notify(service, payload)
    }

    /// Pings every peer of `cell` over its link, in the cell's order.
    pub async fn ping_peers(&self, cell: &PublicKey) -> Vec<PeerPing> {
        let Some(cell_net) = self.cell(cell) else {
            return Vec::new();
        };
        let pings = cell_net.peers.iter().map(|peer| {
            let network = self.clone();
            let (cell, node) = (*cell, peer.id);
            smol::spawn(async move {
                let result = match network.link(&cell, &node) {
                    Some(connection) => connection.ping(PING_TIMEOUT).await,
                    None => {
                        let last = lock(&network.inner.links)
                            .get(&(cell, node))
                            .and_then(|l| l.last_error.clone());
                        Err(NetError::NotConnected(last))
                    }
                };
                match result {
                    Ok(rtt) => PeerPing {
                        node: node.to_bytes(),
                        rtt_us: Some(rtt.as_micros() as u64),
                        error: String::new(),
                    },
                    Err(err) => PeerPing {
                        node: node.to_bytes(),
                        rtt_us: None,
                        error: err.to_string(),
                    },
                }
            })
        });
        let tasks: Vec<_> = pings.collect();
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(task.await);
        }
        out
    }

    /// Closes every connection with a Close giving `reason`, and stops listening and dialing.
    pub async fn shutdown(&self, reason: &str) {
        self.inner.shutdown.0.close();
        let connections: Vec<Connection> =
            lock(&self.inner.connections).values().cloned().collect();
        for connection in &connections {
            connection.close(reason);
        }
        // Let the writers flush their Close, bounded.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !lock(&self.inner.connections).is_empty() && Instant::now() < deadline {
            Timer::after(Duration::from_millis(20)).await;
        }
    }

    /// The CellAdmin service, answered by the network itself since it is about links.
    fn admin(&self, request: Incoming) -> AnswerFuture {
        let network = self.clone();
        Box::pin(async move {
            if request.from != network.inner.keypair.public() {
                return Err(ErrorBody {
                    code: ErrorCode::NOT_AUTHORIZED,
                    message: "only this node may administer it".into(),
                });
            }
            match wire::decode::<AdminRequest>(&request.payload) {
                Ok(AdminRequest::PingPeers) => {
                    let peers = network.ping_peers(&request.cell).await;
                    encode(&AdminResponse::PingPeers { peers })
                }
                // The rest is about the node's services, not its links.
                Ok(_) => network.inner.services.handle(request).await,
                Err(err) => Err(ErrorBody {
                    code: ErrorCode::BAD_MESSAGE,
                    message: err.to_string(),
                }),
            }
        })
    }
}

/// Routes a connection's requests: CellAdmin to the network, the rest to the node's services.
struct Routes {
    network: Network,
}

impl Services for Routes {
    fn handle(&self, request: Incoming) -> AnswerFuture {
        match request.service {
            Service::CellAdmin => self.network.admin(request),
            _ => self.network.inner.services.handle(request),
        }
    }

    fn notify(&self, message: Incoming) {
        self.network.inner.services.notify(message)
    }

    fn subscribe(&self, request: Incoming, sink: EventSink) -> AnswerFuture {
        self.network.inner.services.subscribe(request, sink)
    }
}

fn encode<T: bincode::Encode>(value: &T) -> Answer {
    wire::encode(value).map_err(|e| ErrorBody {
        code: ErrorCode::INTERNAL,
        message: e.to_string(),
    })
}
