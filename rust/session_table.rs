//! The session table of the fast path (DESIGN.md): established sessions'
//! record state, keyed by a session id that Python assigns.
//!
//! Python's handshake installs a session once it is established, handing
//! over its current read and write epochs (ciphers, replay window, next write
//! sequence number); from then on the table is the only owner of that state,
//! so a record is opened or sealed by exactly one party and sequence numbers
//! never repeat (RFC 6347 §4.1). A datagram whose records are all application
//! data of the current read epoch is opened here (replay check §4.1.2.6,
//! AEAD open, window update; failures dropped and counted, §4.1.2.7);
//! anything else (alerts, handshake retransmissions, other epochs, malformed
//! input) is handed back whole to Python, which opens its records through
//! [`SessionTable::open_record`] so the window stays one.
//!
//! A session with connection IDs (RFC 9146) seals its records as tls12_cid
//! records carrying the peer's CID, and its tls12_cid records are opened
//! through [`SessionTable::open_cid_record`], which also tells whether the
//! record was newer than every one before (what may move the session to a
//! new address, RFC 9146 §6: Python's decision). Their datagrams are always
//! handed to Python, which demultiplexes by CID.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::cipher::RecordCipher;
use crate::coap_answer::CoapAnswers;
use crate::cookie::push_socket_peer;
use crate::errors::{CoreError, CoreResult};
use crate::hello_gate::HelloGate;
use crate::record::{self, check_sequence_number, RecordFields, MAX_SEQUENCE_NUMBER};
use crate::replay::ReplayWindow;
use crate::source_mute::is_client_hello;

/// RFC 6347 §4.1 content type of application data.
pub const APPLICATION_DATA: u8 = 23;
/// RFC 5246 §6.2.1 content type of an alert.
pub const ALERT: u8 = 21;
/// The close_notify alert (RFC 5246 §7.2.1): level warning, description 0.
pub const CLOSE_NOTIFY: [u8; 2] = [1, 0];
/// Largest record plaintext (RFC 5246 §6.2.1). A record that would open to
/// more is not the fast path's to judge: Python answers it with
/// record_overflow.
pub const MAX_PLAINTEXT_LENGTH: usize = 1 << 14;

/// The MAC-error filter's default burst and rate per session (failures, and
/// failures per second): a forged record costs this table about 0.4 µs more
/// to open than to drop unopened, so 200,000 a second is a tenth of a core.
/// Below them every record is opened (dtlsfast/auth_filter.py).
pub const DEFAULT_AUTH_BURST: f32 = 20_000.0;
pub const DEFAULT_AUTH_RATE: f32 = 200_000.0;

/// One established session's record state.
#[derive(Clone, Debug)]
pub struct TableSession {
    pub read: RecordCipher,
    pub read_epoch: u16,
    pub window: ReplayWindow,
    pub write: RecordCipher,
    pub write_epoch: u16,
    pub next_write_sequence: u64,
    pub version: u16,
    /// The peer's address once bound (the demultiplexer's key).
    pub address: Option<SocketAddr>,
    /// When a datagram of this session was last opened by [`SessionTable::serve`].
    pub last_active: f64,
    /// MAC-error filter: authentication failures still tolerated now.
    pub auth_tokens: f32,
    pub auth_updated: f64,
    /// Connection IDs (RFC 9146 §3) in one allocation: the length of the CID
    /// records to us carry, that CID, then the one ours carry (an empty one
    /// keeps the RFC 6347 format in that direction). Most sessions have none.
    pub cids: Option<Box<[u8]>>,
}

impl TableSession {
    /// A session as the handshake leaves it (no address bound yet).
    pub fn new(
        read: RecordCipher,
        read_epoch: u16,
        window: ReplayWindow,
        write: RecordCipher,
        write_epoch: u16,
        next_write_sequence: u64,
        version: u16,
    ) -> Self {
        TableSession {
            read,
            read_epoch,
            window,
            write,
            write_epoch,
            next_write_sequence,
            version,
            address: None,
            last_active: 0.0,
            auth_tokens: f32::MAX,
            auth_updated: 0.0,
            cids: None,
        }
    }

    /// The CID records to us must carry, if any (empty: none).
    fn read_cid(&self) -> &[u8] {
        match self.cids.as_deref() {
            Some([length, rest @ ..]) => rest.get(..usize::from(*length)).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The CID our records carry, if any (empty: none).
    fn write_cid(&self) -> &[u8] {
        match self.cids.as_deref() {
            Some([length, rest @ ..]) => rest.get(usize::from(*length)..).unwrap_or_default(),
            _ => &[],
        }
    }
}

/// What [`SessionTable::serve`] did with a batch of received datagrams.
#[derive(Debug, Default)]
pub struct Served {
    /// Datagrams in the batch.
    pub received: usize,
    /// Datagrams Python must see, with their source: unknown addresses,
    /// handshakes, alerts, anything the fast path does not take.
    pub to_python: Vec<(Vec<u8>, SocketAddr)>,
    /// Application data for Python, by the session's address.
    pub delivered: Vec<(SocketAddr, Vec<u8>)>,
    /// Sealed answers to send (published CoAP responses), and the
    /// HelloVerifyRequests of the gate.
    pub replies: Vec<(Vec<u8>, SocketAddr)>,
    /// ClientHellos without a cookie answered with a HelloVerifyRequest.
    pub hellos_answered: usize,
    /// Sessions whose peer sent close_notify, answered and unbound, by
    /// address and session id: Python forgets them.
    pub closed: Vec<(SocketAddr, u64)>,
}

/// Totals over every session, removed ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounters {
    pub replayed: u64,
    pub bad_auth: u64,
    pub throttled: u64,
    pub opened: u64,
    /// ClientHellos without a cookie that [`SessionTable::serve`] answered.
    pub hellos_answered: u64,
    /// Sessions [`SessionTable::serve`] closed on the peer's close_notify.
    pub closed: u64,
}

/// What opening one record did.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    Opened(Vec<u8>),
    Replayed,
    BadAuth,
}

/// What opening one tls12_cid record did (RFC 9146 §5).
#[derive(Debug, PartialEq, Eq)]
pub enum CidOutcome {
    /// The real content type, the content, and whether the record is newer
    /// than every record of the session before it (RFC 9146 §6).
    Opened(u8, Vec<u8>, bool),
    Replayed,
    BadAuth,
}

/// What the fast path did with a datagram.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FastDatagram {
    /// Plaintexts of the records that authenticated, in order (those not
    /// answered from the published CoAP responses).
    pub plaintexts: Vec<Vec<u8>>,
    pub replayed: u32,
    pub bad_auth: u32,
    /// Sealed records answering CoAP requests from published responses.
    pub replies: Vec<Vec<u8>>,
}

/// Sessions by id, at most `capacity` of them.
#[derive(Debug)]
pub struct SessionTable {
    sessions: HashMap<u64, TableSession>,
    by_address: HashMap<SocketAddr, u64>,
    capacity: usize,
    /// MAC-error filter of the fast path: burst and refill rate per session
    /// (a token per record failing authentication; an empty bucket drops the
    /// session's datagrams unopened until a token comes back).
    auth_burst: f32,
    auth_rate: f32,
    pub counters: TableCounters,
    /// CoAP responses Python published (see coap_answer.rs).
    pub answers: CoapAnswers,
}

impl SessionTable {
    pub fn new(capacity: usize) -> CoreResult<Self> {
        if capacity == 0 {
            return Err(CoreError::config("capacity must be at least 1"));
        }
        Ok(SessionTable {
            sessions: HashMap::new(),
            by_address: HashMap::new(),
            capacity,
            auth_burst: DEFAULT_AUTH_BURST,
            auth_rate: DEFAULT_AUTH_RATE,
            counters: TableCounters::default(),
            answers: CoapAnswers::default(),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.sessions.contains_key(&id)
    }

    /// Install (or replace) a session. Full table: a ConfigurationError
    /// (the caller evicts first; the table never grows past its bound).
    pub fn install(&mut self, id: u64, session: TableSession) -> CoreResult<()> {
        check_sequence_number(session.next_write_sequence)?;
        if !self.sessions.contains_key(&id) && self.sessions.len() >= self.capacity {
            return Err(CoreError::config(format!(
                "the session table is full ({} sessions): remove one before installing another",
                self.capacity
            )));
        }
        self.sessions.insert(id, session);
        Ok(())
    }

    /// Room for `additional` more sessions (within the capacity) in one
    /// allocation: a restart imports 100,000 at once.
    pub fn reserve(&mut self, additional: usize) {
        let room = self.capacity.saturating_sub(self.sessions.len());
        self.sessions.reserve(additional.min(room));
        self.by_address.reserve(additional.min(room));
    }

    /// The session bound to `addr`, if any.
    pub fn bound_to(&self, addr: &SocketAddr) -> Option<u64> {
        self.by_address.get(addr).copied()
    }

    pub fn remove(&mut self, id: u64) -> bool {
        match self.sessions.remove(&id) {
            Some(session) => {
                if let Some(addr) = session.address {
                    if self.by_address.get(&addr) == Some(&id) {
                        self.by_address.remove(&addr);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Give session `id` connection IDs (RFC 9146): `read` is the CID records
    /// to us carry, `write` the one ours carry; both empty removes them.
    pub fn set_connection_ids(&mut self, id: u64, read: &[u8], write: &[u8]) -> CoreResult<()> {
        if read.len() > 255 || write.len() > 255 {
            return Err(CoreError::config(
                "a connection ID is at most 255 bytes (RFC 9146 §3)",
            ));
        }
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or_else(|| CoreError::config(format!("no session {id} in the table")))?;
        session.cids = if read.is_empty() && write.is_empty() {
            None
        } else {
            let mut cids = Vec::with_capacity(1 + read.len() + write.len());
            cids.push(read.len() as u8); // at most 255, checked above
            cids.extend_from_slice(read);
            cids.extend_from_slice(write);
            Some(cids.into_boxed_slice())
        };
        Ok(())
    }

    /// Route datagrams from `addr` to session `id` in [`serve`](Self::serve)
    /// (an address held by another session moves to this one).
    pub fn bind_address(&mut self, id: u64, addr: SocketAddr, now: f64) -> CoreResult<()> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or_else(|| CoreError::config(format!("no session {id} in the table")))?;
        if let Some(old) = session.address.replace(addr) {
            if self.by_address.get(&old) == Some(&id) {
                self.by_address.remove(&old);
            }
        }
        session.last_active = now;
        session.auth_tokens = self.auth_burst;
        session.auth_updated = now;
        if let Some(previous) = self.by_address.insert(addr, id) {
            if previous != id {
                if let Some(other) = self.sessions.get_mut(&previous) {
                    other.address = None;
                }
            }
        }
        Ok(())
    }

    /// The MAC-error filter's bucket for sessions bound from now on.
    pub fn set_auth_filter(&mut self, burst: f32, rate: f32) -> CoreResult<()> {
        if !(burst >= 1.0 && rate >= 0.0 && burst.is_finite() && rate.is_finite()) {
            return Err(CoreError::config(
                "the MAC-error filter needs burst >= 1 and a finite rate >= 0",
            ));
        }
        self.auth_burst = burst;
        self.auth_rate = rate;
        Ok(())
    }

    /// The fast path for a batch of received datagrams (DESIGN.md): each
    /// from a bound address is opened by its session (its published CoAP
    /// GETs answered); with the server's `gate`, a ClientHello without a
    /// cookie from any other address is answered with the gate's
    /// HelloVerifyRequest (RFC 6347 §4.2.1: stateless, so nothing of the
    /// peer is kept, and no larger than the hello); the rest, and whatever a
    /// session cannot take, goes to Python untouched.
    pub fn serve(
        &mut self,
        received: Vec<(Vec<u8>, SocketAddr)>,
        now: f64,
        gate: Option<&HelloGate>,
    ) -> Served {
        let mut out = Served {
            received: received.len(),
            ..Served::default()
        };
        let mut peer = Vec::with_capacity(32);
        for (data, addr) in received {
            let Some(&id) = self.by_address.get(&addr) else {
                if let Some(gate) = gate.filter(|_| is_client_hello(&data)) {
                    peer.clear();
                    push_socket_peer(&addr, &mut peer);
                    if let Some(reply) = gate.answer_cookieless(&data, &peer) {
                        out.replies.push((reply.as_bytes().to_vec(), addr));
                        out.hellos_answered += 1;
                        self.counters.hellos_answered += 1;
                        continue;
                    }
                }
                out.to_python.push((data, addr));
                continue;
            };
            if !self.auth_allows(id, now) {
                self.counters.throttled += 1;
                continue;
            }
            let Some(fast) = self.open_datagram(id, &data) else {
                if self.close_notified(id, &data, addr, now, &mut out) {
                    continue;
                }
                out.to_python.push((data, addr));
                continue;
            };
            self.counters.opened += 1;
            self.counters.replayed += u64::from(fast.replayed);
            self.counters.bad_auth += u64::from(fast.bad_auth);
            if let Some(session) = self.sessions.get_mut(&id) {
                // Only what authenticated is the peer's activity: forged or
                // replayed records must not keep an idle session alive.
                if !fast.plaintexts.is_empty() || !fast.replies.is_empty() {
                    session.last_active = now;
                }
                if fast.bad_auth > 0 {
                    session.auth_tokens = (session.auth_tokens - fast.bad_auth as f32).max(0.0);
                }
            }
            out.replies
                .extend(fast.replies.into_iter().map(|reply| (reply, addr)));
            out.delivered.extend(
                fast.plaintexts
                    .into_iter()
                    .map(|plaintext| (addr, plaintext)),
            );
        }
        out
    }

    /// A datagram that is one close_notify alert of session `id`'s current
    /// read epoch (RFC 5246 §7.2.1): ours answers it, the session leaves
    /// its address (the rest of the batch from there is Python's) and is
    /// reported in `out.closed` for Python to forget. Anything else (another
    /// alert, a replay, a forgery, a tls12_cid session) leaves the session
    /// untouched, its window too, for Python's record path: false.
    fn close_notified(
        &mut self,
        id: u64,
        datagram: &[u8],
        addr: SocketAddr,
        now: f64,
        out: &mut Served,
    ) -> bool {
        let Some(session) = self.sessions.get_mut(&id) else {
            return false;
        };
        let Some(r) = one_alert(session, datagram) else {
            return false;
        };
        let fields = r.header.fields();
        if unsealed(session, &fields, r.fragment).as_deref() != Ok(&CLOSE_NOTIFY[..])
            || session.window.accept(fields.sequence_number).is_err()
        {
            return false;
        }
        session.last_active = now;
        // Past the last sequence number nothing can be sent, not even this.
        if let Ok(reply) = seal_in(session, ALERT, &CLOSE_NOTIFY) {
            out.replies.push((reply, addr));
        }
        session.address = None;
        self.by_address.remove(&addr);
        self.counters.closed += 1;
        out.closed.push((addr, id));
        true
    }

    fn auth_allows(&mut self, id: u64, now: f64) -> bool {
        let (burst, rate) = (self.auth_burst, self.auth_rate);
        let Some(session) = self.sessions.get_mut(&id) else {
            return true;
        };
        let elapsed = now - session.auth_updated;
        if elapsed > 0.0 {
            session.auth_tokens = (session.auth_tokens + (elapsed as f32) * rate).min(burst);
            session.auth_updated = now;
        }
        session.auth_tokens >= 1.0
    }

    pub fn get(&self, id: u64) -> Option<&TableSession> {
        self.sessions.get(&id)
    }

    /// Open one record of session `id`'s current read epoch. None if the
    /// session is unknown, the record is of another epoch or the session
    /// expects tls12_cid records (not ours to judge).
    pub fn open_record(
        &mut self,
        id: u64,
        fields: &RecordFields,
        fragment: &[u8],
    ) -> Option<RecordOutcome> {
        let session = self.sessions.get_mut(&id)?;
        if fields.epoch != session.read_epoch || !session.read_cid().is_empty() {
            return None;
        }
        Some(open_in(session, fields, fragment))
    }

    /// Open one tls12_cid record of session `id`'s current read epoch
    /// carrying `cid` (RFC 9146 §5). None if the session is unknown, the
    /// record is of another epoch, or `cid` is not the session's (not ours
    /// to judge: Python counts it).
    pub fn open_cid_record(
        &mut self,
        id: u64,
        fields: &RecordFields,
        cid: &[u8],
        fragment: &[u8],
    ) -> Option<CidOutcome> {
        let session = self.sessions.get_mut(&id)?;
        let expected = session.read_cid();
        if fields.epoch != session.read_epoch || expected.is_empty() || expected != cid {
            return None;
        }
        let seq = fields.sequence_number;
        if !session.window.check(seq) {
            return Some(CidOutcome::Replayed);
        }
        let newest = session.window.highest().map_or(true, |h| seq > h);
        let Some((content_type, plaintext)) = session.read.open_cid(fields, cid, fragment) else {
            return Some(CidOutcome::BadAuth);
        };
        if session.window.accept(seq).is_err() {
            return Some(CidOutcome::Replayed);
        }
        Some(CidOutcome::Opened(content_type, plaintext, newest))
    }

    /// The fast path for one datagram: Some if every record in it is
    /// application data of the current read epoch (then all were judged
    /// here), None to hand the whole datagram to Python untouched.
    pub fn open_datagram(&mut self, id: u64, datagram: &[u8]) -> Option<FastDatagram> {
        let SessionTable {
            sessions, answers, ..
        } = self;
        let session = sessions.get_mut(&id)?;
        if !session.read_cid().is_empty() {
            return None; // tls12_cid records: Python demultiplexes them by CID
        }
        let mut records = record::parse_records(datagram);
        let mut count = 0usize;
        for r in records.by_ref() {
            if !of_read_epoch(session, &r, APPLICATION_DATA) {
                return None;
            }
            count += 1;
        }
        if count == 0 || !records.remaining().is_empty() {
            return None;
        }
        let mut out = FastDatagram::default();
        for r in record::parse_records(datagram) {
            match open_in(session, &r.header.fields(), r.fragment) {
                RecordOutcome::Opened(plaintext) => {
                    let sealed = answers
                        .answer(&plaintext)
                        .and_then(|reply| seal_in(session, APPLICATION_DATA, &reply).ok());
                    match sealed {
                        Some(reply) => out.replies.push(reply),
                        None => out.plaintexts.push(plaintext),
                    }
                }
                RecordOutcome::Replayed => out.replayed = out.replayed.saturating_add(1),
                RecordOutcome::BadAuth => out.bad_auth = out.bad_auth.saturating_add(1),
            }
        }
        Some(out)
    }

    /// Open a datagram that is one alert record of session `id`'s current
    /// read epoch (a peer's close_notify, typically: RFC 5246 §7.2) in one
    /// call, replay window and all. None if the datagram is anything else or
    /// the session expects tls12_cid records: nothing was consumed, Python's
    /// record path takes it.
    pub fn open_alert(&mut self, id: u64, datagram: &[u8]) -> Option<RecordOutcome> {
        let session = self.sessions.get_mut(&id)?;
        let r = one_alert(session, datagram)?;
        Some(open_in(session, &r.header.fields(), r.fragment))
    }

    /// Seal one record in session `id`'s current write epoch with its next
    /// sequence number.
    pub fn seal(&mut self, id: u64, content_type: u8, plaintext: &[u8]) -> CoreResult<Vec<u8>> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or_else(|| CoreError::config(format!("no session {id} in the table")))?;
        seal_in(session, content_type, plaintext)
    }

    /// Approximate bytes one installed session takes: its slots in the two
    /// hash tables (by id and by address; key, value, control byte, at the
    /// tables' 7/8 load factor), the key schedules and the window. For the
    /// memory benchmark.
    pub fn session_footprint(&self) -> usize {
        let slot = std::mem::size_of::<(u64, TableSession)>() + 1;
        let address_slot = std::mem::size_of::<(SocketAddr, u64)>() + 1;
        let heap = self
            .sessions
            .values()
            .next()
            .map_or(0, TableSession::heap_bytes);
        (slot + address_slot) * 8 / 7 + heap
    }
}

impl TableSession {
    fn heap_bytes(&self) -> usize {
        let cids = self.cids.as_deref().map_or(0, <[u8]>::len);
        self.read.heap_bytes() + self.write.heap_bytes() + self.window.heap_bytes() + cids
    }
}

fn seal_in(session: &mut TableSession, content_type: u8, plaintext: &[u8]) -> CoreResult<Vec<u8>> {
    let seq = session.next_write_sequence;
    if seq > MAX_SEQUENCE_NUMBER {
        return Err(CoreError::config(
            "the write sequence number is exhausted: close the session",
        ));
    }
    let fields = RecordFields {
        content_type,
        version: session.version,
        epoch: session.write_epoch,
        sequence_number: seq,
    };
    let write_cid = session.write_cid();
    let sealed = if write_cid.is_empty() {
        session.write.seal(&fields, plaintext)?
    } else {
        session.write.seal_cid(&fields, write_cid, plaintext, 0)?
    };
    session.next_write_sequence = seq + 1;
    Ok(sealed)
}

/// Whether a parsed record is one the table's fast paths may open: of
/// `content_type`, in the session's current read epoch, a DTLS version, and
/// no longer than a protected record of at most 2^14 bytes of plaintext
/// (RFC 6347 §4.1, RFC 5246 §6.2.3). Anything else goes to Python.
fn of_read_epoch(session: &TableSession, r: &record::Record<'_>, content_type: u8) -> bool {
    let h = &r.header;
    h.content_type == content_type
        && h.epoch == session.read_epoch
        && h.version >> 8 == 0xFE
        && r.fragment.len() <= MAX_PLAINTEXT_LENGTH + session.read.overhead()
}

/// The datagram's one record if it is an alert of the session's current
/// read epoch (a session without tls12_cid records) and nothing follows it.
fn one_alert<'a>(session: &TableSession, datagram: &'a [u8]) -> Option<record::Record<'a>> {
    if !session.read_cid().is_empty() {
        return None;
    }
    let mut records = record::parse_records(datagram);
    let r = records.next()?;
    if records.next().is_some()
        || !records.remaining().is_empty()
        || !of_read_epoch(session, &r, ALERT)
    {
        return None;
    }
    Some(r)
}

fn open_in(session: &mut TableSession, fields: &RecordFields, fragment: &[u8]) -> RecordOutcome {
    match unsealed(session, fields, fragment) {
        // unsealed() checked the window, so seq is in range and accept cannot fail.
        Ok(plaintext) => match session.window.accept(fields.sequence_number) {
            Ok(()) => RecordOutcome::Opened(plaintext),
            Err(_) => RecordOutcome::Replayed,
        },
        Err(outcome) => outcome,
    }
}

/// The record's plaintext if it is new to the replay window and
/// authenticates (RFC 6347 §4.1.2.6, §4.1.2.7); the window is left as it was.
fn unsealed(
    session: &TableSession,
    fields: &RecordFields,
    fragment: &[u8],
) -> Result<Vec<u8>, RecordOutcome> {
    if !session.window.check(fields.sequence_number) {
        return Err(RecordOutcome::Replayed);
    }
    session
        .read
        .open_parts(fields, fragment)
        .ok_or(RecordOutcome::BadAuth)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [7u8; 16];
    const IV: [u8; 4] = [1, 2, 3, 4];

    fn session(next_write_sequence: u64) -> TableSession {
        let cipher = RecordCipher::new("AES_128_CCM_8", &KEY, &IV).unwrap();
        TableSession::new(
            cipher.clone(),
            1,
            ReplayWindow::new(64).unwrap(),
            cipher,
            1,
            next_write_sequence,
            0xFEFD,
        )
    }

    fn table() -> SessionTable {
        let mut t = SessionTable::new(2).unwrap();
        t.install(1, session(5)).unwrap();
        t
    }

    #[test]
    fn sealed_records_open_once_then_are_replays() {
        let mut t = table();
        let record = t.seal(1, APPLICATION_DATA, b"hello").unwrap();
        assert_eq!(&record[3..11], &[0, 1, 0, 0, 0, 0, 0, 5]);
        assert_eq!(t.get(1).unwrap().next_write_sequence, 6);
        // The same keys both ways here, so our own record opens.
        let mut datagram = record.clone();
        datagram.extend_from_slice(&t.seal(1, APPLICATION_DATA, b"world").unwrap());
        let out = t.open_datagram(1, &datagram).unwrap();
        assert_eq!(out.plaintexts, vec![b"hello".to_vec(), b"world".to_vec()]);
        let again = t.open_datagram(1, &record).unwrap();
        assert_eq!(again.replayed, 1);
        assert!(again.plaintexts.is_empty());
    }

    #[test]
    fn records_over_the_plaintext_limit_go_to_python() {
        // RFC 5246 §6.2.1: more than 2^14 bytes of plaintext is a
        // record_overflow, which Python sends; the fast path must not open it.
        let mut t = table();
        let big = t
            .seal(1, APPLICATION_DATA, &vec![0u8; MAX_PLAINTEXT_LENGTH + 1])
            .unwrap();
        assert!(t.open_datagram(1, &big).is_none());
        let limit = t
            .seal(1, APPLICATION_DATA, &vec![0u8; MAX_PLAINTEXT_LENGTH])
            .unwrap();
        assert_eq!(t.open_datagram(1, &limit).unwrap().plaintexts.len(), 1);
    }

    #[test]
    fn tampered_records_are_counted_not_opened() {
        let mut t = table();
        let mut record = t.seal(1, APPLICATION_DATA, b"hello").unwrap();
        let last = record.len() - 1;
        record[last] ^= 1;
        let out = t.open_datagram(1, &record).unwrap();
        assert_eq!((out.bad_auth, out.plaintexts.len()), (1, 0));
        // A failed record does not enter the window: the genuine one still opens.
        record[last] ^= 1;
        assert_eq!(t.open_datagram(1, &record).unwrap().plaintexts.len(), 1);
    }

    #[test]
    fn one_alert_record_opens_in_one_call() {
        let mut t = table();
        let alert = t.seal(1, ALERT, b"\x01\x00").unwrap();
        let data = t.seal(1, APPLICATION_DATA, b"x").unwrap();
        // Anything but exactly one alert record of the read epoch is Python's,
        // and leaves the window alone.
        let mut two = alert.clone();
        two.extend_from_slice(&alert);
        let mut trailing = alert.clone();
        trailing.push(0);
        for other in [&data, &two, &trailing, &b""[..].to_vec()] {
            assert!(t.open_alert(1, other).is_none());
        }
        assert!(t.open_alert(2, &alert).is_none());
        let mut old_epoch = alert.clone();
        old_epoch[4] = 0;
        assert!(t.open_alert(1, &old_epoch).is_none());
        let mut tampered = alert.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(t.open_alert(1, &tampered), Some(RecordOutcome::BadAuth));
        assert_eq!(
            t.open_alert(1, &alert),
            Some(RecordOutcome::Opened(b"\x01\x00".to_vec()))
        );
        assert_eq!(t.open_alert(1, &alert), Some(RecordOutcome::Replayed));
    }

    #[test]
    fn anything_but_current_application_data_is_handed_back() {
        let mut t = table();
        let alert = t.seal(1, 21, b"\x01\x00").unwrap();
        assert!(t.open_datagram(1, &alert).is_none());
        let data = t.seal(1, APPLICATION_DATA, b"x").unwrap();
        let mut mixed = data.clone();
        mixed.extend_from_slice(&alert);
        assert!(t.open_datagram(1, &mixed).is_none());
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(t.open_datagram(1, &trailing).is_none());
        assert!(t.open_datagram(1, b"").is_none());
        assert!(t.open_datagram(2, &data).is_none());
        // Python opens the alert through the table: same window.
        let parsed = record::parse_single_record(&alert).unwrap();
        let fields = parsed.header.fields();
        assert_eq!(
            t.open_record(1, &fields, parsed.fragment),
            Some(RecordOutcome::Opened(b"\x01\x00".to_vec()))
        );
        assert_eq!(
            t.open_record(1, &fields, parsed.fragment),
            Some(RecordOutcome::Replayed)
        );
    }

    #[test]
    fn cid_sessions_seal_and_open_tls12_cid_records() {
        let mut t = table();
        t.set_connection_ids(1, b"\x01\x02", b"\x01\x02").unwrap();
        let record = t.seal(1, APPLICATION_DATA, b"hello").unwrap();
        assert_eq!(record[0], record::CID_CONTENT_TYPE);
        assert_eq!(&record[11..13], b"\x01\x02");
        // Never on the fast path, never opened as a plain record.
        assert!(t.open_datagram(1, &record).is_none());
        let parsed = record::parse_records_cid(&record, 2)
            .unwrap()
            .next()
            .unwrap();
        let fields = parsed.header.fields();
        assert_eq!(t.open_record(1, &fields, parsed.fragment), None);
        assert_eq!(
            t.open_cid_record(1, &fields, b"\x09\x09", parsed.fragment),
            None
        );
        assert_eq!(
            t.open_cid_record(1, &fields, b"\x01\x02", parsed.fragment),
            Some(CidOutcome::Opened(
                APPLICATION_DATA,
                b"hello".to_vec(),
                true
            ))
        );
        assert_eq!(
            t.open_cid_record(1, &fields, b"\x01\x02", parsed.fragment),
            Some(CidOutcome::Replayed)
        );
        // An older record that is new to the window opens, but is not the newest.
        let mut older = fields;
        older.sequence_number -= 3;
        older.content_type = APPLICATION_DATA; // the real type goes inside
        let old = t
            .get(1)
            .unwrap()
            .write
            .seal_cid(&older, b"\x01\x02", b"old", 0)
            .unwrap();
        let old = record::parse_records_cid(&old, 2).unwrap().next().unwrap();
        assert_eq!(
            t.open_cid_record(1, &old.header.fields(), b"\x01\x02", old.fragment),
            Some(CidOutcome::Opened(APPLICATION_DATA, b"old".to_vec(), false))
        );
        let mut forged = record.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let mut next = fields;
        next.sequence_number += 1;
        let forged = record::parse_records_cid(&forged, 2)
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(
            t.open_cid_record(1, &next, b"\x01\x02", forged.fragment),
            Some(CidOutcome::BadAuth)
        );
        // A CID one way only: ours on the records we send, plain ones to us.
        t.set_connection_ids(1, b"", b"\x05").unwrap();
        let sent = t.seal(1, APPLICATION_DATA, b"one way").unwrap();
        assert_eq!((sent[0], sent[11]), (record::CID_CONTENT_TYPE, 5));
        let mut plain_fields = next;
        plain_fields.content_type = APPLICATION_DATA;
        plain_fields.sequence_number += 1;
        let plain = t
            .get(1)
            .unwrap()
            .write
            .seal(&plain_fields, b"plain")
            .unwrap();
        assert!(t.open_datagram(1, &plain).is_some());
        // Removing the CIDs brings back the plain format.
        t.set_connection_ids(1, b"", b"").unwrap();
        assert!(t.get(1).unwrap().cids.is_none());
        assert!(t.set_connection_ids(1, &[0u8; 256], b"").is_err());
        assert!(t.set_connection_ids(9, b"\x01", b"").is_err());
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = table();
        t.install(2, session(0)).unwrap();
        assert!(t.install(3, session(0)).is_err());
        t.install(2, session(9)).unwrap(); // replacing is fine
        assert!(t.remove(1));
        t.install(3, session(0)).unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.seal(1, APPLICATION_DATA, b"x").is_err());
    }

    #[test]
    fn the_write_sequence_number_never_wraps() {
        let mut t = SessionTable::new(1).unwrap();
        t.install(1, session(MAX_SEQUENCE_NUMBER)).unwrap();
        assert!(t.seal(1, APPLICATION_DATA, b"last").is_ok());
        assert!(t.seal(1, APPLICATION_DATA, b"one too many").is_err());
        assert!(t.install(2, session(MAX_SEQUENCE_NUMBER + 1)).is_err());
    }

    #[test]
    fn the_default_filter_opens_every_forged_record_below_its_rate() {
        let mut t = table();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        t.bind_address(1, peer, 0.0).unwrap();
        let mut forged = t.seal(1, APPLICATION_DATA, b"x").unwrap();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let good = t.seal(1, APPLICATION_DATA, b"genuine").unwrap();
        // 10,000 forged records a second for 3 s, the genuine one at the end.
        for tick in 0..300 {
            let batch = vec![(forged.clone(), peer); 100];
            t.serve(batch, f64::from(tick) / 100.0, None);
        }
        let served = t.serve(vec![(good, peer)], 3.0, None);
        assert_eq!(served.delivered, vec![(peer, b"genuine".to_vec())]);
        assert_eq!((t.counters.bad_auth, t.counters.throttled), (30_000, 0));
    }

    #[test]
    fn serve_demultiplexes_by_address_and_throttles_forgers() {
        let mut t = table();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        t.set_auth_filter(2.0, 1.0).unwrap();
        t.bind_address(1, peer, 10.0).unwrap();
        let good = t.seal(1, APPLICATION_DATA, b"hi").unwrap();
        let alert = t.seal(1, 21, b"\x02\x28").unwrap(); // fatal: Python's
        let mut forged = t.seal(1, APPLICATION_DATA, b"x").unwrap();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let served = t.serve(
            vec![
                (good.clone(), peer),
                (good.clone(), stranger),
                (alert.clone(), peer),
                (forged.clone(), peer),
                (forged.clone(), peer),
                (forged.clone(), peer), // the bucket (2) is empty: dropped unopened
            ],
            11.0,
            None,
        );
        assert_eq!(served.delivered, vec![(peer, b"hi".to_vec())]);
        assert_eq!(
            served.to_python,
            vec![(good.clone(), stranger), (alert, peer)]
        );
        assert_eq!(t.counters.bad_auth, 2);
        assert_eq!(t.counters.throttled, 1);
        assert_eq!(t.get(1).unwrap().last_active, 11.0);
        // A second later one token is back.
        let served = t.serve(vec![(forged, peer)], 12.0, None);
        assert!(served.delivered.is_empty() && served.to_python.is_empty());
        assert_eq!((t.counters.bad_auth, t.counters.throttled), (3, 1));
        // Removing the session frees its address.
        assert!(t.remove(1));
        let served = t.serve(vec![(good.clone(), peer)], 13.0, None);
        assert_eq!(served.to_python, vec![(good, peer)]);
    }

    #[test]
    fn serve_answers_cookieless_hellos_of_unknown_addresses_with_the_gate() {
        use crate::cookie::CookieKeys;
        use crate::hello_gate::{HelloGate, Verdict, DEFAULT_MAX_CLIENT_HELLO};
        let gate = HelloGate::new(
            CookieKeys::new(&[7u8; 32], None, 32).unwrap(),
            DEFAULT_MAX_CLIENT_HELLO,
        );
        let mut t = table();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "[::1]:5001".parse().unwrap();
        t.bind_address(1, peer, 10.0).unwrap();
        let hello = crate::test_support::client_hello_datagram(b"");
        let with_cookie = crate::test_support::client_hello_datagram(&[9u8; 32]);
        let served = t.serve(
            vec![
                (hello.clone(), stranger),
                (with_cookie.clone(), stranger),
                (hello.clone(), peer), // a bound session's address: Python's
                (b"junk".to_vec(), stranger),
            ],
            11.0,
            Some(&gate),
        );
        let mut raw = Vec::new();
        crate::cookie::push_socket_peer(&stranger, &mut raw);
        let Verdict::HelloVerifySent(expected) = gate.check(&hello, &raw, hello.len()) else {
            panic!("expected a HelloVerifyRequest");
        };
        assert_eq!(
            served.replies,
            vec![(expected.as_bytes().to_vec(), stranger)]
        );
        assert_eq!(served.hellos_answered, 1);
        assert_eq!(t.counters.hellos_answered, 1);
        assert_eq!(
            served.to_python,
            vec![
                (with_cookie, stranger),
                (hello.clone(), peer),
                (b"junk".to_vec(), stranger)
            ]
        );
        // Without the gate every hello is Python's.
        let served = t.serve(vec![(hello.clone(), stranger)], 12.0, None);
        assert_eq!(served.to_python, vec![(hello, stranger)]);
        assert_eq!(served.hellos_answered, 0);
    }

    #[test]
    fn serve_answers_a_close_notify_and_unbinds_the_session() {
        let mut t = table();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        t.bind_address(1, peer, 10.0).unwrap();
        let fatal = t.seal(1, ALERT, b"\x02\x28").unwrap();
        let close = t.seal(1, ALERT, &CLOSE_NOTIFY).unwrap();
        let later = t.seal(1, APPLICATION_DATA, b"late").unwrap();
        // Another alert is Python's, its record unconsumed.
        let served = t.serve(vec![(fatal.clone(), peer)], 11.0, None);
        assert_eq!(served.to_python, vec![(fatal.clone(), peer)]);
        assert_eq!(
            t.open_alert(1, &fatal),
            Some(RecordOutcome::Opened(b"\x02\x28".to_vec()))
        );
        // A forged close_notify is Python's too (to count), the window untouched.
        let mut forged = close.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let served = t.serve(vec![(forged.clone(), peer)], 11.5, None);
        assert_eq!(served.to_python, vec![(forged, peer)]);
        let before = t.get(1).unwrap().next_write_sequence;
        let served = t.serve(
            vec![(close.clone(), peer), (later.clone(), peer)],
            12.0,
            None,
        );
        assert_eq!(served.closed, vec![(peer, 1)]);
        assert_eq!(t.counters.closed, 1);
        // Ours answers it, sealed with the next sequence number ...
        assert_eq!(served.replies.len(), 1);
        let (reply, to) = &served.replies[0];
        assert_eq!(*to, peer);
        assert_eq!(reply[0], ALERT);
        assert_eq!(t.get(1).unwrap().next_write_sequence, before + 1);
        assert_eq!(
            t.open_alert(1, reply),
            Some(RecordOutcome::Opened(CLOSE_NOTIFY.to_vec()))
        );
        // ... and the rest of the batch from that address is Python's.
        assert_eq!(served.to_python, vec![(later, peer)]);
        assert_eq!(t.get(1).unwrap().last_active, 12.0);
        // The close_notify again: the session is unbound, Python's.
        let served = t.serve(vec![(close.clone(), peer)], 13.0, None);
        assert_eq!(served.to_python, vec![(close, peer)]);
        assert!(served.closed.is_empty());
        assert!(t.remove(1));
    }
}
