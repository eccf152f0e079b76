//! The Python face of client_table.rs: `ClientTable`, the load generator's
//! steady state. Batch work (polling the sockets, the timers' scan, starting
//! the load) runs with the GIL released; every method that may produce
//! records sends those of sessions with a socket itself and returns the rest
//! as `[(index, record), ...]` (sessions added with fd -1, for tests).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::bindings::{uint_arg, PyRecordCipher, PyReplayWindow};
use crate::client_table::{ClientSession, ClientTable as CoreTable, Outgoing, RequestPlan};
use crate::record::MAX_SEQUENCE_NUMBER;

#[pyclass(module = "dtlsfast._core", name = "ClientTable")]
pub struct PyClientTable {
    inner: CoreTable,
}

fn index_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    Ok(uint_arg(value, "index", u32::MAX as u64)? as usize)
}

fn token_arg(value: &Bound<'_, PyAny>) -> PyResult<u32> {
    Ok(uint_arg(value, "token", u32::MAX as u64)? as u32)
}

fn unsent<'py>(py: Python<'py>, out: &Outgoing) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (index, record) in out {
        list.append((*index, PyBytes::new(py, record)))?;
    }
    Ok(list)
}

impl PyClientTable {
    /// Send what belongs to sessions with sockets (the GIL released); the rest back to Python.
    fn finish<'py>(&mut self, py: Python<'py>, mut out: Outgoing) -> PyResult<Bound<'py, PyList>> {
        let table = &mut self.inner;
        py.detach(|| table.flush(&mut out));
        unsent(py, &out)
    }
}

#[pymethods]
impl PyClientTable {
    /// Every session sends the CON request ``code`` with token and message
    /// ID of its own and ``tail`` (options, payload marker, payload) after
    /// them. Timers: RFC 7252 §4.8's ACK_TIMEOUT and ACK_RANDOM_FACTOR for the
    /// first retransmission deadline; ``request_timeout`` for the oldest age.
    #[new]
    #[pyo3(signature = (code, tail, *, ack_timeout = 2.0, random_factor = 1.5, request_timeout = 10.0, seed = 0))]
    fn new(
        code: &Bound<'_, PyAny>,
        tail: &[u8],
        ack_timeout: f64,
        random_factor: f64,
        request_timeout: f64,
        seed: u64,
    ) -> PyResult<Self> {
        let plan = RequestPlan {
            code: uint_arg(code, "code", 0xFF)? as u8,
            tail: tail.to_vec(),
            ack_timeout,
            random_factor,
            request_timeout,
        };
        Ok(PyClientTable {
            inner: CoreTable::new(plan, seed)?,
        })
    }

    /// Take over an established session: copies of its current ciphers and
    /// window, its next write sequence number, the message ID and token its
    /// requests count up from, and its connected non-blocking socket ``fd``
    /// (the caller keeps it open; -1: the caller moves the datagrams).
    /// Returns its index.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (fd, read_cipher, read_epoch, window, write_cipher, write_epoch, next_write_sequence, version = 0xFEFD, mid = 0, token = 0))]
    fn add(
        &mut self,
        fd: i32,
        read_cipher: PyRef<'_, PyRecordCipher>,
        read_epoch: &Bound<'_, PyAny>,
        window: PyRef<'_, PyReplayWindow>,
        write_cipher: PyRef<'_, PyRecordCipher>,
        write_epoch: &Bound<'_, PyAny>,
        next_write_sequence: &Bound<'_, PyAny>,
        version: u64,
        mid: u64,
        token: u64,
    ) -> PyResult<usize> {
        let bad = |name: &str, max: u64| {
            crate::bindings::ConfigurationError::new_err(format!("{name} must be in 0..={max}"))
        };
        let version = u16::try_from(version).map_err(|_| bad("version", 0xFFFF))?;
        let mid = u16::try_from(mid).map_err(|_| bad("mid", 0xFFFF))?;
        let token = u32::try_from(token).map_err(|_| bad("token", u32::MAX as u64))?;
        let session = ClientSession {
            fd,
            read: read_cipher.inner.clone(),
            read_epoch: uint_arg(read_epoch, "read_epoch", 0xFFFF)? as u16,
            window: window.inner.clone(),
            write: write_cipher.inner.clone(),
            write_epoch: uint_arg(write_epoch, "write_epoch", 0xFFFF)? as u16,
            next_write_sequence: uint_arg(
                next_write_sequence,
                "next_write_sequence",
                MAX_SEQUENCE_NUMBER,
            )?,
            version,
            mid,
            token,
            pending: Vec::new(),
            deferred: 0,
            dead: false,
        };
        Ok(self.inner.add(session)?)
    }

    /// The epoll descriptor over the sessions' sockets (readable when one
    /// is), for the event loop's ``add_reader``; -1 off Linux.
    fn fileno(&self) -> i32 {
        self.inner.fileno()
    }

    /// Start the load: ``window`` requests on every session.
    fn begin<'py>(
        &mut self,
        py: Python<'py>,
        window: usize,
        now: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut out = Outgoing::new();
        self.inner.begin(window, now, &mut out)?;
        self.finish(py, out)
    }

    /// End the load; returns the requests still in flight.
    fn end(&mut self) -> usize {
        self.inner.end()
    }

    /// Whether the load runs (between :meth:`begin` and :meth:`end`).
    #[getter]
    fn running(&self) -> bool {
        self.inner.running()
    }

    /// One datagram of session ``index`` (for sessions without a socket):
    /// ``(taken, unsent)``; not taken means it is not application data of
    /// the current epoch, and the connection must see it.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
        datagram: &[u8],
        now: f64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let index = index_arg(index)?;
        let mut out = Outgoing::new();
        let taken = self.inner.feed(index, datagram, now, &mut out);
        let rest = self.finish(py, out)?;
        PyTuple::new(
            py,
            [
                taken.into_pyobject(py)?.to_owned().into_any(),
                rest.into_any(),
            ],
        )
    }

    /// Serve the sockets that are readable now, up to ``rounds`` epoll
    /// rounds, the GIL released; returns the datagrams the connections must
    /// see as ``[(index, datagram), ...]``.
    #[pyo3(signature = (rounds = 8))]
    fn poll<'py>(&mut self, py: Python<'py>, rounds: usize) -> PyResult<Bound<'py, PyList>> {
        let table = &mut self.inner;
        let polled = py.detach(|| table.poll(rounds));
        let list = PyList::empty(py);
        for (index, data) in &polled.to_python {
            list.append((*index, PyBytes::new(py, data)))?;
        }
        Ok(list)
    }

    /// Send the replacements that ICMP errors deferred and list the requests
    /// due for a verdict: ``(due, unsent)``, each due one ``(index, token,
    /// retransmissions, timeout, first_sent, acked)``.
    fn tick<'py>(&mut self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyTuple>> {
        let table = &mut self.inner;
        let (due, out) = py.detach(|| {
            let mut out = Outgoing::new();
            let due = table.tick(now, &mut out);
            table.flush(&mut out);
            (due, out)
        });
        let list = PyList::empty(py);
        for d in &due {
            list.append((
                d.session,
                d.token,
                d.retransmissions,
                d.timeout,
                d.first_sent,
                d.acked,
            ))?;
        }
        PyTuple::new(py, [list.into_any(), unsent(py, &out)?.into_any()])
    }

    /// Send request ``token`` of session ``index`` again, its next deadline
    /// ``timeout`` s from ``now``; the list is the unsent records (False
    /// first if the request is no longer in flight).
    fn retransmit<'py>(
        &mut self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
        token: &Bound<'py, PyAny>,
        timeout: f64,
        now: f64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut out = Outgoing::new();
        let found =
            self.inner
                .retransmit(index_arg(index)?, token_arg(token)?, timeout, now, &mut out)?;
        let rest = self.finish(py, out)?;
        PyTuple::new(
            py,
            [
                found.into_pyobject(py)?.to_owned().into_any(),
                rest.into_any(),
            ],
        )
    }

    /// Give request ``token`` of session ``index`` up (a timeout) and send
    /// its replacement: ``(found, unsent)``.
    fn give_up<'py>(
        &mut self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
        token: &Bound<'py, PyAny>,
        now: f64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut out = Outgoing::new();
        let found = self
            .inner
            .give_up(index_arg(index)?, token_arg(token)?, now, &mut out)?;
        let rest = self.finish(py, out)?;
        PyTuple::new(
            py,
            [
                found.into_pyobject(py)?.to_owned().into_any(),
                rest.into_any(),
            ],
        )
    }

    /// The server closed session ``index``: its requests in flight fail.
    fn lose(&mut self, index: &Bound<'_, PyAny>) -> PyResult<()> {
        Ok(self.inner.lose(index_arg(index)?)?)
    }

    /// An ICMP error for session ``index`` (sessions without a socket).
    fn transport_error(&mut self, index: &Bound<'_, PyAny>) -> PyResult<()> {
        Ok(self.inner.transport_error(index_arg(index)?)?)
    }

    /// The sequence number the session's next record gets (for its
    /// close_notify); None for an unknown index.
    fn next_write_sequence(&self, index: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        Ok(self.inner.next_write_sequence(index_arg(index)?))
    }

    #[getter]
    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    #[getter]
    fn requests(&self) -> u64 {
        self.inner.stats.requests
    }

    #[getter]
    fn errors(&self) -> u64 {
        self.inner.stats.errors()
    }

    #[getter]
    fn retransmissions(&self) -> u64 {
        self.inner.stats.retransmissions
    }

    /// What was measured: the counts, ``latency_sum`` and ``latency_max``
    /// (seconds), ``codes`` ``{code: count}`` and ``buckets`` ``{bucket:
    /// count}`` of the latency histogram (non-zero entries only; without
    /// ``histogram``, the counts alone: a cheap snapshot for progress reports).
    #[pyo3(signature = (histogram = true))]
    fn stats<'py>(&self, py: Python<'py>, histogram: bool) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.inner.stats;
        let out = PyDict::new(py);
        for (name, value) in [
            ("requests", s.requests),
            ("error_responses", s.error_responses),
            ("resets", s.resets),
            ("timeouts", s.timeouts),
            ("transport_errors", s.transport_errors),
            ("retransmissions", s.retransmissions),
            ("sessions_lost", s.sessions_lost),
            ("bad_records", s.bad_records),
            ("truncated", s.truncated),
        ] {
            out.set_item(name, value)?;
        }
        if !histogram {
            return Ok(out);
        }
        out.set_item("latency_sum", s.latency_sum)?;
        out.set_item("latency_max", s.latency_max)?;
        let codes = PyDict::new(py);
        for (code, &n) in s.codes.iter().enumerate().filter(|(_, n)| **n > 0) {
            codes.set_item(code, n)?;
        }
        out.set_item("codes", codes)?;
        let buckets = PyDict::new(py);
        for (bucket, &n) in s.buckets.iter().enumerate().filter(|(_, n)| **n > 0) {
            buckets.set_item(bucket, n)?;
        }
        out.set_item("buckets", buckets)?;
        Ok(out)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("<ClientTable {} sessions>", self.inner.len())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.setattr("ClientTable", m.py().get_type::<PyClientTable>())
}
