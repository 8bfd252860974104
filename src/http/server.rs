//! A small HTTP/1.1 server with fixed limits, built on std sockets and
//! poll(2); `httparse` parses request heads. Why not tiny_http: docs/http.md.
//!
//! Threads are bounded: one poller accepts connections, reads request heads
//! and sends what a client did not take at once, all without blocking, so a
//! slow, idle, hostile or non-reading client costs a buffer, never a thread.
//! Complete requests go to a fixed pool of workers, which write answers
//! without blocking and hand any unsent rest back to the poller. Long
//! responses (live streams, big downloads) move to a thread of their own,
//! counted against `max_streams`; beyond it the answer is 503.
//!
//! The connection table is shared fairly: one address holds at most
//! `per_address_connections` connections and `per_address_heads` unfinished
//! request heads, and when the table is full a new connection evicts the
//! oldest connection the poller holds, unauthenticated ones first, so idle
//! or slow clients can never lock the owner out. The handler says which
//! answers were authenticated (`Response::authenticated`); the server knows
//! nothing else about credentials.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::answers::ErrorAnswer;

/// Resource limits of the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Threads answering ordinary requests.
    pub workers: usize,
    /// Open connections (idle, reading, being answered or streaming).
    pub max_connections: usize,
    /// Long responses running at once (live views, playback, downloads).
    pub max_streams: usize,
    pub head_bytes_max: usize,
    pub body_bytes_max: usize,
    /// Time allowed from accepting a connection (or from the end of the
    /// previous answer on it) until a whole request has arrived.
    pub request_timeout: Duration,
    /// Time a keep-alive connection may sit idle.
    pub idle_timeout: Duration,
    /// Time one write may block on a client that does not read.
    pub write_timeout: Duration,
    /// Bodies larger than this are sent from a stream thread. Smaller ones
    /// are built in memory, so an answer a client does not read waits in the
    /// poller, not on a worker.
    pub stream_threshold_bytes: u64,
    /// Open connections from one client address.
    pub per_address_connections: usize,
    /// Request heads from one address that have started but not arrived whole.
    pub per_address_heads: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            workers: 4,
            max_connections: 64,
            max_streams: 8,
            head_bytes_max: 8 * 1024,
            body_bytes_max: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            stream_threshold_bytes: 1024 * 1024,
            per_address_connections: 16,
            per_address_heads: 8,
        }
    }
}

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without the query, not percent-decoded.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: IpAddr,
    /// HTTP/1.0 clients get `Connection: close`.
    pub http10: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes a response body to the client.
pub type BodyWriter = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    Static(&'static [u8]),
    /// Length known up front, bytes produced as they are sent.
    Sized {
        len: u64,
        write: BodyWriter,
    },
    /// No length (multipart streams): the connection closes at the end.
    Endless(BodyWriter),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// The request carried credentials the handler accepted: its connection
    /// is then evicted only when no unauthenticated one can be.
    pub authenticated: bool,
}

/// Sent with every answer unless the handler set the header itself.
/// Nothing here is meant to be cached: live frames, status and recordings
/// change by the second and are private, and the dashboard files are
/// embedded in the binary, so a browser saves little by keeping them.
const DEFAULT_HEADERS: [(&str, &str); 3] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
];

impl Response {
    pub fn new(status: u16, content_type: &str, body: Body) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            authenticated: false,
        }
    }

    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        let body = serde_json::to_vec(value).unwrap_or_else(|e| {
            format!("{{\"error\":\"cannot encode the answer: {e}\"}}").into_bytes()
        });
        Response::new(status, "application/json", Body::Bytes(body))
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Marks the answer as given to an authenticated request.
    pub fn authenticated(mut self) -> Response {
        self.authenticated = true;
        self
    }
}

/// Answers requests. Runs on worker threads; must not block for long (hand
/// long work to a `Body::Endless` or `Body::Sized` writer instead).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request) -> Response;
}

/// Counters the service shows and tests check.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections: AtomicUsize,
    pub streams: AtomicUsize,
    pub rejected_busy: AtomicUsize,
    pub timed_out: AtomicUsize,
    /// Connections closed to make room for a new one.
    pub evicted: AtomicUsize,
}

pub struct HttpServer {
    pub local_addr: SocketAddr,
    pub stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

struct Conn {
    stream: TcpStream,
    peer: IpAddr,
    /// Received bytes not yet used by a request.
    buf: Vec<u8>,
    /// An answer, or its rest, that the client has not taken yet.
    out: Vec<u8>,
    out_sent: usize,
    /// Whether the connection stays open once `out` is sent.
    keep_after_out: bool,
    deadline: Instant,
    /// The deadline is the keep-alive one: the first byte of a new request
    /// replaces it with the request timeout.
    idle_deadline: bool,
    /// When the connection last changed state; the oldest is evicted first.
    since: Instant,
    /// Some request on it carried credentials the handler accepted.
    authenticated: bool,
    /// The client shut down its side: answer what it sent, then close.
    peer_closed: bool,
    /// Released when the connection is dropped.
    _slot: ConnSlot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    /// Waiting for the first byte of a request.
    Idle,
    /// Part of a request head (or body) has arrived.
    Head,
    /// An answer waits for the client to read it.
    Writing,
}

impl Conn {
    fn state(&self) -> ConnState {
        if self.out_sent < self.out.len() {
            ConnState::Writing
        } else if self.buf.is_empty() {
            ConnState::Idle
        } else {
            ConnState::Head
        }
    }

    /// Sends as much of `out` as the socket takes without blocking. True
    /// once all of it is sent.
    fn flush_out(&mut self) -> io::Result<bool> {
        while self.out_sent < self.out.len() {
            match (&self.stream).write(&self.out[self.out_sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out = Vec::new();
        self.out_sent = 0;
        Ok(true)
    }

    /// Closes after the last answer: the client reads it to the end.
    fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Open connections per client address, shared by every thread that holds
/// a connection.
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

struct ConnSlot {
    stats: Arc<ServerStats>,
    per_address: PerAddress,
    peer: IpAddr,
}

impl ConnSlot {
    fn take(stats: &Arc<ServerStats>, per_address: &PerAddress, peer: IpAddr) -> ConnSlot {
        stats.connections.fetch_add(1, Ordering::Relaxed);
        *lock(per_address).entry(peer).or_insert(0) += 1;
        ConnSlot {
            stats: stats.clone(),
            per_address: per_address.clone(),
            peer,
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        let mut open = lock(&self.per_address);
        if let Some(n) = open.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct StreamSlot(Arc<ServerStats>);

impl StreamSlot {
    fn take(stats: &Arc<ServerStats>, max: usize) -> Option<StreamSlot> {
        let taken = stats
            .streams
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| StreamSlot(stats.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Job {
    conn: Conn,
    req: Request,
}

/// Where workers hand connections back to the poller: kept-alive ones, and
/// ones whose answer the client has not read yet.
#[derive(Clone)]
struct ReturnPath {
    tx: Sender<Conn>,
    wake: Arc<UnixStream>,
}

impl ReturnPath {
    fn give_back(&self, conn: Conn) {
        if self.tx.send(conn).is_ok() {
            let _ = (&*self.wake).write(&[1]);
        }
    }
}

impl HttpServer {
    /// Binds and starts serving. Port 0 picks a free port (see `local_addr`).
    pub fn start(
        addr: SocketAddr,
        limits: Limits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let (ret_tx, ret_rx) = mpsc::channel();
        let back = ReturnPath {
            tx: ret_tx,
            wake: Arc::new(wake_tx),
        };
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(limits.max_connections);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut threads = Vec::new();
        for i in 0..limits.workers.max(1) {
            let (rx, handler, limits, stats, back) = (
                job_rx.clone(),
                handler.clone(),
                limits.clone(),
                stats.clone(),
                back.clone(),
            );
            threads.push(spawn(format!("http-worker{i}"), move || {
                worker_loop(rx, handler, limits, stats, back)
            })?);
        }
        let poller = Poller {
            listener,
            wake: wake_rx,
            returned: ret_rx,
            jobs: job_tx,
            conns: Vec::new(),
            per_address: PerAddress::default(),
            limits,
            stats: stats.clone(),
            stop: stop.clone(),
        };
        threads.push(spawn("http-poller".into(), move || poller.run())?);
        Ok(HttpServer {
            local_addr,
            stats,
            stop,
            threads,
        })
    }

    /// Stops accepting, lets workers finish, and waits up to `grace` for
    /// streams to notice (their writers should watch their own stop flag).
    pub fn stop(self, grace: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let until = Instant::now() + grace;
        while self.stats.streams.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

struct Poller {
    listener: TcpListener,
    wake: UnixStream,
    returned: Receiver<Conn>,
    jobs: SyncSender<Job>,
    /// Connections the poller holds: idle, reading a head, or writing.
    conns: Vec<Conn>,
    per_address: PerAddress,
    limits: Limits,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
}

const POLL_INTERVAL_MS: u16 = 200;

impl Poller {
    fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            while let Ok(conn) = self.returned.try_recv() {
                self.take_back(conn);
            }
            self.expire(Instant::now());
            let (listener_ready, wake_ready, ready) = match self.wait() {
                Ok(r) => r,
                Err(e) => {
                    log::error!("http: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS.into()));
                    continue;
                }
            };
            if wake_ready {
                let mut sink = [0u8; 64];
                while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
            }
            // Highest index first so removals keep the others in place.
            for i in ready.into_iter().rev() {
                if self.conns[i].state() == ConnState::Writing {
                    self.write_to(i);
                } else {
                    self.read_from(i);
                }
            }
            if listener_ready {
                self.accept_all();
            }
        }
    }

    /// A connection back from a worker: its answer may still be unsent.
    fn take_back(&mut self, mut conn: Conn) {
        let now = Instant::now();
        conn.since = now;
        if conn.state() == ConnState::Writing {
            conn.deadline = now + self.limits.write_timeout;
            self.conns.push(conn);
        } else {
            self.answered(conn);
        }
    }

    /// The answer on `conn` is sent: wait for the next request, serving any
    /// that already arrived (pipelined) at once.
    fn answered(&mut self, mut conn: Conn) {
        if !conn.keep_after_out {
            conn.close();
            return;
        }
        let now = Instant::now();
        conn.since = now;
        if conn.buf.is_empty() {
            conn.deadline = now + self.limits.idle_timeout;
            conn.idle_deadline = true;
        } else {
            conn.deadline = now + self.limits.request_timeout;
            conn.idle_deadline = false;
        }
        self.advance(conn);
    }

    /// Closes connections past their deadline. A request head that did not
    /// arrive in time gets 408; an idle connection or an unread answer is
    /// just closed.
    fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].deadline > now {
                i += 1;
                continue;
            }
            let conn = self.conns.swap_remove(i);
            self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            if conn.state() == ConnState::Head {
                let message = format!(
                    "the request did not arrive whole within {} ms",
                    self.limits.request_timeout.as_millis()
                );
                refuse(conn.stream, 408, &message);
            }
        }
    }

    /// Polls the listener, the wake socket and every connection.
    fn wait(&self) -> nix::Result<(bool, bool, Vec<usize>)> {
        let mut fds = Vec::with_capacity(self.conns.len() + 2);
        fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
        for c in &self.conns {
            let want = if c.state() == ConnState::Writing {
                PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            fds.push(PollFd::new(c.stream.as_fd(), want));
        }
        poll(&mut fds, PollTimeout::from(POLL_INTERVAL_MS))?;
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let conns = fds[2..]
            .iter()
            .enumerate()
            .filter(|(_, fd)| ready(fd))
            .map(|(i, _)| i)
            .collect();
        Ok((ready(&fds[0]), ready(&fds[1]), conns))
    }

    fn open_from(&self, peer: IpAddr) -> usize {
        lock(&self.per_address).get(&peer).copied().unwrap_or(0)
    }

    fn accept_all(&mut self) {
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors and the like: keep serving the others.
                    log::warn!("http: accept failed: {e}");
                    return;
                }
            };
            let peer = peer.ip();
            // Room is made by evicting what the poller holds: connections at
            // a worker or streaming are busy, not idle.
            if self.open_from(peer) >= self.limits.per_address_connections
                && !self.evict(Some(peer))
            {
                self.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
                refuse(
                    stream,
                    503,
                    "too many connections from this address; try again shortly",
                );
                continue;
            }
            if self.stats.connections.load(Ordering::Relaxed) >= self.limits.max_connections
                && !self.evict(None)
            {
                self.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
                refuse(stream, 503, "too many connections; try again shortly");
                continue;
            }
            let slot = ConnSlot::take(&self.stats, &self.per_address, peer);
            let _ = stream.set_nodelay(true);
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let now = Instant::now();
            self.conns.push(Conn {
                stream,
                peer,
                buf: Vec::new(),
                out: Vec::new(),
                out_sent: 0,
                keep_after_out: false,
                deadline: now + self.limits.request_timeout,
                idle_deadline: false,
                since: now,
                authenticated: false,
                peer_closed: false,
                _slot: slot,
            });
        }
    }

    /// Closes the connection that matters least (of `peer` only, when
    /// given): an unauthenticated one in any state, else an idle
    /// authenticated one; the oldest first. False if none can go.
    fn evict(&mut self, peer: Option<IpAddr>) -> bool {
        let victim = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| peer.is_none_or(|p| c.peer == p))
            .filter_map(|(i, c)| {
                let rank = match (c.authenticated, c.state()) {
                    (false, _) => 0,
                    (true, ConnState::Idle) => 1,
                    (true, _) => return None,
                };
                Some((rank, c.since, i))
            })
            .min();
        let Some((_, _, i)) = victim else {
            return false;
        };
        let conn = self.conns.swap_remove(i);
        self.stats.evicted.fetch_add(1, Ordering::Relaxed);
        if conn.state() == ConnState::Head {
            refuse(conn.stream, 503, "the server is busy; try again shortly");
        }
        true
    }

    fn write_to(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let sent_before = conn.out_sent;
        match conn.flush_out() {
            Ok(false) => {
                // Like a blocking write's timeout: a slow phone that keeps
                // reading keeps its answer; one that stopped loses it.
                if conn.out_sent > sent_before {
                    conn.deadline = Instant::now() + self.limits.write_timeout;
                }
            }
            Ok(true) => {
                let conn = self.conns.swap_remove(i);
                self.answered(conn);
            }
            Err(_) => {
                self.conns.swap_remove(i);
            }
        }
    }

    fn read_from(&mut self, i: usize) {
        let limit = self.limits.head_bytes_max + self.limits.body_bytes_max;
        let conn = &mut self.conns[i];
        let mut chunk = [0u8; 4096];
        loop {
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    // A half-close ends what the client sends, not what it
                    // reads: requests already here are still answered.
                    conn.peer_closed = true;
                    break;
                }
                Ok(n) => {
                    if conn.buf.is_empty() && conn.idle_deadline {
                        conn.deadline = Instant::now() + self.limits.request_timeout;
                        conn.idle_deadline = false;
                    }
                    conn.buf.extend_from_slice(&chunk[..n]);
                    if conn.buf.len() > limit {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.conns.swap_remove(i);
                    return;
                }
            }
        }
        let conn = self.conns.swap_remove(i);
        self.advance(conn);
    }

    /// Serves the request at the start of `conn.buf` if it is whole, else
    /// keeps waiting for it.
    fn advance(&mut self, mut conn: Conn) {
        match parse_request(&conn.buf, conn.peer, &self.limits) {
            Parsed::Incomplete => {
                if conn.peer_closed {
                    return;
                }
                if !conn.buf.is_empty() {
                    let heads = self
                        .conns
                        .iter()
                        .filter(|c| c.peer == conn.peer && c.state() == ConnState::Head)
                        .count();
                    if heads >= self.limits.per_address_heads {
                        self.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
                        refuse(
                            conn.stream,
                            429,
                            "too many unfinished requests from this address",
                        );
                        return;
                    }
                }
                self.conns.push(conn);
            }
            Parsed::Bad(status, message) => refuse(conn.stream, status, &message),
            Parsed::Complete(req, used) => {
                conn.buf.drain(..used);
                match self.jobs.try_send(Job { conn, req }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                        self.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
                        refuse(
                            job.conn.stream,
                            503,
                            "the server is busy; try again shortly",
                        );
                    }
                }
            }
        }
    }
}

/// What the bytes received so far on a connection amount to.
#[derive(Debug)]
pub enum Parsed {
    Incomplete,
    Complete(Request, usize),
    Bad(u16, String),
}

const HEADERS_MAX: usize = 48;

/// Parses one request from the start of `buf`: its head, query and body.
/// Public so the fuzz targets can drive it with arbitrary bytes.
pub fn parse_request(buf: &[u8], peer: IpAddr, limits: &Limits) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.head_bytes_max {
                Parsed::Bad(
                    431,
                    format!(
                        "request head is larger than {} bytes",
                        limits.head_bytes_max
                    ),
                )
            } else {
                Parsed::Incomplete
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Bad(431, format!("more than {HEADERS_MAX} headers"))
        }
        Err(e) => return Parsed::Bad(400, format!("malformed request: {e}")),
    };
    if head_len > limits.head_bytes_max {
        return Parsed::Bad(
            431,
            format!(
                "request head is larger than {} bytes",
                limits.head_bytes_max
            ),
        );
    }
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let all = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let lengths = all("content-length");
    // Two framings, or two lengths, are how requests get smuggled past a
    // proxy that reads them differently: refuse rather than pick one.
    if !all("transfer-encoding").is_empty() {
        return if lengths.is_empty() {
            Parsed::Bad(411, "send request bodies with Content-Length".into())
        } else {
            Parsed::Bad(
                400,
                "Content-Length and Transfer-Encoding together are ambiguous".into(),
            )
        };
    }
    let body_len = match lengths.as_slice() {
        [] => 0,
        [one] => match content_length(one) {
            Some(n) => n,
            None => {
                return Parsed::Bad(
                    400,
                    format!("Content-Length '{one}' is not a plain decimal number"),
                )
            }
        },
        _ => return Parsed::Bad(400, "more than one Content-Length".into()),
    };
    if body_len > limits.body_bytes_max {
        return Parsed::Bad(
            413,
            format!(
                "request body is larger than {} bytes",
                limits.body_bytes_max
            ),
        );
    }
    if buf.len() < head_len + body_len {
        return Parsed::Incomplete;
    }
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Parsed::Complete(
        Request {
            method: parsed.method.unwrap_or("").to_string(),
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            headers,
            body: buf[head_len..head_len + body_len].to_vec(),
            peer,
            http10: parsed.version == Some(0),
        },
        head_len + body_len,
    )
}

/// A Content-Length value: digits only (`usize::from_str` would also take
/// a leading `+`).
fn content_length(value: &str) -> Option<usize> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The default headers the handler did not set, as head lines.
fn default_headers(set: &[(String, String)]) -> String {
    DEFAULT_HEADERS
        .iter()
        .filter(|(name, _)| !set.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect()
}

/// Sends a short JSON error and closes, without ever blocking the poller.
fn refuse(stream: TcpStream, status: u16, message: &str) {
    let answer = ErrorAnswer {
        error: message.into(),
    };
    let body = serde_json::to_string(&answer).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        default_headers(&[]),
        body.len()
    );
    let _ = stream.set_nonblocking(true);
    let _ = (&stream).write_all(format!("{head}{body}").as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

fn worker_loop(
    jobs: Arc<Mutex<Receiver<Job>>>,
    handler: Arc<dyn Handler>,
    limits: Limits,
    stats: Arc<ServerStats>,
    back: ReturnPath,
) {
    loop {
        let job = lock(&jobs).recv();
        let Ok(Job { mut conn, req }) = job else {
            return;
        };
        let response =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(&req)))
                .unwrap_or_else(|_| {
                    log::error!("http: handler panicked on {} {}", req.method, req.path);
                    Response::json(
                        500,
                        &ErrorAnswer {
                            error: "internal error".into(),
                        },
                    )
                });
        conn.authenticated |= response.authenticated;
        if let Some(conn) = respond(conn, &req, response, &limits, &stats) {
            back.give_back(conn);
        }
    }
}

/// Writes the response. Returns the connection if the poller must go on
/// with it: to keep it alive, or to send what the client has not taken.
fn respond(
    mut conn: Conn,
    req: &Request,
    mut response: Response,
    limits: &Limits,
    stats: &Arc<ServerStats>,
) -> Option<Conn> {
    let head_only = req.method == "HEAD";
    let client_keeps = !req.http10
        && !req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let long = match &response.body {
        Body::Endless(_) => true,
        Body::Sized { len, .. } => *len > limits.stream_threshold_bytes,
        _ => false,
    };
    let stream_slot = if long && !head_only {
        match StreamSlot::take(stats, limits.max_streams) {
            Some(slot) => Some(slot),
            None => {
                let message = format!(
                    "{} streams are already open, the most this device serves at once; close one and retry",
                    limits.max_streams
                );
                response = Response::json(503, &ErrorAnswer { error: message })
                    .with_header("Retry-After", "5");
                None
            }
        }
    } else {
        None
    };
    let keep_alive = client_keeps && stream_slot.is_none();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&default_headers(&response.headers));
    let length = match &response.body {
        Body::Empty => Some(0),
        Body::Bytes(b) => Some(b.len() as u64),
        Body::Static(b) => Some(b.len() as u64),
        Body::Sized { len, .. } => Some(*len),
        Body::Endless(_) => None,
    };
    if let Some(len) = length {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let body = if head_only {
        Body::Empty
    } else {
        response.body
    };
    let mut out = head.into_bytes();
    match body {
        Body::Empty => {}
        Body::Bytes(b) => out.extend_from_slice(&b),
        Body::Static(b) => out.extend_from_slice(b),
        Body::Sized { write, .. } | Body::Endless(write) if stream_slot.is_some() => {
            let slot = stream_slot;
            // A stream thread may block on its client: that costs only its
            // own slot, and the write timeout ends it.
            if conn.stream.set_nonblocking(false).is_err()
                || conn
                    .stream
                    .set_write_timeout(Some(limits.write_timeout))
                    .is_err()
            {
                return None;
            }
            let started = spawn("http-stream".into(), move || {
                send_streamed(&conn, out, write);
                drop(slot);
            });
            if let Err(e) = started {
                log::error!("http: cannot start a stream thread: {e}");
            }
            return None;
        }
        Body::Sized { write, len } => {
            // At most `stream_threshold_bytes`: built here, so that sending
            // it never waits on the client.
            let start = out.len();
            if let Err(e) = write(&mut out) {
                log::warn!("http: answer to {} could not be built: {e}", conn.peer);
                return None;
            }
            if (out.len() - start) as u64 != len {
                log::error!(
                    "http: answer to {} {} is {} bytes, not the {len} announced",
                    req.method,
                    req.path,
                    out.len() - start
                );
                return None;
            }
        }
        // Without a stream slot an endless body has already been replaced
        // by the 503 above.
        Body::Endless(_) => return None,
    }
    conn.out = out;
    conn.out_sent = 0;
    conn.keep_after_out = keep_alive;
    match conn.flush_out() {
        Err(_) => None,
        Ok(true) if !keep_alive => {
            conn.close();
            None
        }
        Ok(_) => Some(conn),
    }
}

/// Sends a head and a produced body; false if the client went away.
fn send_streamed(conn: &Conn, head: Vec<u8>, write: BodyWriter) -> bool {
    let mut out = BufWriter::with_capacity(64 * 1024, &conn.stream);
    // The head goes out at once: a download starts before its body is read.
    let result = out
        .write_all(&head)
        .and_then(|()| out.flush())
        .and_then(|()| write(&mut out))
        .and_then(|()| out.flush());
    if let Err(e) = &result {
        log::debug!("http: response to {} ended early: {e}", conn.peer);
    }
    result.is_ok()
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Parsed {
        parse_request(
            raw.as_bytes(),
            "127.0.0.1".parse().unwrap(),
            &Limits::default(),
        )
    }

    #[test]
    fn parses_a_get_with_query_and_leaves_pipelined_bytes() {
        let raw = "GET /api/frame?camera=front&at=2026-11-20T10%3A00%3A00Z HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\nGET /next";
        let Parsed::Complete(req, used) = parse(raw) else {
            panic!("should parse")
        };
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/api/frame");
        assert_eq!(req.param("at"), Some("2026-11-20T10:00:00Z"));
        assert_eq!(req.header("x-a"), Some("b"));
        assert_eq!(&raw[used..], "GET /next");
        assert!(!req.http10);
    }

    #[test]
    fn waits_for_the_whole_body() {
        let head = "POST /api/login HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
        assert!(matches!(parse(&format!("{head}token")), Parsed::Incomplete));
        let Parsed::Complete(req, _) = parse(&format!("{head}token=abcd")) else {
            panic!("should parse")
        };
        assert_eq!(req.body, b"token=abcd");
    }

    #[test]
    fn refuses_oversized_heads_bodies_and_chunked_uploads() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert!(matches!(parse(&big), Parsed::Bad(431, _)));
        let body = "POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n";
        assert!(matches!(parse(body), Parsed::Bad(413, _)));
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse(chunked), Parsed::Bad(411, _)));
        assert!(matches!(parse("GARBAGE\x01\r\n\r\n"), Parsed::Bad(400, _)));
    }

    #[test]
    fn a_duplicate_content_length_is_refused() {
        let twice =
            "POST /api/login HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 7\r\n\r\nabcdefg";
        assert!(matches!(parse(twice), Parsed::Bad(400, _)));
        let same = "POST /api/login HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
        assert!(matches!(parse(same), Parsed::Bad(400, _)));
        let listed = "POST /api/login HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc";
        assert!(matches!(parse(listed), Parsed::Bad(400, _)));
    }

    #[test]
    fn a_signed_content_length_is_refused() {
        for value in ["+7", "-1", "+0", " +7", "0x7", "7 7", ""] {
            let raw = format!("POST /api/login HTTP/1.1\r\nContent-Length: {value}\r\n\r\ntoken=a");
            assert!(
                matches!(parse(&raw), Parsed::Bad(400, _)),
                "Content-Length {value:?}"
            );
        }
        let plain = "POST /api/login HTTP/1.1\r\nContent-Length: 7\r\n\r\ntoken=a";
        assert!(matches!(parse(plain), Parsed::Complete(_, _)));
    }

    #[test]
    fn content_length_with_transfer_encoding_is_refused() {
        let both =
            "POST /api/login HTTP/1.1\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse(both), Parsed::Bad(400, _)));
        let reversed = "POST /api/login HTTP/1.1\r\nTransfer-Encoding: identity\r\nContent-Length: 7\r\n\r\ntoken=a";
        assert!(matches!(parse(reversed), Parsed::Bad(400, _)));
    }

    #[test]
    fn default_headers_give_way_to_the_handlers_own() {
        let none = default_headers(&[]);
        assert!(none.contains("X-Content-Type-Options: nosniff\r\n"));
        assert!(none.contains("Cache-Control: no-store\r\n"));
        assert!(none.contains("Referrer-Policy: no-referrer\r\n"));
        let set = default_headers(&[("cache-control".into(), "no-store, no-transform".into())]);
        assert!(!set.contains("Cache-Control"));
        assert!(set.contains("nosniff"));
    }
}
