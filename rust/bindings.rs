//! The Python face of the engine: thin #[pyclass] / #[pyfunction] wrappers
//! over record.rs, cipher.rs, replay.rs, reassembly.rs and
//! reassembly_budget.rs, as `_core.pyi`
//! declares them. Exceptions live in Python (dtlsfast.exceptions) and are
//! imported here; bytes go in as borrowed `&[u8]` and come out written in
//! place with `PyBytes::new_with`.

use std::sync::Arc;

use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::cipher::{RecordCipher as CoreCipher, AEAD_NAMES};
use crate::errors::CoreError;
use crate::reassembly::{HandshakeReassembler as CoreReassembler, HANDSHAKE_HEADER_LENGTH};
use crate::reassembly_budget::ReassemblyBudget as CoreBudget;
use crate::record::{
    self, RecordFields, CID_CONTENT_TYPE, MAX_CID_LENGTH, MAX_SEQUENCE_NUMBER, RECORD_HEADER_LENGTH,
};
use crate::replay::ReplayWindow as CoreWindow;

pyo3::import_exception!(dtlsfast.exceptions, ConfigurationError);
pyo3::import_exception!(dtlsfast.exceptions, DecodeError);

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        match err {
            CoreError::Configuration(m) => ConfigurationError::new_err(m),
            CoreError::Decode(m) => DecodeError::new_err(m),
        }
    }
}

/// An integer argument as u64; a negative or huge int is a ConfigurationError
/// (a ValueError) naming the accepted range, not PyO3's OverflowError.
pub(crate) fn uint_arg(value: &Bound<'_, PyAny>, name: &str, max: u64) -> PyResult<u64> {
    let out_of_range =
        || ConfigurationError::new_err(format!("{name} must be in 0..={max}, got {value}"));
    match value.extract::<u64>() {
        Ok(v) if v <= max => Ok(v),
        Ok(_) => Err(out_of_range()),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => Err(out_of_range()),
        Err(e) => Err(e),
    }
}

fn window_size_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "size", crate::replay::MAX_WINDOW_SIZE as u64)
}

fn max_message_size_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "max_message_size", u64::MAX)
}

fn max_buffered_bytes_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "max_buffered_bytes", u64::MAX)
}

fn offset_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "offset", u64::MAX)
}

fn limit_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "limit", u64::MAX)
}

fn per_source_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "per_source", u64::MAX)
}

fn cid_length_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "cid_length", MAX_CID_LENGTH as u64)
}

fn padding_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "padding", 0xFFFF)
}

fn next_seq_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "next_seq", 0xFFFF)
}

pub(crate) fn record_fields(
    content_type: &Bound<'_, PyAny>,
    version: &Bound<'_, PyAny>,
    epoch: &Bound<'_, PyAny>,
    sequence_number: &Bound<'_, PyAny>,
) -> PyResult<RecordFields> {
    Ok(RecordFields::new(
        uint_arg(content_type, "content_type", 0xFF)?,
        uint_arg(version, "version", 0xFFFF)?,
        uint_arg(epoch, "epoch", 0xFFFF)?,
        uint_arg(sequence_number, "sequence_number", MAX_SEQUENCE_NUMBER)?,
    )?)
}

/// Split a datagram into DTLS records (RFC 6347 §4.1).
///
/// Returns ``(content_type, version, epoch, sequence_number, fragment)`` for
/// every well-formed record; stops at the first malformed one and returns the
/// prefix. Never raises.
#[pyfunction]
fn parse_records<'py>(py: Python<'py>, datagram: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for r in record::parse_records(datagram) {
        let h = r.header;
        list.append((
            h.content_type,
            h.version,
            h.epoch,
            h.sequence_number,
            PyBytes::new(py, r.fragment),
        ))?;
    }
    Ok(list)
}

/// Split a datagram into DTLS records, tls12_cid ones included (RFC 9146 §4).
///
/// Records of type 25 carry a CID of ``cid_length`` bytes (the receiver's own
/// CID length) before the length field. Returns ``(content_type, version,
/// epoch, sequence_number, cid, fragment)``, ``cid`` empty for other types;
/// stops at the first malformed record. Raises ConfigurationError only for a
/// ``cid_length`` outside 0..=255.
#[pyfunction]
fn parse_records_cid<'py>(
    py: Python<'py>,
    datagram: &[u8],
    #[pyo3(from_py_with = cid_length_arg)] cid_length: u64,
) -> PyResult<Bound<'py, PyList>> {
    let cid_length = usize::try_from(cid_length)
        .map_err(|_| ConfigurationError::new_err("cid_length out of range"))?;
    let list = PyList::empty(py);
    for r in record::parse_records_cid(datagram, cid_length)? {
        list.append(record_tuple(py, &r))?;
    }
    Ok(list)
}

/// One record of :func:`parse_records_cid` as Python sees it:
/// ``(content_type, version, epoch, sequence_number, cid, fragment)``.
fn record_tuple<'py>(
    py: Python<'py>,
    r: &record::Record<'_>,
) -> (u8, u16, u16, u64, Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
    let h = r.header;
    (
        h.content_type,
        h.version,
        h.epoch,
        h.sequence_number,
        PyBytes::new(py, r.cid),
        PyBytes::new(py, r.fragment),
    )
}

/// :func:`parse_records_cid` and what a record layer needs besides:
/// ``(records, consumed, plaintext)``, ``consumed`` the bytes the records
/// took (less than the datagram if something malformed followed them) and
/// ``plaintext`` whether every record is an epoch-0, non-tls12_cid record
/// of a DTLS version (major 0xFE), true for none.
#[pyfunction]
fn split_records<'py>(
    py: Python<'py>,
    datagram: &[u8],
    #[pyo3(from_py_with = cid_length_arg)] cid_length: u64,
) -> PyResult<(Bound<'py, PyList>, usize, bool)> {
    let cid_length = usize::try_from(cid_length)
        .map_err(|_| ConfigurationError::new_err("cid_length out of range"))?;
    let list = PyList::empty(py);
    let mut records = record::parse_records_cid(datagram, cid_length)?;
    let mut plaintext = true;
    for r in records.by_ref() {
        plaintext &= r.is_epoch0_plaintext();
        list.append(record_tuple(py, &r))?;
    }
    let consumed = datagram.len().saturating_sub(records.remaining().len());
    Ok((list, consumed, plaintext))
}

/// Build one record: the 13-byte header followed by ``fragment``.
///
/// Raises ValueError (ConfigurationError) for a field out of range.
#[pyfunction]
fn encode_record<'py>(
    py: Python<'py>,
    content_type: &Bound<'py, PyAny>,
    version: &Bound<'py, PyAny>,
    epoch: &Bound<'py, PyAny>,
    sequence_number: &Bound<'py, PyAny>,
    fragment: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let fields = record_fields(content_type, version, epoch, sequence_number)?;
    let length = RECORD_HEADER_LENGTH.saturating_add(fragment.len());
    // Check the length before allocating the output.
    fields.header(fragment.len())?;
    PyBytes::new_with(py, length, |out| {
        Ok(record::encode_record_into(&fields, fragment, out)?)
    })
}

/// AEAD protection of DTLS records for one epoch and one direction
/// (RFC 6347 §4.1.2.1, RFC 5246 §6.2.3.3, RFC 5288, RFC 6655, RFC 7905).
#[pyclass(frozen, module = "dtlsfast._core", name = "RecordCipher")]
pub struct PyRecordCipher {
    pub(crate) inner: CoreCipher,
}

impl PyRecordCipher {
    fn open_fields<'py>(
        &self,
        py: Python<'py>,
        fields: &RecordFields,
        fragment: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(length) = self.inner.opened_length(fragment.len()) else {
            return Ok(None);
        };
        let mut ok = false;
        let bytes = PyBytes::new_with(py, length, |out| {
            ok = self.inner.open_into(fields, fragment, out);
            Ok(())
        })?;
        // On failure the buffer (zeroed by the AEAD) is simply released.
        Ok(ok.then_some(bytes))
    }
}

#[pymethods]
impl PyRecordCipher {
    #[new]
    fn new(aead: &str, key: &[u8], iv: &[u8]) -> PyResult<Self> {
        Ok(PyRecordCipher {
            inner: CoreCipher::new(aead, key, iv)?,
        })
    }

    #[getter]
    fn aead(&self) -> &'static str {
        self.inner.name()
    }

    /// Bytes a sealed record adds beyond header and plaintext:
    /// explicit nonce plus tag (16 for CCM_8, 24 for CCM and GCM, 16 for ChaCha20).
    #[getter]
    fn overhead(&self) -> usize {
        self.inner.overhead()
    }

    /// Return the whole protected record, header included.
    fn seal<'py>(
        &self,
        py: Python<'py>,
        content_type: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
        epoch: &Bound<'py, PyAny>,
        sequence_number: &Bound<'py, PyAny>,
        plaintext: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let fields = record_fields(content_type, version, epoch, sequence_number)?;
        let length = self.inner.sealed_length(plaintext.len())?;
        PyBytes::new_with(py, length, |out| {
            Ok(self.inner.seal_into(&fields, plaintext, out)?)
        })
    }

    /// Open one whole record (header included). None if it is malformed or
    /// does not authenticate; never raises for bad input.
    fn open<'py>(&self, py: Python<'py>, record: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(parsed) = record::parse_single_record(record) else {
            return Ok(None);
        };
        self.open_fields(py, &parsed.header.fields(), parsed.fragment)
    }

    /// Open a record already split by :func:`parse_records`.
    ///
    /// None if the fragment does not authenticate; ConfigurationError if a
    /// field is out of range (no parsed record can have such a field).
    fn open_parts<'py>(
        &self,
        py: Python<'py>,
        content_type: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
        epoch: &Bound<'py, PyAny>,
        sequence_number: &Bound<'py, PyAny>,
        fragment: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let fields = record_fields(content_type, version, epoch, sequence_number)?;
        self.open_fields(py, &fields, fragment)
    }

    /// Return a whole tls12_cid record (RFC 9146 §4, §5) carrying ``cid``:
    /// ``content_type`` is the real type, sealed with the content and
    /// ``padding`` zero bytes in the DTLSInnerPlaintext.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (content_type, version, epoch, sequence_number, cid, plaintext, padding = 0))]
    fn seal_cid<'py>(
        &self,
        py: Python<'py>,
        content_type: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
        epoch: &Bound<'py, PyAny>,
        sequence_number: &Bound<'py, PyAny>,
        cid: &[u8],
        plaintext: &[u8],
        #[pyo3(from_py_with = padding_arg)] padding: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let fields = record_fields(content_type, version, epoch, sequence_number)?;
        let padding = usize::try_from(padding)
            .map_err(|_| ConfigurationError::new_err("padding out of range"))?;
        let length = self
            .inner
            .sealed_cid_length(cid.len(), plaintext.len(), padding)?;
        PyBytes::new_with(py, length, |out| {
            Ok(self
                .inner
                .seal_cid_into(&fields, cid, plaintext, padding, out)?)
        })
    }

    /// Open the fragment of a tls12_cid record split by
    /// :func:`parse_records_cid`: ``(real_type, content)``, or None if it does
    /// not authenticate or its inner plaintext has no content type.
    fn open_cid<'py>(
        &self,
        py: Python<'py>,
        version: &Bound<'py, PyAny>,
        epoch: &Bound<'py, PyAny>,
        sequence_number: &Bound<'py, PyAny>,
        cid: &[u8],
        fragment: &[u8],
    ) -> PyResult<Option<(u8, Bound<'py, PyBytes>)>> {
        let fields = RecordFields::new(
            u64::from(CID_CONTENT_TYPE),
            uint_arg(version, "version", 0xFFFF)?,
            uint_arg(epoch, "epoch", 0xFFFF)?,
            uint_arg(sequence_number, "sequence_number", MAX_SEQUENCE_NUMBER)?,
        )?;
        if cid.len() > MAX_CID_LENGTH {
            return Ok(None);
        }
        Ok(self
            .inner
            .open_cid(&fields, cid, fragment)
            .map(|(content_type, content)| (content_type, PyBytes::new(py, &content))))
    }

    /// ``(key, iv)`` as the constructor took them, for persisting a
    /// session; never log them.
    fn key_material<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
        let (key, iv) = self.inner.key_material();
        (PyBytes::new(py, key), PyBytes::new(py, iv))
    }

    fn __repr__(&self) -> String {
        // Never the key.
        format!("<RecordCipher {}>", self.inner.name())
    }
}

/// Sliding anti-replay window for one epoch (RFC 6347 §4.1.2.6).
#[pyclass(module = "dtlsfast._core", name = "ReplayWindow")]
pub struct PyReplayWindow {
    pub(crate) inner: CoreWindow,
}

#[pymethods]
impl PyReplayWindow {
    #[new]
    #[pyo3(signature = (size = 64))]
    fn new(#[pyo3(from_py_with = window_size_arg)] size: u64) -> PyResult<Self> {
        Ok(PyReplayWindow {
            inner: CoreWindow::new(size)?,
        })
    }

    #[getter]
    fn size(&self) -> u64 {
        self.inner.size()
    }

    /// The highest sequence number accepted so far, None before the first.
    #[getter]
    fn highest(&self) -> Option<u64> {
        self.inner.highest()
    }

    /// True if the record is new and not left of the window.
    fn check(&self, sequence_number: &Bound<'_, PyAny>) -> PyResult<bool> {
        match sequence_number.extract::<u64>() {
            Ok(seq) => Ok(self.inner.check(seq)),
            // Negative or past 2**64: certainly not an acceptable record.
            Err(e) if e.is_instance_of::<PyOverflowError>(sequence_number.py()) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Mark a record seen; call only after it authenticated.
    fn accept(&mut self, sequence_number: &Bound<'_, PyAny>) -> PyResult<()> {
        let seq = uint_arg(sequence_number, "sequence_number", MAX_SEQUENCE_NUMBER)?;
        Ok(self.inner.accept(seq)?)
    }

    /// ``(highest, bitmap)`` in canonical form: bit ``i`` (byte ``i // 8``,
    /// least significant bit first) says whether ``highest - i`` was
    /// accepted; ``(None, b"")`` before the first record.
    fn export<'py>(&self, py: Python<'py>) -> (Option<u64>, Bound<'py, PyBytes>) {
        let (highest, bitmap) = self.inner.export();
        (highest, PyBytes::new(py, &bitmap))
    }

    /// The window that :meth:`export` described (ConfigurationError if the
    /// bitmap is not canonical).
    #[staticmethod]
    fn restore(
        #[pyo3(from_py_with = window_size_arg)] size: u64,
        highest: Option<&Bound<'_, PyAny>>,
        bitmap: &[u8],
    ) -> PyResult<Self> {
        // restore() range-checks highest and size itself.
        let highest = match highest {
            Some(h) => Some(uint_arg(h, "highest", MAX_SEQUENCE_NUMBER)?),
            None => None,
        };
        Ok(PyReplayWindow {
            inner: CoreWindow::restore(size, highest, bitmap)?,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<ReplayWindow size={} highest={:?}>",
            self.inner.size(),
            self.inner.highest()
        )
    }
}

/// One byte budget shared by the handshake reassemblers of a server: at most
/// `limit` bytes in all, and `per_source` for the reassemblers of one source.
#[pyclass(module = "dtlsfast._core", name = "ReassemblyBudget", frozen)]
pub struct PyReassemblyBudget {
    inner: Arc<CoreBudget>,
}

#[pymethods]
impl PyReassemblyBudget {
    #[new]
    #[pyo3(signature = (limit, per_source = None))]
    fn new(
        #[pyo3(from_py_with = limit_arg)] limit: u64,
        per_source: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let per_source = per_source.map(per_source_arg).transpose()?;
        Ok(PyReassemblyBudget {
            inner: Arc::new(CoreBudget::new(limit, per_source)?),
        })
    }

    #[getter]
    fn limit(&self) -> u64 {
        self.inner.limit()
    }

    #[getter]
    fn per_source(&self) -> u64 {
        self.inner.per_source()
    }

    /// Bytes held by all the reassemblers sharing the budget.
    #[getter]
    fn used(&self) -> u64 {
        self.inner.used()
    }

    /// Sources holding bytes.
    #[getter]
    fn sources(&self) -> usize {
        self.inner.sources()
    }

    /// Fragments dropped because the budget refused them.
    #[getter]
    fn refused(&self) -> u64 {
        self.inner.refused()
    }

    /// Bytes held by the reassemblers of `source`.
    fn held_by(&self, source: &[u8]) -> u64 {
        self.inner.held_by(source)
    }

    fn __repr__(&self) -> String {
        format!(
            "<ReassemblyBudget used={} limit={} sources={} refused={}>",
            self.inner.used(),
            self.inner.limit(),
            self.inner.sources(),
            self.inner.refused()
        )
    }
}

/// Handshake fragments in, whole messages out in message_seq order
/// (RFC 6347 §4.2.2, §4.2.3).
#[pyclass(module = "dtlsfast._core", name = "HandshakeReassembler")]
pub struct PyHandshakeReassembler {
    inner: CoreReassembler,
}

#[pymethods]
impl PyHandshakeReassembler {
    #[new]
    #[pyo3(signature = (
        max_message_size = 32768, max_buffered_bytes = 65536, next_seq = 0, *, budget = None,
        source = None
    ))]
    fn new(
        #[pyo3(from_py_with = max_message_size_arg)] max_message_size: u64,
        #[pyo3(from_py_with = max_buffered_bytes_arg)] max_buffered_bytes: u64,
        #[pyo3(from_py_with = next_seq_arg)] next_seq: u64,
        budget: Option<&Bound<'_, PyReassemblyBudget>>,
        source: Option<&[u8]>,
    ) -> PyResult<Self> {
        let mut inner = CoreReassembler::new(max_message_size, max_buffered_bytes, next_seq)?;
        if let Some(budget) = budget {
            inner = inner.with_budget(budget.get().inner.clone(), source.map(<[u8]>::to_vec));
        }
        Ok(PyHandshakeReassembler { inner })
    }

    #[getter]
    fn next_seq(&self) -> u32 {
        self.inner.next_seq()
    }

    #[setter]
    fn set_next_seq(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        Ok(self.inner.set_next_seq(next_seq_arg(value)?)?)
    }

    #[getter]
    fn buffered_bytes(&self) -> u64 {
        self.inner.buffered_bytes()
    }

    /// Discard every buffered message and give its bytes back to the budget
    /// (the connection is going).
    fn discard(&mut self) {
        self.inner.discard();
    }

    /// Fragments dropped because a bound was hit.
    #[getter]
    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    /// Take one fragment (12-byte header + body); return the messages now
    /// whole, each as an unfragmented message with its 12-byte header.
    fn push<'py>(&mut self, py: Python<'py>, fragment: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let messages = self.inner.push(fragment)?;
        PyList::new(py, messages.iter().map(|m| PyBytes::new(py, m)))
    }

    /// The fragments of one handshake record's payload from ``offset`` on:
    /// ``(judged, messages, offset)`` (rust/reassembly.rs ``push_record``).
    /// With ``push``, the fragments at or past next_seq are pushed until one
    /// delivers ``messages``; ``judged`` holds ``(msg_type, message_seq,
    /// fragment)`` of those left to the caller (below next_seq; without
    /// ``push``, the first fragment alone). ``offset``: where the next call
    /// starts, 0 when the record is done.
    #[pyo3(signature = (payload, offset = 0, push = true))]
    fn push_record<'py>(
        &mut self,
        py: Python<'py>,
        payload: &[u8],
        #[pyo3(from_py_with = offset_arg)] offset: u64,
        push: bool,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>, usize)> {
        // Past usize it is past the payload too.
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let out = self.inner.push_record(payload, offset, push)?;
        let judged = PyList::new(
            py,
            out.judged
                .iter()
                .map(|&(t, seq, bytes)| (t, seq, PyBytes::new(py, bytes))),
        )?;
        let messages = PyList::new(py, out.messages.iter().map(|m| PyBytes::new(py, m)))?;
        Ok((judged, messages, out.offset))
    }

    fn __repr__(&self) -> String {
        format!(
            "<HandshakeReassembler next_seq={} buffered_bytes={} dropped={}>",
            self.inner.next_seq(),
            self.inner.buffered_bytes(),
            self.inner.dropped()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // setattr rather than add/add_class/add_function: those also build a
    // module `__all__`, which the stub (a private module) does not declare.
    let py = m.py();
    m.setattr("MAX_SEQUENCE_NUMBER", MAX_SEQUENCE_NUMBER)?;
    m.setattr("RECORD_HEADER_LENGTH", RECORD_HEADER_LENGTH)?;
    m.setattr("HANDSHAKE_HEADER_LENGTH", HANDSHAKE_HEADER_LENGTH)?;
    m.setattr("AEAD_NAMES", PyTuple::new(py, AEAD_NAMES)?)?;
    m.setattr("MAX_CID_LENGTH", MAX_CID_LENGTH)?;
    m.setattr("CID_CONTENT_TYPE", CID_CONTENT_TYPE)?;
    m.setattr("parse_records", wrap_pyfunction!(parse_records, m)?)?;
    m.setattr("parse_records_cid", wrap_pyfunction!(parse_records_cid, m)?)?;
    m.setattr("split_records", wrap_pyfunction!(split_records, m)?)?;
    m.setattr("encode_record", wrap_pyfunction!(encode_record, m)?)?;
    m.setattr("RecordCipher", py.get_type::<PyRecordCipher>())?;
    m.setattr("ReplayWindow", py.get_type::<PyReplayWindow>())?;
    m.setattr(
        "HandshakeReassembler",
        py.get_type::<PyHandshakeReassembler>(),
    )?;
    m.setattr("ReassemblyBudget", py.get_type::<PyReassemblyBudget>())?;
    Ok(())
}
