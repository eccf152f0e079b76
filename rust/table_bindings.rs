//! The Python face of the session table (session_table.rs): install and
//! remove sessions, open and seal records one at a time for Python's record
//! layer, and in batches with the GIL released for the server's fast path.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::bindings::{
    record_fields, uint_arg, ConfigurationError, PyRecordCipher, PyReplayWindow,
};
use crate::handshake_crypto_bindings::PyHelloGate;
use crate::io_bindings::{address_tuple, extract_datagrams, parse_address, PyBatchSocket};
use crate::record::{check_sequence_number, MAX_SEQUENCE_NUMBER};
use crate::session_table::{
    CidOutcome, FastDatagram, RecordOutcome, Served, SessionTable as CoreTable, TableSession,
    APPLICATION_DATA,
};

/// Established sessions' record state for the fast path (DESIGN.md).
#[pyclass(module = "dtlsfast._core", name = "SessionTable")]
pub struct PySessionTable {
    inner: CoreTable,
}

fn session_id_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "session_id", u64::MAX)
}

fn capacity_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "capacity", u32::MAX as u64)
}

fn version_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    uint_arg(value, "version", 0xFFFF)
}

fn fast_result<'py>(py: Python<'py>, fast: FastDatagram) -> PyResult<Bound<'py, PyTuple>> {
    let plaintexts = PyList::empty(py);
    for p in &fast.plaintexts {
        plaintexts.append(PyBytes::new(py, p))?;
    }
    let replies = PyList::empty(py);
    for r in &fast.replies {
        replies.append(PyBytes::new(py, r))?;
    }
    PyTuple::new(
        py,
        [
            plaintexts.into_any(),
            fast.replayed.into_pyobject(py)?.into_any(),
            fast.bad_auth.into_pyobject(py)?.into_any(),
            replies.into_any(),
        ],
    )
}

/// ``(received, to_python, delivered, replies, closed)`` of a served batch, the
/// first `skip` replies left out (those the socket already took).
fn served_tuple<'py>(
    py: Python<'py>,
    served: &Served,
    skip: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    let to_python = PyList::empty(py);
    for (data, addr) in &served.to_python {
        to_python.append((PyBytes::new(py, data), address_tuple(py, addr)?))?;
    }
    let delivered = PyList::empty(py);
    for (addr, plaintext) in &served.delivered {
        delivered.append((address_tuple(py, addr)?, PyBytes::new(py, plaintext)))?;
    }
    let replies = PyList::empty(py);
    for (data, addr) in served.replies.iter().skip(skip) {
        replies.append((PyBytes::new(py, data), address_tuple(py, addr)?))?;
    }
    let closed = PyList::empty(py);
    for (addr, id) in &served.closed {
        closed.append((address_tuple(py, addr)?, *id))?;
    }
    PyTuple::new(
        py,
        [
            served.received.into_pyobject(py)?.into_any(),
            to_python.into_any(),
            delivered.into_any(),
            replies.into_any(),
            closed.into_any(),
        ],
    )
}

/// `(session_id, bytes)` pairs of a batch, borrowed for the GIL-free pass.
fn borrow_batch<'a, 'py>(items: &'a [(u64, Bound<'py, PyBytes>)]) -> Vec<(u64, &'a [u8])> {
    items.iter().map(|(id, b)| (*id, b.as_bytes())).collect()
}

fn extract_batch<'py>(batch: &Bound<'py, PyAny>) -> PyResult<Vec<(u64, Bound<'py, PyBytes>)>> {
    let mut items = Vec::new();
    for item in batch.try_iter()? {
        let item = item?;
        let pair = item.cast::<PyTuple>().map_err(|_| {
            ConfigurationError::new_err("batch items must be (session_id, bytes) tuples")
        })?;
        if pair.len() != 2 {
            return Err(ConfigurationError::new_err(
                "batch items must be (session_id, bytes) tuples",
            ));
        }
        let id = session_id_arg(&pair.get_item(0)?)?;
        let data = pair.get_item(1)?.cast_into::<PyBytes>().map_err(|_| {
            ConfigurationError::new_err("batch items must be (session_id, bytes) tuples")
        })?;
        items.push((id, data));
    }
    Ok(items)
}

#[pymethods]
impl PySessionTable {
    #[new]
    #[pyo3(signature = (capacity = 100_000))]
    fn new(#[pyo3(from_py_with = capacity_arg)] capacity: u64) -> PyResult<Self> {
        Ok(PySessionTable {
            inner: CoreTable::new(capacity as usize)?,
        })
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Approximate bytes per installed session (its slots by id and by address,
    /// key schedules, window).
    #[getter]
    fn session_footprint(&self) -> usize {
        self.inner.session_footprint()
    }

    /// CoAP requests answered from published responses so far.
    #[getter]
    fn coap_answered(&self) -> u64 {
        self.inner.answers.answered()
    }

    /// Publish the encoded response (code byte, options, payload marker and
    /// payload) that answers a Confirmable GET of ``path`` ("light",
    /// "a/b") whose only options are its Uri-Path segments; None withdraws it.
    fn publish(&mut self, path: &[u8], response: Option<&[u8]>) -> PyResult<()> {
        Ok(self.inner.answers.publish(path, response)?)
    }

    /// Route datagrams from ``address`` (a socket-module address tuple) to
    /// the session in :meth:`serve_batch`; ``now`` starts its activity clock.
    fn bind_address(
        &mut self,
        session_id: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
        now: f64,
    ) -> PyResult<()> {
        let id = session_id_arg(session_id)?;
        Ok(self.inner.bind_address(id, parse_address(address)?, now)?)
    }

    /// The fast path's MAC-error filter: ``burst`` authentication failures
    /// at once, ``rate`` per second after that, per session (defaults 20,000
    /// and 200,000: below them every record is opened); past them a
    /// session's datagrams are dropped unopened (counted as throttled) until
    /// a token comes back.
    fn set_auth_filter(&mut self, burst: f32, rate: f32) -> PyResult<()> {
        Ok(self.inner.set_auth_filter(burst, rate)?)
    }

    /// When :meth:`serve_batch` last opened a datagram of the session.
    fn last_active(&self, session_id: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let id = session_id_arg(session_id)?;
        Ok(self.inner.get(id).map(|s| s.last_active))
    }

    /// Totals of :meth:`serve_batch` over all sessions, removed ones included:
    /// ``{"opened", "replayed", "bad_auth", "throttled", "hellos_answered",
    /// "closed"}`` (ClientHellos without a cookie answered by the gate; sessions
    /// closed on the peer's close_notify).
    #[getter]
    fn totals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.counters;
        let out = PyDict::new(py);
        out.set_item("opened", c.opened)?;
        out.set_item("replayed", c.replayed)?;
        out.set_item("bad_auth", c.bad_auth)?;
        out.set_item("throttled", c.throttled)?;
        out.set_item("hellos_answered", c.hellos_answered)?;
        out.set_item("closed", c.closed)?;
        Ok(out)
    }

    /// One batch of the fast path, the GIL released throughout: receive up to
    /// a batch of datagrams from ``sock`` (a :class:`BatchSocket`), open those
    /// of bound sessions, send the answers to published CoAP GETs and, with
    /// the server's ``gate`` (a :class:`HelloGate`), the HelloVerifyRequests
    /// to ClientHellos without a cookie from other addresses, and the answer
    /// to a bound session's close_notify (RFC 5246 §7.2.1: the session then
    /// leaves its address), and return ``(received, to_python, delivered,
    /// unsent, closed)``: how many datagrams came, those Python must handle
    /// as ``(data, address)``, application data as ``(address, plaintext)``,
    /// answers the socket did not take now as ``(data, address)``, and the
    /// sessions closed by their peer as ``(address, session_id)``, for
    /// Python to forget.
    #[pyo3(signature = (sock, now, gate = None))]
    fn serve_batch<'py>(
        &mut self,
        py: Python<'py>,
        mut sock: PyRefMut<'py, PyBatchSocket>,
        now: f64,
        gate: Option<PyRef<'py, PyHelloGate>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let table = &mut self.inner;
        let io = &mut sock.inner;
        let gate = gate.as_deref().map(PyHelloGate::core);
        let (served, sent) = py.detach(|| -> std::io::Result<_> {
            let received = io.recv()?;
            let served = table.serve(received, now, gate);
            let outgoing: Vec<(&[u8], std::net::SocketAddr)> =
                served.replies.iter().map(|(d, a)| (&d[..], *a)).collect();
            let sent = if outgoing.is_empty() {
                0
            } else {
                io.send(&outgoing).unwrap_or(0)
            };
            Ok((served, sent))
        })?;
        served_tuple(py, &served, sent)
    }

    /// The logic of :meth:`serve_batch` without the socket (for tests and
    /// other transports): ``batch`` is ``[(data, address), ...]``; returns
    /// ``(received, to_python, delivered, replies, closed)``.
    #[pyo3(signature = (batch, now, gate = None))]
    fn serve<'py>(
        &mut self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
        now: f64,
        gate: Option<PyRef<'py, PyHelloGate>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let received = extract_datagrams(batch)?
            .into_iter()
            .map(|(data, addr)| (data.as_bytes().to_vec(), addr))
            .collect();
        let served = self
            .inner
            .serve(received, now, gate.as_deref().map(PyHelloGate::core));
        served_tuple(py, &served, 0)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, session_id: &Bound<'_, PyAny>) -> bool {
        session_id
            .extract::<u64>()
            .is_ok_and(|id| self.inner.contains(id))
    }

    /// Take over a session's current epochs: copies of the ciphers and of the
    /// window, and the next write sequence number. From then on open and seal
    /// that session's records through the table only.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (session_id, read_cipher, read_epoch, window, write_cipher, write_epoch, next_write_sequence, version = 0xFEFD))]
    fn install(
        &mut self,
        session_id: &Bound<'_, PyAny>,
        read_cipher: PyRef<'_, PyRecordCipher>,
        read_epoch: &Bound<'_, PyAny>,
        window: PyRef<'_, PyReplayWindow>,
        write_cipher: PyRef<'_, PyRecordCipher>,
        write_epoch: &Bound<'_, PyAny>,
        next_write_sequence: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = version_arg)] version: u64,
    ) -> PyResult<()> {
        let session = TableSession::new(
            read_cipher.inner.clone(),
            uint_arg(read_epoch, "read_epoch", 0xFFFF)? as u16,
            window.inner.clone(),
            write_cipher.inner.clone(),
            uint_arg(write_epoch, "write_epoch", 0xFFFF)? as u16,
            uint_arg(
                next_write_sequence,
                "next_write_sequence",
                MAX_SEQUENCE_NUMBER,
            )?,
            version as u16,
        );
        Ok(self.inner.install(session_id_arg(session_id)?, session)?)
    }

    /// Forget a session (its keys go with it); False if it was not there.
    fn remove(&mut self, session_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.remove(session_id_arg(session_id)?))
    }

    /// The sequence number the next sealed record gets; None if unknown.
    fn next_write_sequence(&self, session_id: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let id = session_id_arg(session_id)?;
        Ok(self.inner.get(id).map(|s| s.next_write_sequence))
    }

    /// Open one record for Python's record layer: the plaintext, "replay" or
    /// "bad_auth"; None if the session is unknown or the epoch is not the
    /// table's current read epoch.
    #[allow(clippy::too_many_arguments)]
    fn open_record<'py>(
        &mut self,
        py: Python<'py>,
        session_id: &Bound<'py, PyAny>,
        content_type: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
        epoch: &Bound<'py, PyAny>,
        sequence_number: &Bound<'py, PyAny>,
        fragment: &[u8],
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let id = session_id_arg(session_id)?;
        let fields = record_fields(content_type, version, epoch, sequence_number)?;
        Ok(match self.inner.open_record(id, &fields, fragment) {
            None => None,
            Some(RecordOutcome::Opened(p)) => Some(PyBytes::new(py, &p).into_any()),
            Some(RecordOutcome::Replayed) => Some(PyString::new(py, "replay").into_any()),
            Some(RecordOutcome::BadAuth) => Some(PyString::new(py, "bad_auth").into_any()),
        })
    }

    /// Give the session connection IDs (RFC 9146): ``read_cid`` is the CID
    /// records to us carry, ``write_cid`` the one sealed records carry (then
    /// as tls12_cid records); an empty one keeps the plain record format in
    /// that direction, both empty remove them.
    fn set_connection_ids(
        &mut self,
        session_id: &Bound<'_, PyAny>,
        read_cid: &[u8],
        write_cid: &[u8],
    ) -> PyResult<()> {
        let id = session_id_arg(session_id)?;
        Ok(self.inner.set_connection_ids(id, read_cid, write_cid)?)
    }

    /// Open one tls12_cid record (RFC 9146 §5) carrying ``cid``:
    /// ``(content_type, plaintext, newest)`` with the real content type and
    /// whether no earlier record of the session was newer (RFC 9146 §6), or
    /// "replay" or "bad_auth"; None if the session is unknown, the epoch is
    /// not its current read epoch or ``cid`` is not its CID.
    #[allow(clippy::too_many_arguments)]
    fn open_cid_record<'py>(
        &mut self,
        py: Python<'py>,
        session_id: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
        epoch: &Bound<'py, PyAny>,
        sequence_number: &Bound<'py, PyAny>,
        cid: &[u8],
        fragment: &[u8],
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let id = session_id_arg(session_id)?;
        let ctype = 25u8.into_pyobject(py)?;
        let fields = record_fields(ctype.as_any(), version, epoch, sequence_number)?;
        Ok(
            match self.inner.open_cid_record(id, &fields, cid, fragment) {
                None => None,
                Some(CidOutcome::Opened(content_type, p, newest)) => Some(
                    (content_type, PyBytes::new(py, &p), newest)
                        .into_pyobject(py)?
                        .into_any(),
                ),
                Some(CidOutcome::Replayed) => Some(PyString::new(py, "replay").into_any()),
                Some(CidOutcome::BadAuth) => Some(PyString::new(py, "bad_auth").into_any()),
            },
        )
    }

    /// The fast path for one datagram: ``(plaintexts, replayed, bad_auth,
    /// replies)`` if every record is application data of the current read
    /// epoch, else None (hand the datagram to Python; nothing was consumed).
    /// ``replies`` are sealed records answering published CoAP GETs.
    fn open_datagram<'py>(
        &mut self,
        py: Python<'py>,
        session_id: &Bound<'py, PyAny>,
        datagram: &[u8],
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let id = session_id_arg(session_id)?;
        match self.inner.open_datagram(id, datagram) {
            Some(fast) => Ok(Some(fast_result(py, fast)?)),
            None => Ok(None),
        }
    }

    /// A datagram that is one alert record of the current read epoch (a
    /// peer's close_notify) opened in one call: its plaintext, "replay" or
    /// "bad_auth"; None if the datagram is anything else or the session
    /// expects tls12_cid records (nothing was consumed).
    fn open_alert<'py>(
        &mut self,
        py: Python<'py>,
        session_id: &Bound<'py, PyAny>,
        datagram: &[u8],
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let id = session_id_arg(session_id)?;
        Ok(match self.inner.open_alert(id, datagram) {
            None => None,
            Some(RecordOutcome::Opened(p)) => Some(PyBytes::new(py, &p).into_any()),
            Some(RecordOutcome::Replayed) => Some(PyString::new(py, "replay").into_any()),
            Some(RecordOutcome::BadAuth) => Some(PyString::new(py, "bad_auth").into_any()),
        })
    }

    /// :meth:`open_datagram` over ``[(session_id, datagram), ...]`` with the
    /// GIL released for the AEAD work; one result per item, in order.
    fn open_batch<'py>(
        &mut self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let items = extract_batch(batch)?;
        let borrowed = borrow_batch(&items);
        let table = &mut self.inner;
        let results: Vec<Option<FastDatagram>> = py.detach(|| {
            borrowed
                .iter()
                .map(|(id, datagram)| table.open_datagram(*id, datagram))
                .collect()
        });
        let out = PyList::empty(py);
        for result in results {
            match result {
                Some(fast) => out.append(fast_result(py, fast)?)?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }

    /// Seal one record in the session's current write epoch.
    fn seal<'py>(
        &mut self,
        py: Python<'py>,
        session_id: &Bound<'py, PyAny>,
        content_type: &Bound<'py, PyAny>,
        plaintext: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let id = session_id_arg(session_id)?;
        let content_type = uint_arg(content_type, "content_type", 0xFF)? as u8;
        let sealed = self.inner.seal(id, content_type, plaintext)?;
        Ok(PyBytes::new(py, &sealed))
    }

    /// Seal application data for ``[(session_id, plaintext), ...]`` with the
    /// GIL released; None for an item whose session is unknown or exhausted.
    fn seal_batch<'py>(
        &mut self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let items = extract_batch(batch)?;
        let borrowed = borrow_batch(&items);
        let table = &mut self.inner;
        let results: Vec<Option<Vec<u8>>> = py.detach(|| {
            borrowed
                .iter()
                .map(|(id, plaintext)| table.seal(*id, APPLICATION_DATA, plaintext).ok())
                .collect()
        });
        let out = PyList::empty(py);
        for result in results {
            match result {
                Some(record) => out.append(PyBytes::new(py, &record))?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }

    /// The session's record state as bytes for the session store (keys,
    /// epochs, window, address; see session_export.rs), with
    /// ``next_write_sequence`` in place of the live one when given (a
    /// reserved limit); None if the session is unknown. The bytes hold keys:
    /// encrypt them before they leave the process.
    #[pyo3(signature = (session_id, next_write_sequence = None))]
    fn export_session<'py>(
        &self,
        py: Python<'py>,
        session_id: &Bound<'py, PyAny>,
        next_write_sequence: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let id = session_id_arg(session_id)?;
        let seq = match next_write_sequence {
            Some(v) => {
                let seq = uint_arg(v, "next_write_sequence", MAX_SEQUENCE_NUMBER)?;
                check_sequence_number(seq)?;
                Some(seq)
            }
            None => None,
        };
        Ok(self
            .inner
            .export_session(id, seq)
            .map(|bytes| PyBytes::new(py, &bytes)))
    }

    /// Install a session from :meth:`export_session`'s bytes under
    /// ``session_id`` (replacing any) and bind its address, its activity
    /// clock starting at ``now``. Malformed bytes: ConfigurationError.
    fn import_session(
        &mut self,
        session_id: &Bound<'_, PyAny>,
        data: &[u8],
        now: f64,
    ) -> PyResult<()> {
        let id = session_id_arg(session_id)?;
        Ok(self.inner.import_session(id, data, now)?)
    }

    /// Install many sessions from :meth:`export_session`'s bytes in one
    /// call (a restart's 100,000): ``items`` are ``(session_id, data,
    /// next_write_sequence, bind)``; each session gets ``next_write_sequence``
    /// (when not None) in place of the saved one and, with ``bind``, its
    /// address bound unless another session holds it. One outcome per item:
    /// the saved address (a socket address tuple, or None), or a str saying
    /// why it was left out (malformed, address taken, table full).
    fn import_sessions<'py>(
        &mut self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
        now: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut owned: Vec<(u64, Bound<'py, PyBytes>, Option<u64>, bool)> = Vec::new();
        for item in items.try_iter()? {
            let item = item?;
            let bad = || {
                ConfigurationError::new_err(
                    "import_sessions takes (session_id, bytes, next_write_sequence or None, bind) \
                     tuples",
                )
            };
            let tuple = item.cast::<PyTuple>().map_err(|_| bad())?;
            if tuple.len() != 4 {
                return Err(bad());
            }
            let id = session_id_arg(&tuple.get_item(0)?)?;
            let data = tuple
                .get_item(1)?
                .cast_into::<PyBytes>()
                .map_err(|_| bad())?;
            let seq = tuple.get_item(2)?;
            let seq = if seq.is_none() {
                None
            } else {
                Some(uint_arg(&seq, "next_write_sequence", MAX_SEQUENCE_NUMBER)?)
            };
            let bind: bool = tuple.get_item(3)?.extract().map_err(|_| bad())?;
            owned.push((id, data, seq, bind));
        }
        let borrowed: Vec<(u64, &[u8], Option<u64>, bool)> = owned
            .iter()
            .map(|(id, data, seq, bind)| (*id, data.as_bytes(), *seq, *bind))
            .collect();
        let outcomes = self.inner.import_sessions(&borrowed, now);
        let list = PyList::empty(py);
        for outcome in outcomes {
            match outcome {
                Ok(Some(addr)) => list.append(address_tuple(py, &addr)?)?,
                Ok(None) => list.append(py.None())?,
                Err(err) => list.append(err.to_string())?,
            }
        }
        Ok(list)
    }

    fn __repr__(&self) -> String {
        format!(
            "<SessionTable {} of {} sessions>",
            self.inner.len(),
            self.inner.capacity()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.setattr("SessionTable", m.py().get_type::<PySessionTable>())
}
