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

use std::collections::HashMap;

use crate::cipher::RecordCipher;
use crate::coap_answer::CoapAnswers;
use crate::errors::{CoreError, CoreResult};
use crate::record::{self, check_sequence_number, RecordFields, MAX_SEQUENCE_NUMBER};
use crate::replay::ReplayWindow;

/// RFC 6347 §4.1 content type of application data.
pub const APPLICATION_DATA: u8 = 23;

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
}

/// What opening one record did.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    Opened(Vec<u8>),
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
    capacity: usize,
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
            capacity,
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

    pub fn remove(&mut self, id: u64) -> bool {
        self.sessions.remove(&id).is_some()
    }

    pub fn get(&self, id: u64) -> Option<&TableSession> {
        self.sessions.get(&id)
    }

    /// Open one record of session `id`'s current read epoch. None if the
    /// session is unknown or the record is of another epoch (not ours to judge).
    pub fn open_record(
        &mut self,
        id: u64,
        fields: &RecordFields,
        fragment: &[u8],
    ) -> Option<RecordOutcome> {
        let session = self.sessions.get_mut(&id)?;
        if fields.epoch != session.read_epoch {
            return None;
        }
        Some(open_in(session, fields, fragment))
    }

    /// The fast path for one datagram: Some if every record in it is
    /// application data of the current read epoch (then all were judged
    /// here), None to hand the whole datagram to Python untouched.
    pub fn open_datagram(&mut self, id: u64, datagram: &[u8]) -> Option<FastDatagram> {
        let SessionTable {
            sessions, answers, ..
        } = self;
        let session = sessions.get_mut(&id)?;
        let mut records = record::parse_records(datagram);
        let mut count = 0usize;
        for r in records.by_ref() {
            let h = r.header;
            if h.content_type != APPLICATION_DATA
                || h.epoch != session.read_epoch
                || h.version >> 8 != 0xFE
            {
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

    /// Seal one record in session `id`'s current write epoch with its next
    /// sequence number.
    pub fn seal(&mut self, id: u64, content_type: u8, plaintext: &[u8]) -> CoreResult<Vec<u8>> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or_else(|| CoreError::config(format!("no session {id} in the table")))?;
        seal_in(session, content_type, plaintext)
    }

    /// Approximate bytes one installed session takes: its slot in the hash
    /// table (key, state, control byte, at the table's 7/8 load factor), the
    /// key schedules and the window. For the memory benchmark.
    pub fn session_footprint(&self) -> usize {
        let slot = std::mem::size_of::<(u64, TableSession)>() + 1;
        let heap = self
            .sessions
            .values()
            .next()
            .map_or(0, TableSession::heap_bytes);
        slot * 8 / 7 + heap
    }
}

impl TableSession {
    fn heap_bytes(&self) -> usize {
        self.read.heap_bytes() + self.write.heap_bytes() + self.window.heap_bytes()
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
    let sealed = session.write.seal(&fields, plaintext)?;
    session.next_write_sequence = seq + 1;
    Ok(sealed)
}

fn open_in(session: &mut TableSession, fields: &RecordFields, fragment: &[u8]) -> RecordOutcome {
    let seq = fields.sequence_number;
    if !session.window.check(seq) {
        return RecordOutcome::Replayed;
    }
    match session.read.open_parts(fields, fragment) {
        Some(plaintext) => {
            // check() passed, so seq is in range and accept cannot fail.
            if session.window.accept(seq).is_err() {
                return RecordOutcome::Replayed;
            }
            RecordOutcome::Opened(plaintext)
        }
        None => RecordOutcome::BadAuth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [7u8; 16];
    const IV: [u8; 4] = [1, 2, 3, 4];

    fn session(next_write_sequence: u64) -> TableSession {
        let cipher = RecordCipher::new("AES_128_CCM_8", &KEY, &IV).unwrap();
        TableSession {
            read: cipher.clone(),
            read_epoch: 1,
            window: ReplayWindow::new(64).unwrap(),
            write: cipher,
            write_epoch: 1,
            next_write_sequence,
            version: 0xFEFD,
        }
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
}
