//! The load generator's steady state: the client-side counterpart of the
//! session table (session_table.rs).
//!
//! Python runs each session's handshake, then hands its current epochs over
//! (ciphers, replay window, next write sequence number; RFC 6347 §4.1) with
//! the session's connected UDP socket. From then on the table keeps `window`
//! Confirmable CoAP requests (RFC 7252 §4.2) in flight on every session:
//! it builds each request (4-byte token, message IDs counting up), seals it,
//! sends it, opens the responses (replay check §4.1.2.6, AEAD open; failures
//! dropped, §4.1.2.7), matches them to their tokens, records the latency and
//! sends the next request. Empty ACKs and resets are matched by message ID,
//! separate responses (CON) are acknowledged. Anything that is not
//! application data of the current read epoch (alerts, handshake
//! retransmissions) is handed back to Python untouched.
//!
//! Policy stays in Python: [`ClientTable::tick`] lists the requests whose
//! retransmission timer (or overall timeout) expired, and Python answers
//! each with [`ClientTable::retransmit`] or [`ClientTable::give_up`].
//!
//! The logic takes the time as an argument and returns what to send, so that
//! it is tested without sockets (and against its pure-Python twin,
//! dtlsfast.pure.client_table); [`ClientTable::poll`] (Linux) is the I/O
//! around it: epoll over the sessions' sockets, recvmmsg into buffers
//! allocated once, send/sendmmsg.

use crate::cipher::RecordCipher;
use crate::errors::{CoreError, CoreResult};
use crate::record::{self, RecordFields, MAX_SEQUENCE_NUMBER};
use crate::replay::ReplayWindow;

/// RFC 6347 §4.1 content type of application data.
pub const APPLICATION_DATA: u8 = 23;
/// Latencies go into buckets 0.1 % wide from 1 µs up to 10,000 s (the load
/// generator's histogram, dtlsfast.loadgen).
pub fn bucket_count() -> usize {
    ((1e10f64).ln() * per_log()) as usize + 1
}

fn per_log() -> f64 {
    1.0 / (1.001f64).ln()
}

/// The histogram bucket of a latency in seconds.
pub fn bucket_of(latency: f64, top: usize) -> usize {
    let micros = latency * 1e6;
    if micros > 1.0 {
        ((micros.ln() * per_log()) as usize).min(top)
    } else {
        0
    }
}

const CON_TKL4: u8 = 0x44;
const TYPE_CON: u8 = 0;
const TYPE_ACK: u8 = 2;
const TYPE_RST: u8 = 3;
/// Requests in flight per session at most (the request window).
pub const MAX_WINDOW: usize = 256;

/// One request in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub token: u32,
    pub mid: u16,
    pub first_sent: f64,
    pub deadline: f64,
    pub timeout: f64,
    pub retransmissions: u32,
    pub acked: bool,
}

/// One established session of the generator.
#[derive(Clone, Debug)]
pub struct ClientSession {
    /// Its connected UDP socket, or -1 (the caller sends what it returns).
    pub fd: i32,
    pub read: RecordCipher,
    pub read_epoch: u16,
    pub window: ReplayWindow,
    pub write: RecordCipher,
    pub write_epoch: u16,
    pub next_write_sequence: u64,
    pub version: u16,
    pub mid: u16,
    pub token: u32,
    pub pending: Vec<Pending>,
    /// Replacements of requests lost to an ICMP error, sent at the next tick
    /// (so that a refused port is not a busy loop).
    pub deferred: u32,
    /// The server closed the session: it sends no more.
    pub dead: bool,
}

/// What the generator measured so far (dtlsfast.loadgen's `_Stats`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClientStats {
    pub requests: u64,
    pub error_responses: u64,
    pub resets: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
    pub retransmissions: u64,
    pub sessions_lost: u64,
    pub latency_sum: f64,
    pub latency_max: f64,
    pub buckets: Vec<u64>,
    pub codes: [u64; 256],
    /// Records that failed authentication or were replays (dropped).
    pub bad_records: u64,
    /// Datagrams that did not fit a receive buffer (dropped).
    pub truncated: u64,
}

impl ClientStats {
    fn new() -> Self {
        ClientStats {
            requests: 0,
            error_responses: 0,
            resets: 0,
            timeouts: 0,
            transport_errors: 0,
            retransmissions: 0,
            sessions_lost: 0,
            latency_sum: 0.0,
            latency_max: 0.0,
            buckets: vec![0; bucket_count()],
            codes: [0; 256],
            bad_records: 0,
            truncated: 0,
        }
    }

    pub fn errors(&self) -> u64 {
        self.error_responses + self.resets + self.timeouts + self.transport_errors
    }
}

/// A request whose timer expired, for Python's retransmission policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Due {
    pub session: usize,
    pub token: u32,
    pub retransmissions: u32,
    pub timeout: f64,
    pub first_sent: f64,
    pub acked: bool,
}

/// Datagrams to send: (session index, sealed record).
pub type Outgoing = Vec<(usize, Vec<u8>)>;

/// The request every session sends, and the timers' parameters.
#[derive(Clone, Debug)]
pub struct RequestPlan {
    /// The CoAP method code (1 GET, 2 POST, 3 PUT, 4 DELETE).
    pub code: u8,
    /// Everything after the token: options, payload marker, payload.
    pub tail: Vec<u8>,
    /// RFC 7252 §4.8 ACK_TIMEOUT and ACK_RANDOM_FACTOR.
    pub ack_timeout: f64,
    pub random_factor: f64,
    /// A request is due for Python's verdict at this age at the latest.
    pub request_timeout: f64,
}

/// The generator's sessions and what they measured.
#[derive(Debug)]
pub struct ClientTable {
    pub sessions: Vec<ClientSession>,
    plan: RequestPlan,
    rng: u64,
    running: bool,
    pub stats: ClientStats,
    top: usize,
    #[cfg(target_os = "linux")]
    io: io::Poller,
    /// recvmmsg's buffers, allocated once.
    #[cfg(target_os = "linux")]
    buffers: Vec<u8>,
}

impl ClientTable {
    pub fn new(plan: RequestPlan, seed: u64) -> CoreResult<Self> {
        if !(plan.ack_timeout > 0.0 && plan.random_factor >= 1.0 && plan.request_timeout > 0.0) {
            return Err(CoreError::config(
                "ack_timeout and request_timeout must be positive, random_factor at least 1",
            ));
        }
        if plan.tail.len() > 1024 {
            return Err(CoreError::config(
                "the request's options and payload take at most 1,024 bytes",
            ));
        }
        let stats = ClientStats::new();
        let top = stats.buckets.len() - 1;
        Ok(ClientTable {
            sessions: Vec::new(),
            plan,
            rng: seed,
            running: false,
            stats,
            top,
            #[cfg(target_os = "linux")]
            io: io::Poller::new()?,
            #[cfg(target_os = "linux")]
            buffers: vec![0u8; io::RECV_BATCH * io::RECV_BUFFER],
        })
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn running(&self) -> bool {
        self.running
    }

    /// Requests in flight over every session.
    pub fn in_flight(&self) -> usize {
        self.sessions.iter().map(|s| s.pending.len()).sum()
    }

    /// Take a session over; its index is returned. With `fd` >= 0 the
    /// table reads and writes that socket itself in [`ClientTable::poll`].
    pub fn add(&mut self, session: ClientSession) -> CoreResult<usize> {
        let index = self.sessions.len();
        #[cfg(target_os = "linux")]
        if session.fd >= 0 {
            self.io.register(session.fd, index)?;
        }
        self.sessions.push(session);
        Ok(index)
    }

    fn session(&mut self, index: usize) -> CoreResult<&mut ClientSession> {
        self.sessions
            .get_mut(index)
            .ok_or_else(|| CoreError::config(format!("no session {index} in the table")))
    }

    /// The next value of a splitmix64 generator, as a float in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Start the load: `window` requests on every live session.
    pub fn begin(&mut self, window: usize, now: f64, out: &mut Outgoing) -> CoreResult<()> {
        if !(1..=MAX_WINDOW).contains(&window) {
            return Err(CoreError::config(format!(
                "window must be from 1 to {MAX_WINDOW}, not {window}"
            )));
        }
        self.running = true;
        for index in 0..self.sessions.len() {
            for _ in 0..window {
                self.send_request(index, now, out);
            }
        }
        Ok(())
    }

    /// End the load: responses from now on count for nothing. Returns the
    /// requests still in flight (unanswered).
    pub fn end(&mut self) -> usize {
        self.running = false;
        self.in_flight()
    }

    fn send_request(&mut self, index: usize, now: f64, out: &mut Outgoing) {
        if !self.running {
            return;
        }
        let u = self.uniform();
        let plan = &self.plan;
        let timeout = plan.ack_timeout * (1.0 + (plan.random_factor - 1.0) * u);
        let request_timeout = plan.request_timeout;
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        if session.dead || session.pending.len() >= MAX_WINDOW {
            return;
        }
        session.mid = session.mid.wrapping_add(1);
        session.token = session.token.wrapping_add(1);
        let (mid, token) = (session.mid, session.token);
        session.pending.push(Pending {
            token,
            mid,
            first_sent: now,
            deadline: (now + timeout).min(now + request_timeout),
            timeout,
            retransmissions: 0,
            acked: false,
        });
        self.seal_request(index, mid, token, out);
    }

    fn seal_request(&mut self, index: usize, mid: u16, token: u32, out: &mut Outgoing) {
        let plan = &self.plan;
        let mut plaintext = Vec::with_capacity(8 + plan.tail.len());
        plaintext.extend_from_slice(&[CON_TKL4, plan.code]);
        plaintext.extend_from_slice(&mid.to_be_bytes());
        plaintext.extend_from_slice(&token.to_be_bytes());
        plaintext.extend_from_slice(&plan.tail);
        if let Some(session) = self.sessions.get_mut(index) {
            if let Some(record) = seal_in(session, &plaintext) {
                out.push((index, record));
            }
        }
    }

    /// A datagram from session `index`'s server. False if it is not for
    /// the fast path (not all application data of the current read epoch):
    /// then nothing was consumed and Python hands it to the connection.
    pub fn feed(&mut self, index: usize, datagram: &[u8], now: f64, out: &mut Outgoing) -> bool {
        let Some(session) = self.sessions.get_mut(index) else {
            return false;
        };
        let mut records = record::parse_records(datagram);
        let mut count = 0usize;
        for r in records.by_ref() {
            let h = r.header;
            if h.content_type != APPLICATION_DATA
                || h.epoch != session.read_epoch
                || h.version >> 8 != 0xFE
            {
                return false;
            }
            count += 1;
        }
        if count == 0 || !records.remaining().is_empty() {
            return false;
        }
        for r in record::parse_records(datagram) {
            let Some(session) = self.sessions.get_mut(index) else {
                return true;
            };
            let fields = r.header.fields();
            let seq = fields.sequence_number;
            if !session.window.check(seq) {
                self.stats.bad_records += 1;
                continue;
            }
            let Some(plaintext) = session.read.open_parts(&fields, r.fragment) else {
                self.stats.bad_records += 1;
                continue;
            };
            if session.window.accept(seq).is_err() {
                continue;
            }
            self.on_coap(index, &plaintext, now, out);
        }
        true
    }

    fn on_coap(&mut self, index: usize, data: &[u8], now: f64, out: &mut Outgoing) {
        if data.len() < 4 || !self.running {
            return; // after the end, responses count for nothing
        }
        let (b0, code) = (data[0], data[1]);
        let mtype = (b0 >> 4) & 3;
        let mid = u16::from_be_bytes([data[2], data[3]]);
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        if code == 0 {
            // An empty ACK (a separate response follows) or a reset.
            if mtype == TYPE_ACK {
                if let Some(entry) = session.pending.iter_mut().find(|e| e.mid == mid) {
                    entry.acked = true;
                }
            } else if mtype == TYPE_RST {
                if let Some(at) = session.pending.iter().position(|e| e.mid == mid) {
                    session.pending.remove(at);
                    self.stats.resets += 1;
                    self.send_request(index, now, out);
                }
            }
            return;
        }
        if mtype == TYPE_CON {
            // A separate response in a CON: acknowledge it.
            let ack = [0x60, 0, data[2], data[3]];
            if let Some(record) = seal_in(session, &ack) {
                out.push((index, record));
            }
        }
        let tkl = b0 & 0x0F;
        let Some(token) = (tkl == 4)
            .then(|| data.get(4..8))
            .flatten()
            .and_then(|t| <[u8; 4]>::try_from(t).ok())
            .map(u32::from_be_bytes)
        else {
            return;
        };
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        let Some(at) = session.pending.iter().position(|e| e.token == token) else {
            return; // late, duplicate or not ours
        };
        let found = session.pending.remove(at);
        let stats = &mut self.stats;
        let latency = now - found.first_sent;
        stats.latency_sum += latency;
        if latency > stats.latency_max {
            stats.latency_max = latency;
        }
        stats.buckets[bucket_of(latency, self.top)] += 1;
        stats.requests += 1;
        stats.codes[usize::from(code)] += 1;
        if code >= 0x80 {
            stats.error_responses += 1;
        }
        self.send_request(index, now, out);
    }

    /// Send the replacements that ICMP errors deferred, and list the
    /// requests due for a verdict: not acknowledged and past their
    /// retransmission deadline, or as old as the request timeout.
    pub fn tick(&mut self, now: f64, out: &mut Outgoing) -> Vec<Due> {
        for index in 0..self.sessions.len() {
            let deferred = std::mem::take(&mut self.sessions[index].deferred);
            for _ in 0..deferred {
                self.send_request(index, now, out);
            }
        }
        let limit = self.plan.request_timeout;
        let mut due = Vec::new();
        for (index, session) in self.sessions.iter().enumerate() {
            for e in &session.pending {
                if now - e.first_sent >= limit || (!e.acked && now >= e.deadline) {
                    due.push(Due {
                        session: index,
                        token: e.token,
                        retransmissions: e.retransmissions,
                        timeout: e.timeout,
                        first_sent: e.first_sent,
                        acked: e.acked,
                    });
                }
            }
        }
        due
    }

    /// Send request `token` of session `index` again, its next timer
    /// `timeout` s from now.
    pub fn retransmit(
        &mut self,
        index: usize,
        token: u32,
        timeout: f64,
        now: f64,
        out: &mut Outgoing,
    ) -> CoreResult<bool> {
        if timeout.is_nan() || timeout <= 0.0 {
            return Err(CoreError::config("the timeout must be positive"));
        }
        let session = self.session(index)?;
        let Some(entry) = session.pending.iter_mut().find(|e| e.token == token) else {
            return Ok(false);
        };
        entry.retransmissions += 1;
        entry.timeout = timeout;
        entry.deadline = now + timeout;
        let mid = entry.mid;
        self.stats.retransmissions += 1;
        self.seal_request(index, mid, token, out);
        Ok(true)
    }

    /// Give request `token` of session `index` up (a timeout) and send its
    /// replacement.
    pub fn give_up(
        &mut self,
        index: usize,
        token: u32,
        now: f64,
        out: &mut Outgoing,
    ) -> CoreResult<bool> {
        let session = self.session(index)?;
        let Some(at) = session.pending.iter().position(|e| e.token == token) else {
            return Ok(false);
        };
        session.pending.remove(at);
        self.stats.timeouts += 1;
        self.send_request(index, now, out);
        Ok(true)
    }

    /// The server closed session `index` (close_notify or an alert): its
    /// requests in flight fail and it sends no more.
    pub fn lose(&mut self, index: usize) -> CoreResult<()> {
        let running = self.running;
        let session = self.session(index)?;
        if session.dead {
            return Ok(());
        }
        session.dead = true;
        let lost = session.pending.len() as u64;
        session.pending.clear();
        self.stats.sessions_lost += 1;
        if running {
            self.stats.transport_errors += lost;
        }
        Ok(())
    }

    /// An ICMP error on session `index`'s socket: UDP cannot say which
    /// request it was, so the oldest fails; its replacement waits for the
    /// next tick.
    pub fn transport_error(&mut self, index: usize) -> CoreResult<()> {
        let running = self.running;
        let session = self.session(index)?;
        if !running || session.dead {
            return Ok(());
        }
        if !session.pending.is_empty() {
            session.pending.remove(0);
            session.deferred += 1;
        }
        self.stats.transport_errors += 1;
        Ok(())
    }

    pub fn next_write_sequence(&self, index: usize) -> Option<u64> {
        self.sessions.get(index).map(|s| s.next_write_sequence)
    }
}

fn seal_in(session: &mut ClientSession, plaintext: &[u8]) -> Option<Vec<u8>> {
    let seq = session.next_write_sequence;
    if seq > MAX_SEQUENCE_NUMBER {
        return None; // exhausted: nothing more goes out on this session
    }
    let fields = RecordFields {
        content_type: APPLICATION_DATA,
        version: session.version,
        epoch: session.write_epoch,
        sequence_number: seq,
    };
    let record = session.write.seal(&fields, plaintext).ok()?;
    session.next_write_sequence = seq + 1;
    Some(record)
}

/// Read the monotonic clock (CLOCK_MONOTONIC: Python's `time.perf_counter`
/// and `time.monotonic` on Linux), in seconds.
#[cfg(target_os = "linux")]
pub fn monotonic() -> f64 {
    // SAFETY: all-zero is a valid timespec; clock_gettime only writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// What one [`ClientTable::poll`] did.
#[derive(Debug, Default)]
pub struct Polled {
    /// Datagrams the fast path did not take: (session index, datagram).
    pub to_python: Vec<(usize, Vec<u8>)>,
    /// Datagrams received.
    pub received: usize,
}

#[cfg(target_os = "linux")]
mod io {
    use super::*;
    use std::mem::zeroed;

    /// Datagrams read per recvmmsg, and the size of each buffer: the largest
    /// DTLS record (13 + 2^14 + 2,048 bytes), so that no response is cut.
    pub const RECV_BATCH: usize = 16;
    pub const RECV_BUFFER: usize = 13 + (1 << 14) + 2048;
    const EVENTS: usize = 256;

    /// The epoll set over the sessions' sockets and the receive buffers,
    /// allocated once.
    #[derive(Debug)]
    pub struct Poller {
        epoll: i32,
    }

    impl Drop for Poller {
        fn drop(&mut self) {
            // SAFETY: the epoll descriptor is ours and closed once.
            unsafe { libc::close(self.epoll) };
        }
    }

    impl Poller {
        pub fn new() -> CoreResult<Self> {
            // SAFETY: a plain system call.
            let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if epoll < 0 {
                return Err(CoreError::config(format!(
                    "epoll_create1 failed: {}",
                    std::io::Error::last_os_error()
                )));
            }
            Ok(Poller { epoll })
        }

        pub fn fd(&self) -> i32 {
            self.epoll
        }

        pub fn register(&self, fd: i32, index: usize) -> CoreResult<()> {
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: index as u64,
            };
            // SAFETY: event is valid for the call; the kernel copies it.
            let rc = unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, &mut event) };
            if rc < 0 {
                return Err(CoreError::config(format!(
                    "epoll_ctl on fd {fd} failed: {}",
                    std::io::Error::last_os_error()
                )));
            }
            Ok(())
        }

        /// Ready sessions now (no waiting).
        pub fn ready(&self, into: &mut Vec<usize>) {
            // SAFETY: all-zero is a valid epoll_event.
            let mut events: [libc::epoll_event; EVENTS] = unsafe { zeroed() };
            // SAFETY: events has room for EVENTS entries.
            let got =
                unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), EVENTS as i32, 0) };
            for event in events.iter().take(got.max(0) as usize) {
                into.push(event.u64 as usize);
            }
        }
    }

    /// Up to RECV_BATCH datagrams from `fd` into `buffers` (RECV_BATCH
    /// chunks of RECV_BUFFER bytes): calls `each(data)` for each; returns
    /// (received, truncated), or the error of the socket.
    pub fn receive(
        buffers: &mut [u8],
        fd: i32,
        mut each: impl FnMut(&[u8]),
    ) -> std::io::Result<(usize, usize)> {
        {
            // SAFETY: all-zero is a valid value of these plain C structs.
            let mut iovecs: [libc::iovec; RECV_BATCH] = unsafe { zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; RECV_BATCH] = unsafe { zeroed() };
            for (i, chunk) in buffers.chunks_exact_mut(RECV_BUFFER).enumerate() {
                iovecs[i] = libc::iovec {
                    iov_base: chunk.as_mut_ptr().cast(),
                    iov_len: chunk.len(),
                };
            }
            for (m, iov) in msgs.iter_mut().zip(iovecs.iter_mut()) {
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: each header points at its own iovec and buffer chunk,
            // all of which outlive the call.
            let got = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    RECV_BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if got < 0 {
                let err = std::io::Error::last_os_error();
                return match err.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok((0, 0)),
                    _ => Err(err),
                };
            }
            let mut truncated = 0;
            for (i, m) in msgs.iter().take(got as usize).enumerate() {
                if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    truncated += 1;
                    continue;
                }
                let start = i * RECV_BUFFER;
                let len = (m.msg_len as usize).min(RECV_BUFFER);
                if let Some(data) = buffers.get(start..start + len) {
                    each(data);
                }
            }
            Ok((got as usize, truncated))
        }
    }

    /// Send `records` on the connected socket `fd`: one send(2) for one,
    /// sendmmsg(2) for more. Err only for an error other than a full buffer
    /// (which loses the records, as UDP would: the timers resend them).
    pub fn send_all(fd: i32, records: &[&[u8]]) -> std::io::Result<()> {
        let mut sent = 0;
        while sent < records.len() {
            let chunk = &records[sent..records.len().min(sent + RECV_BATCH)];
            let rc = if chunk.len() == 1 {
                // SAFETY: the buffer is valid for its length.
                let n = unsafe {
                    libc::send(
                        fd,
                        chunk[0].as_ptr().cast(),
                        chunk[0].len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    -1
                } else {
                    1
                }
            } else {
                // SAFETY: all-zero is a valid value of these plain C structs.
                let mut iovecs: [libc::iovec; RECV_BATCH] = unsafe { zeroed() };
                // SAFETY: as above.
                let mut msgs: [libc::mmsghdr; RECV_BATCH] = unsafe { zeroed() };
                for (i, data) in chunk.iter().enumerate() {
                    iovecs[i] = libc::iovec {
                        iov_base: data.as_ptr() as *mut libc::c_void,
                        iov_len: data.len(),
                    };
                }
                for (m, iov) in msgs.iter_mut().zip(iovecs.iter_mut()) {
                    m.msg_hdr.msg_iov = iov;
                    m.msg_hdr.msg_iovlen = 1;
                }
                // SAFETY: the headers point at iovecs over live buffers; the
                // kernel only reads them.
                unsafe {
                    libc::sendmmsg(
                        fd,
                        msgs.as_mut_ptr(),
                        chunk.len() as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                }
            };
            if rc <= 0 {
                let err = std::io::Error::last_os_error();
                return match err.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(()),
                    _ => Err(err),
                };
            }
            sent += rc as usize;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
impl ClientTable {
    /// The epoll descriptor: readable when a session's socket is.
    pub fn fileno(&self) -> i32 {
        self.io.fd()
    }

    /// Send `out` on the sessions' sockets; what belongs to a session with
    /// no socket is kept in `out` for the caller.
    pub fn flush(&mut self, out: &mut Outgoing) {
        if out.is_empty() {
            return;
        }
        let mut kept: Outgoing = Vec::new();
        let mut start = 0;
        let items = std::mem::take(out);
        while start < items.len() {
            let index = items[start].0;
            let mut end = start + 1;
            while end < items.len() && items[end].0 == index {
                end += 1;
            }
            let fd = self.sessions.get(index).map_or(-1, |s| s.fd);
            if fd < 0 {
                kept.extend(items[start..end].iter().cloned());
            } else {
                let records: Vec<&[u8]> = items[start..end].iter().map(|(_, r)| &r[..]).collect();
                if io::send_all(fd, &records).is_err() {
                    // An ICMP error surfacing on send (port unreachable).
                    let _ = self.transport_error(index);
                }
            }
            start = end;
        }
        *out = kept;
    }

    /// Serve every session whose socket is readable now, without waiting:
    /// receive, open, match, and send the next requests; a few rounds while
    /// sessions keep being ready. Returns what Python must see.
    pub fn poll(&mut self, rounds: usize) -> Polled {
        let mut polled = Polled::default();
        let mut ready = Vec::new();
        let mut out: Outgoing = Vec::new();
        for _ in 0..rounds.max(1) {
            ready.clear();
            self.io.ready(&mut ready);
            if ready.is_empty() {
                break;
            }
            for &index in &ready {
                let Some(fd) = self.sessions.get(index).map(|s| s.fd) else {
                    continue;
                };
                let now = monotonic();
                // Take the buffers out so that `feed` can borrow the table.
                let mut buffers = std::mem::take(&mut self.buffers);
                let result = io::receive(&mut buffers, fd, |data| {
                    if !self.feed(index, data, now, &mut out) {
                        polled.to_python.push((index, data.to_vec()));
                    }
                });
                self.buffers = buffers;
                match result {
                    Ok((received, truncated)) => {
                        polled.received += received;
                        self.stats.truncated += truncated as u64;
                    }
                    Err(_) => {
                        let _ = self.transport_error(index);
                    }
                }
                self.flush(&mut out);
                out.clear();
            }
        }
        polled
    }
}

#[cfg(not(target_os = "linux"))]
impl ClientTable {
    /// No epoll here: -1, and the caller sends and receives itself.
    pub fn fileno(&self) -> i32 {
        -1
    }

    pub fn flush(&mut self, _out: &mut Outgoing) {}

    pub fn poll(&mut self, _rounds: usize) -> Polled {
        Polled::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [7u8; 16];
    const IV: [u8; 4] = [1, 2, 3, 4];

    fn cipher() -> RecordCipher {
        RecordCipher::new("AES_128_CCM_8", &KEY, &IV).unwrap()
    }

    fn session(fd: i32) -> ClientSession {
        ClientSession {
            fd,
            read: cipher(),
            read_epoch: 1,
            window: ReplayWindow::new(64).unwrap(),
            write: cipher(),
            write_epoch: 1,
            next_write_sequence: 1,
            version: 0xFEFD,
            mid: 100,
            token: 7,
            pending: Vec::new(),
            deferred: 0,
            dead: false,
        }
    }

    fn table() -> ClientTable {
        let plan = RequestPlan {
            code: 1,
            tail: vec![0xB5, b'l', b'i', b'g', b'h', b't'],
            ack_timeout: 2.0,
            random_factor: 1.5,
            request_timeout: 10.0,
        };
        let mut t = ClientTable::new(plan, 42).unwrap();
        t.add(session(-1)).unwrap();
        t
    }

    /// The server's answer to a request record: open it with the same keys
    /// (both directions share them here), answer 2.05 with its token.
    fn answer(request: &[u8], seq: u64, mtype: u8) -> Vec<u8> {
        let plain = cipher().open(request).unwrap();
        let mut response = vec![(1 << 6) | (mtype << 4) | 4, 0x45];
        response.extend_from_slice(&plain[2..8]);
        response.extend_from_slice(&[0xFF, b'o', b'n']);
        let fields = RecordFields {
            content_type: APPLICATION_DATA,
            version: 0xFEFD,
            epoch: 1,
            sequence_number: seq,
        };
        cipher().seal(&fields, &response).unwrap()
    }

    #[test]
    fn a_response_is_matched_and_the_next_request_goes_out() {
        let mut t = table();
        let mut out = Vec::new();
        t.begin(2, 0.0, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        let plain = cipher().open(&out[0].1).unwrap();
        assert_eq!(&plain[..8], &[0x44, 1, 0, 101, 0, 0, 0, 8]);
        assert_eq!(&plain[8..], b"\xB5light");
        assert_eq!(t.in_flight(), 2);
        let response = answer(&out[0].1, 1, TYPE_ACK);
        let mut more = Vec::new();
        assert!(t.feed(0, &response, 0.001, &mut more));
        assert_eq!(t.stats.requests, 1);
        assert_eq!(t.stats.codes[0x45], 1);
        assert_eq!(more.len(), 1, "the replacement request");
        assert_eq!(t.in_flight(), 2);
        // The same record again is a replay: dropped, nothing matched.
        assert!(t.feed(0, &response, 0.002, &mut more));
        assert_eq!((t.stats.requests, t.stats.bad_records), (1, 1));
        assert!((t.stats.latency_max - 0.001).abs() < 1e-12);
        assert_eq!(t.stats.buckets.iter().sum::<u64>(), 1);
    }

    #[test]
    fn anything_but_current_application_data_goes_to_python() {
        let mut t = table();
        let mut out = Vec::new();
        let alert = [21u8, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 1, 0];
        assert!(!t.feed(0, &alert, 0.0, &mut out));
        assert!(!t.feed(0, b"", 0.0, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn timers_are_listed_for_python_to_judge() {
        let mut t = table();
        let mut out = Vec::new();
        t.begin(1, 0.0, &mut out).unwrap();
        assert!(t.tick(1.9, &mut out).is_empty());
        let due = t.tick(3.1, &mut out);
        assert_eq!(due.len(), 1);
        let token = due[0].token;
        out.clear();
        assert!(t
            .retransmit(0, token, due[0].timeout * 2.0, 3.1, &mut out)
            .unwrap());
        assert_eq!(out.len(), 1);
        assert_eq!(t.stats.retransmissions, 1);
        assert!(t.tick(3.2, &mut out).is_empty());
        assert!(t.give_up(0, token, 3.3, &mut out).unwrap());
        assert_eq!((t.stats.timeouts, t.in_flight()), (1, 1));
        assert!(!t.give_up(0, token, 3.3, &mut out).unwrap());
    }

    #[test]
    fn a_separate_response_is_acknowledged() {
        let mut t = table();
        let mut out = Vec::new();
        t.begin(1, 0.0, &mut out).unwrap();
        let request = out.pop().unwrap().1;
        let response = answer(&request, 1, TYPE_CON);
        assert!(t.feed(0, &response, 0.5, &mut out));
        let ack = cipher().open(&out[0].1).unwrap();
        assert_eq!(ack[..2], [0x60, 0]);
        assert_eq!(t.stats.requests, 1);
    }

    #[test]
    fn lost_sessions_and_icmp_errors_are_counted() {
        let mut t = table();
        let mut out = Vec::new();
        t.begin(3, 0.0, &mut out).unwrap();
        t.transport_error(0).unwrap();
        assert_eq!((t.stats.transport_errors, t.in_flight()), (1, 2));
        out.clear();
        t.tick(0.1, &mut out);
        assert_eq!(out.len(), 1, "the deferred replacement");
        t.lose(0).unwrap();
        assert_eq!((t.stats.transport_errors, t.stats.sessions_lost), (4, 1));
        assert_eq!(t.in_flight(), 0);
        assert!(t.lose(7).is_err());
        assert_eq!(t.end(), 0);
    }

    #[test]
    fn bad_plans_are_refused() {
        let plan = RequestPlan {
            code: 1,
            tail: Vec::new(),
            ack_timeout: 0.0,
            random_factor: 1.5,
            request_timeout: 10.0,
        };
        assert!(ClientTable::new(plan, 0).is_err());
        let mut t = table();
        assert!(t.begin(0, 0.0, &mut Vec::new()).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn poll_serves_sockets() {
        use std::net::UdpSocket;
        use std::os::fd::AsRawFd;
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let plan = RequestPlan {
            code: 1,
            tail: Vec::new(),
            ack_timeout: 2.0,
            random_factor: 1.5,
            request_timeout: 10.0,
        };
        let mut t = ClientTable::new(plan, 1).unwrap();
        t.add(session(client.as_raw_fd())).unwrap();
        let mut out = Vec::new();
        t.begin(1, monotonic(), &mut out).unwrap();
        t.flush(&mut out);
        assert!(out.is_empty());
        let mut buf = [0u8; 2048];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        server
            .send_to(&answer(&buf[..n], 1, TYPE_ACK), from)
            .unwrap();
        // An 18,445-byte datagram fits; a bigger one is a counted drop.
        server
            .send_to(&vec![0u8; io::RECV_BUFFER + 1], from)
            .unwrap();
        let mut served = 0;
        for _ in 0..1000 {
            served += t.poll(4).received;
            if served >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(t.stats.requests, 1);
        assert_eq!(t.stats.truncated, 1);
        let (n, _) = server.recv_from(&mut buf).unwrap();
        assert!(n > 13, "the next request went out");
    }
}
