//! The Python face of the handshake's crypto work: thin wrappers over
//! prf.rs, cookie.rs, hello_gate.rs, transcript.rs and flight.rs, as
//! `_core.pyi` declares them. One call per handshake step; the decisions
//! (suite, rotation of cookie secrets, when to send) stay in Python.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyInt, PyList, PyMemoryView, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

use crate::bindings::{uint_arg, ConfigurationError, PyRecordCipher};
use crate::cookie::{push_address_peer, push_opaque_peer, CookieInput, CookieKeys};
use crate::flight::{self, FlightError, FlightItem, WriteEpoch};
use crate::hello_gate::{HelloGate as CoreGate, Verdict};
use crate::hs_codec_bindings::u16_field;
use crate::prf::{self as key_schedule, PrfHash, MAX_PRF_OUTPUT};
use crate::record::MAX_SEQUENCE_NUMBER;
use crate::transcript::{FinishedError, Transcript};

pyo3::import_exception!(dtlsfast.exceptions, LocalProtocolError);

/// An int in `0..=max` (ConfigurationError outside, TypeError for a non-int),
/// as `dtlsfast.pure._args.uint` checks it.
fn bounded(value: &Bound<'_, PyAny>, name: &str, max: u64) -> PyResult<u64> {
    let n = uint_arg(value, name, max)?;
    if n > max {
        return Err(ConfigurationError::new_err(format!(
            "{name} must be in 0..={max}, got {n}"
        )));
    }
    Ok(n)
}

fn bounded_usize(value: &Bound<'_, PyAny>, name: &str, max: u64) -> PyResult<usize> {
    usize::try_from(bounded(value, name, max)?)
        .map_err(|_| ConfigurationError::new_err(format!("{name} out of range")))
}

fn prf_hash(name: &str) -> PyResult<PrfHash> {
    Ok(PrfHash::from_name(name)?)
}

fn length_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    bounded_usize(value, "length", MAX_PRF_OUTPUT as u64)
}

/// Our two record ciphers from a key block: ``(read_cipher, write_cipher)``
/// of the client (``client``) or the server (RFC 5246 §6.3).
fn role_ciphers<'py>(
    py: Python<'py>,
    keys: &key_schedule::KeySchedule,
    aead: &str,
    client: bool,
) -> PyResult<(Bound<'py, PyRecordCipher>, Bound<'py, PyRecordCipher>)> {
    let ciphers = keys.role_ciphers(aead, client)?;
    Ok((
        Bound::new(
            py,
            PyRecordCipher {
                inner: ciphers.read,
            },
        )?,
        Bound::new(
            py,
            PyRecordCipher {
                inner: ciphers.write,
            },
        )?,
    ))
}

/// The premaster secret (RFC 4279 §2 of ``psk`` and ``other_secret``, or
/// without a PSK the ECDH shared secret ``other_secret``, RFC 8422 §5.10),
/// the master secret (extended with ``session_hash``, RFC 7627 §4; else RFC
/// 5246 §8.1) and the key block of ``aead`` (RFC 5246 §6.3) in one step:
/// ``(master_secret, read_cipher, write_cipher)`` of the client
/// (``client``) or the server.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn derive_keys<'py>(
    py: Python<'py>,
    hash_name: &str,
    aead: &str,
    psk: Option<&[u8]>,
    other_secret: Option<&[u8]>,
    client_random: &[u8],
    server_random: &[u8],
    session_hash: Option<&[u8]>,
    client: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let keys = key_schedule::derive_keys(
        prf_hash(hash_name)?,
        aead,
        psk,
        other_secret,
        client_random,
        server_random,
        session_hash,
    )?;
    let (read, write) = role_ciphers(py, &keys, aead, client)?;
    PyTuple::new(
        py,
        [
            PyBytes::new(py, &keys.master_secret).into_any(),
            read.into_any(),
            write.into_any(),
        ],
    )
}

/// The key block of a known master secret (a resumed session's) and this
/// handshake's randoms (RFC 5246 §6.3): ``(read_cipher, write_cipher)`` of
/// the client (``client``) or the server.
#[pyfunction]
fn key_block<'py>(
    py: Python<'py>,
    hash_name: &str,
    aead: &str,
    master: &[u8],
    client_random: &[u8],
    server_random: &[u8],
    client: bool,
) -> PyResult<(Bound<'py, PyRecordCipher>, Bound<'py, PyRecordCipher>)> {
    let keys = key_schedule::expand_master_secret(
        prf_hash(hash_name)?,
        aead,
        master,
        client_random,
        server_random,
    )?;
    role_ciphers(py, &keys, aead, client)
}

// ------------------------------------------------------------------ peers

/// `(str(host), int(port) & 0xFFFF)` appended as canonical peer bytes.
fn push_address(
    host: &Bound<'_, PyAny>,
    port: &Bound<'_, PyAny>,
    out: &mut Vec<u8>,
) -> PyResult<()> {
    let py = host.py();
    let host = match host.cast::<PyString>() {
        Ok(s) => s.clone(),
        Err(_) => host.str()?,
    };
    let port = match port.cast::<PyInt>() {
        Ok(p) => p.clone(),
        Err(_) => py
            .get_type::<PyInt>()
            .call1((port,))?
            .cast_into::<PyInt>()?,
    };
    let port = match port.extract::<i64>() {
        // Python's & on a negative int is two's complement, as here.
        Ok(p) => (p & 0xFFFF) as u16,
        Err(_) => port.bitand(0xFFFF)?.extract::<u16>()?,
    };
    match host.to_str() {
        Ok(text) => push_address_peer(Some(text), text.as_bytes(), port, out),
        Err(_) => {
            // Lone surrogates: never an IP address; encoded as Python does.
            let raw = host.call_method1(
                intern!(py, "encode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            )?;
            push_address_peer(None, raw.cast::<PyBytes>()?.as_bytes(), port, out);
        }
    }
    Ok(())
}

/// `dtlsfast.handshake.cookies.peer_bytes`: a Peer as asyncio reports it.
fn push_peer(peer: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(b) = peer.cast::<PyBytes>() {
        push_opaque_peer(b.as_bytes(), out);
        return Ok(());
    }
    if peer.is_instance_of::<PyByteArray>() || peer.is_instance_of::<PyMemoryView>() {
        let raw = peer.py().get_type::<PyBytes>().call1((peer,))?;
        push_opaque_peer(raw.cast::<PyBytes>()?.as_bytes(), out);
        return Ok(());
    }
    push_address(&peer.get_item(0)?, &peer.get_item(1)?, out)
}

/// The cookie gate's view of a peer (`cookie_gate._peer_key`, then
/// `peer_bytes`): an address tuple by host and port, bytes as they are,
/// anything else by its repr.
fn push_gate_peer(peer: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(t) = peer.cast::<PyTuple>() {
        if t.len() >= 2 {
            return push_address(&*t.get_borrowed_item(0)?, &*t.get_borrowed_item(1)?, out);
        }
    }
    if let Ok(b) = peer.cast::<PyBytes>() {
        push_opaque_peer(b.as_bytes(), out);
        return Ok(());
    }
    let text = peer.repr()?;
    let raw = text.call_method0(intern!(peer.py(), "encode"))?;
    push_opaque_peer(raw.cast::<PyBytes>()?.as_bytes(), out);
    Ok(())
}

/// The canonical bytes of a peer address that a cookie binds
/// (`dtlsfast.handshake.cookies.peer_bytes`).
#[pyfunction]
fn peer_bytes<'py>(py: Python<'py>, peer: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(32);
    push_peer(peer, &mut out)?;
    Ok(PyBytes::new(py, &out))
}

// ------------------------------------------------------------- the gate

fn max_client_hello_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    bounded_usize(value, "max_client_hello", 1 << 24)
}

fn cookie_length_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    bounded_usize(value, "cookie_length", 0xFF)
}

/// The stateless HelloVerifyRequest exchange (RFC 6347 §4.2.1) in one call
/// per datagram; cookie secrets come from Python, which rotates them.
#[pyclass(module = "dtlsfast._core", name = "HelloGate")]
pub struct PyHelloGate {
    inner: CoreGate,
}

impl PyHelloGate {
    /// The engine's gate, for the session table's batch.
    pub(crate) fn core(&self) -> &CoreGate {
        &self.inner
    }
}

#[pymethods]
impl PyHelloGate {
    #[new]
    #[pyo3(signature = (secret, previous = None, cookie_length = 32, max_client_hello = 4096))]
    fn new(
        secret: &[u8],
        previous: Option<&[u8]>,
        #[pyo3(from_py_with = cookie_length_arg)] cookie_length: usize,
        #[pyo3(from_py_with = max_client_hello_arg)] max_client_hello: usize,
    ) -> PyResult<Self> {
        Ok(PyHelloGate {
            inner: CoreGate::new(
                CookieKeys::new(secret, previous, cookie_length)?,
                max_client_hello,
            ),
        })
    }

    #[getter]
    fn cookie_length(&self) -> usize {
        self.inner.keys.length()
    }

    #[getter]
    fn max_client_hello(&self) -> usize {
        self.inner.max_client_hello()
    }

    /// Replace the current and previous secrets (after a rotation).
    #[pyo3(signature = (secret, previous = None))]
    fn set_secrets(&mut self, secret: &[u8], previous: Option<&[u8]>) -> PyResult<()> {
        Ok(self.inner.keys.set_secrets(secret, previous)?)
    }

    /// The cookie for ``peer`` and ``cookie_input`` (as
    /// ``ClientHello.cookie_input()`` encodes it) under the current secret.
    fn make_cookie<'py>(
        &self,
        py: Python<'py>,
        peer: &Bound<'py, PyAny>,
        cookie_input: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut peer_raw = Vec::with_capacity(32);
        push_gate_peer(peer, &mut peer_raw)?;
        let (mac, n) = self
            .inner
            .keys
            .make(&peer_raw, &CookieInput::Encoded(cookie_input));
        Ok(PyBytes::new(py, mac.get(..n).unwrap_or(&[])))
    }

    /// Whether ``cookie`` was made for ``peer`` and ``cookie_input`` under
    /// the current or the previous secret; both always computed, compared
    /// in constant time.
    fn verify_cookie(
        &self,
        peer: &Bound<'_, PyAny>,
        cookie_input: &[u8],
        cookie: &[u8],
    ) -> PyResult<bool> {
        let mut peer_raw = Vec::with_capacity(32);
        push_gate_peer(peer, &mut peer_raw)?;
        Ok(self
            .inner
            .keys
            .verify(&peer_raw, &CookieInput::Encoded(cookie_input), cookie))
    }

    /// Decide on a datagram from ``peer``, which has no connection:
    /// ``(verdict, data)``. ``verdict`` is the counter name;
    /// ``data`` is the HelloVerifyRequest to send for ``hello_verify_sent``
    /// and ``bad_cookie``, the hello's random for ``accepted``, else None.
    /// ``received`` (default: the datagram's length) bounds the reply.
    #[pyo3(signature = (datagram, peer, received = None))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        datagram: &[u8],
        peer: &Bound<'py, PyAny>,
        received: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let budget = match received {
            Some(r) => usize::try_from(bounded(r, "received", u64::MAX)?).unwrap_or(usize::MAX),
            None => datagram.len(),
        };
        let mut peer_raw = Vec::with_capacity(32);
        push_gate_peer(peer, &mut peer_raw)?;
        let verdict = self.inner.check(datagram, &peer_raw, budget);
        let name = match verdict {
            Verdict::Accepted { .. } => intern!(py, "accepted"),
            Verdict::HelloVerifySent(_) => intern!(py, "hello_verify_sent"),
            Verdict::BadCookie(_) => intern!(py, "bad_cookie"),
            Verdict::AmplificationRefused => intern!(py, "amplification_refused"),
            Verdict::NotClientHello => intern!(py, "not_client_hello"),
            Verdict::OversizeClientHello => intern!(py, "oversize_client_hello"),
            Verdict::Malformed => intern!(py, "malformed"),
            Verdict::Fragmented => intern!(py, "fragmented"),
            Verdict::SequenceTooHigh => intern!(py, "sequence_too_high"),
        };
        let data = match &verdict {
            Verdict::Accepted { random } => PyBytes::new(py, random).into_any(),
            Verdict::HelloVerifySent(reply) | Verdict::BadCookie(reply) => {
                PyBytes::new(py, reply.as_bytes()).into_any()
            }
            _ => py.None().into_bound(py),
        };
        PyTuple::new(py, [name.clone().into_any(), data])
    }

    fn __repr__(&self) -> String {
        format!(
            "<HelloGate cookie_length={} max_client_hello={}>",
            self.inner.keys.length(),
            self.inner.max_client_hello()
        )
    }
}

// ------------------------------------------------------------ transcript

fn finished_error(err: FinishedError) -> PyErr {
    match err {
        FinishedError::Core(e) => e.into(),
        FinishedError::Codec(e) => e.into(),
        FinishedError::NotWhole(e) => LocalProtocolError::new_err(e.0),
    }
}

/// The handshake transcript (RFC 5246 §7.4.9, RFC 7627 §3, RFC 6347 §4.2.6).
#[pyclass(module = "dtlsfast._core", name = "HandshakeTranscript")]
pub struct PyHandshakeTranscript {
    inner: Transcript,
}

#[pymethods]
impl PyHandshakeTranscript {
    #[new]
    fn new() -> Self {
        PyHandshakeTranscript {
            inner: Transcript::new(),
        }
    }

    /// Append one whole message (header + complete body), fragment fields
    /// normalised. LocalProtocolError if it is not one whole message.
    fn add(&mut self, message: &[u8]) -> PyResult<()> {
        self.inner
            .add(message)
            .map_err(|e| LocalProtocolError::new_err(e.0))
    }

    /// The hash of every message so far (``"sha256"`` or ``"sha384"``).
    fn digest<'py>(&mut self, py: Python<'py>, hash_name: &str) -> PyResult<Bound<'py, PyBytes>> {
        let hash = PrfHash::from_name(hash_name).map_err(|_| {
            ConfigurationError::new_err(format!(
                "unsupported transcript hash {hash_name:?}; use one of sha256, sha384"
            ))
        })?;
        Ok(PyBytes::new(py, &self.inner.digest(hash)))
    }

    /// Our Finished message with ``message_seq`` over the messages so far
    /// (RFC 5246 §7.4.9), added to them: what the flight sends.
    #[pyo3(signature = (hash_name, master, label, message_seq, length = 12))]
    fn add_finished<'py>(
        &mut self,
        py: Python<'py>,
        hash_name: &str,
        master: &[u8],
        label: &[u8],
        message_seq: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = length_arg)] length: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let message_seq = u16_field(message_seq, "message_seq")?;
        let message = self
            .inner
            .add_finished(prf_hash(hash_name)?, master, label, message_seq, length)
            .map_err(finished_error)?;
        Ok(PyBytes::new(py, &message))
    }

    /// Whether the peer's Finished ``message`` (header and body) verifies
    /// over the messages so far, compared in constant time (RFC 5246
    /// §7.4.9); added to them if it does. DecodeError for an empty body,
    /// LocalProtocolError if ``message`` is not one whole Finished.
    #[pyo3(signature = (hash_name, master, label, message, length = 12))]
    fn check_finished(
        &mut self,
        hash_name: &str,
        master: &[u8],
        label: &[u8],
        message: &[u8],
        #[pyo3(from_py_with = length_arg)] length: usize,
    ) -> PyResult<bool> {
        self.inner
            .check_finished(prf_hash(hash_name)?, master, label, message, length)
            .map_err(finished_error)
    }

    /// Forget everything (after a HelloVerifyRequest, RFC 6347 §4.2.1).
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// All messages so far, concatenated.
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.data())
    }

    /// The messages added so far, normalised, in order.
    #[getter]
    fn messages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let messages: Vec<_> = self.inner.messages().map(|m| PyBytes::new(py, m)).collect();
        PyTuple::new(py, messages)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "<HandshakeTranscript messages={} bytes={}>",
            self.inner.len(),
            self.inner.data().len()
        )
    }
}

// ---------------------------------------------------------------- flights

impl From<FlightError> for PyErr {
    fn from(err: FlightError) -> PyErr {
        match err {
            FlightError::Core(e) => e.into(),
            FlightError::Misuse(m) => LocalProtocolError::new_err(m),
        }
    }
}

/// One writer as Python passed it: epoch, cipher, next sequence number, CID.
type WriterArgs<'py> = (
    u16,
    Option<Bound<'py, PyRecordCipher>>,
    u64,
    Bound<'py, PyBytes>,
);

fn shape(what: &str) -> PyErr {
    PyTypeError::new_err(format!("pack_flight: {what}"))
}

/// Seal a flight into datagrams of at most ``mtu`` bytes (RFC 6347 §4.2.3,
/// §4.1.1), as ``dtlsfast.flight.pack_flight`` lays it out.
///
/// ``items`` are ``(epoch, content_type, payload)``; ``writers`` are
/// ``(epoch, cipher or None, next_sequence, cid)`` of every epoch used.
/// Returns the datagrams and each writer's next sequence number afterwards.
#[pyfunction]
fn pack_flight<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = mtu_arg)] mtu: usize,
    #[pyo3(from_py_with = version_arg)] version: u16,
    writers: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    // Own the Python objects first so the borrowed slices outlive the packing.
    let mut payloads: Vec<(u16, u8, Bound<'py, PyBytes>)> = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        let t = item
            .cast::<PyTuple>()
            .map_err(|_| shape("items are (epoch, content_type, payload) tuples"))?;
        if t.len() != 3 {
            return Err(shape("items are (epoch, content_type, payload) tuples"));
        }
        let epoch = u16_arg(&*t.get_borrowed_item(0)?, "epoch")?;
        let content_type = u8::try_from(bounded(&*t.get_borrowed_item(1)?, "content_type", 0xFF)?)
            .map_err(|_| ConfigurationError::new_err("content_type out of range"))?;
        let payload = t
            .get_item(2)?
            .cast_into::<PyBytes>()
            .map_err(|_| shape("an item's payload must be bytes"))?;
        payloads.push((epoch, content_type, payload));
    }
    let mut states: Vec<WriterArgs<'py>> = Vec::new();
    for writer in writers.try_iter()? {
        let writer = writer?;
        let t = writer
            .cast::<PyTuple>()
            .map_err(|_| shape("writers are (epoch, cipher, next_sequence, cid) tuples"))?;
        if t.len() != 4 {
            return Err(shape(
                "writers are (epoch, cipher, next_sequence, cid) tuples",
            ));
        }
        let epoch = u16_arg(&*t.get_borrowed_item(0)?, "epoch")?;
        let cipher = t.get_item(1)?;
        let cipher = if cipher.is_none() {
            None
        } else {
            Some(
                cipher
                    .cast_into::<PyRecordCipher>()
                    .map_err(|_| shape("a writer's cipher must be a _core.RecordCipher or None"))?,
            )
        };
        let next = bounded(
            &*t.get_borrowed_item(2)?,
            "next_sequence",
            MAX_SEQUENCE_NUMBER + 1,
        )?;
        let cid = t
            .get_item(3)?
            .cast_into::<PyBytes>()
            .map_err(|_| shape("a writer's cid must be bytes"))?;
        states.push((epoch, cipher, next, cid));
    }
    let flight_items: Vec<FlightItem<'_>> = payloads
        .iter()
        .map(|(epoch, content_type, payload)| FlightItem {
            epoch: *epoch,
            content_type: *content_type,
            payload: payload.as_bytes(),
        })
        .collect();
    let mut write_epochs: Vec<WriteEpoch<'_>> = states
        .iter()
        .map(|(epoch, cipher, next, cid)| WriteEpoch {
            epoch: *epoch,
            cipher: cipher.as_ref().map(|c| &c.get().inner),
            cid: cid.as_bytes(),
            next_sequence: *next,
        })
        .collect();
    let datagrams = flight::pack_flight(&flight_items, mtu, version, &mut write_epochs)?;
    let out = PyList::new(py, datagrams.iter().map(|d| PyBytes::new(py, d)))?;
    let sequences = PyList::new(py, write_epochs.iter().map(|w| w.next_sequence))?;
    (out, sequences)
        .into_bound_py_any(py)?
        .cast_into::<PyTuple>()
        .map_err(Into::into)
}

fn mtu_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    bounded_usize(value, "mtu", 0xFFFF)
}

fn version_arg(value: &Bound<'_, PyAny>) -> PyResult<u16> {
    u16_arg(value, "version")
}

fn u16_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u16> {
    u16::try_from(bounded(value, name, 0xFFFF)?)
        .map_err(|_| ConfigurationError::new_err(format!("{name} out of range")))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // setattr, as bindings::register does: the stub declares no __all__.
    let py = m.py();
    m.setattr("derive_keys", wrap_pyfunction!(derive_keys, m)?)?;
    m.setattr("key_block", wrap_pyfunction!(key_block, m)?)?;
    m.setattr("peer_bytes", wrap_pyfunction!(peer_bytes, m)?)?;
    m.setattr("pack_flight", wrap_pyfunction!(pack_flight, m)?)?;
    m.setattr("HelloGate", py.get_type::<PyHelloGate>())?;
    m.setattr(
        "HandshakeTranscript",
        py.get_type::<PyHandshakeTranscript>(),
    )?;
    Ok(())
}
