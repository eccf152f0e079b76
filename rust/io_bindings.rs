//! The Python face of batch_io.rs: `BatchSocket(fd, batch, buffer_size)`
//! with `recv()` and `send(items)`, the system calls made with the GIL
//! released, and `mute(host, prefix_length, seconds)` (source_mute.rs). Addresses are the `socket` module's tuples: `(host, port)` for
//! IPv4 and `(host, port, flowinfo, scope_id)` for IPv6.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::batch_io::BatchSocket;
use crate::bindings::ConfigurationError;

#[pyclass(module = "dtlsfast._core", name = "BatchSocket")]
pub struct PyBatchSocket {
    pub(crate) inner: BatchSocket,
}

pub(crate) fn address_tuple<'py>(
    py: Python<'py>,
    addr: &SocketAddr,
) -> PyResult<Bound<'py, PyTuple>> {
    match addr {
        SocketAddr::V4(a) => (a.ip().to_string(), a.port()).into_pyobject(py),
        SocketAddr::V6(a) => {
            (a.ip().to_string(), a.port(), a.flowinfo(), a.scope_id()).into_pyobject(py)
        }
    }
}

pub(crate) fn parse_address(addr: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
    let bad = || {
        ConfigurationError::new_err(format!(
            "expected an address tuple (host, port[, flowinfo, scope_id]) with a numeric host, \
             got {addr}"
        ))
    };
    let tuple = addr.cast::<PyTuple>().map_err(|_| bad())?;
    if tuple.len() < 2 {
        return Err(bad());
    }
    let host: String = tuple.get_item(0)?.extract().map_err(|_| bad())?;
    let port: u16 = tuple.get_item(1)?.extract().map_err(|_| bad())?;
    let host = host.split('%').next().unwrap_or_default();
    let ip: IpAddr = host.parse().map_err(|_| bad())?;
    Ok(match ip {
        IpAddr::V4(_) => SocketAddr::new(ip, port),
        IpAddr::V6(v6) => {
            let flowinfo: u32 = match tuple.get_item(2) {
                Ok(v) => v.extract().map_err(|_| bad())?,
                Err(_) => 0,
            };
            let scope_id: u32 = match tuple.get_item(3) {
                Ok(v) => v.extract().map_err(|_| bad())?,
                Err(_) => 0,
            };
            SocketAddr::V6(SocketAddrV6::new(v6, port, flowinfo, scope_id))
        }
    })
}

/// `[(data, address), ...]` from Python: the bytes (borrowed, not copied)
/// and the parsed addresses. Anything else is a ConfigurationError.
pub(crate) fn extract_datagrams<'py>(
    items: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyBytes>, SocketAddr)>> {
    let shape = || ConfigurationError::new_err("items must be (bytes, address) tuples");
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        let pair = item.cast::<PyTuple>().map_err(|_| shape())?;
        if pair.len() != 2 {
            return Err(shape());
        }
        let data = pair
            .get_item(0)?
            .cast_into::<PyBytes>()
            .map_err(|_| shape())?;
        out.push((data, parse_address(&pair.get_item(1)?)?));
    }
    Ok(out)
}

#[pymethods]
impl PyBatchSocket {
    /// Borrow the non-blocking UDP socket `fd` (the caller keeps it open for
    /// this object's lifetime). OSError where recvmmsg/sendmmsg do not exist.
    #[new]
    #[pyo3(signature = (fd, batch = 64, buffer_size = 2048))]
    fn new(fd: i32, batch: usize, buffer_size: usize) -> PyResult<Self> {
        Ok(PyBatchSocket {
            inner: BatchSocket::new(fd, batch, buffer_size)?,
        })
    }

    /// Datagrams dropped because they were longer than `buffer_size`.
    #[getter]
    fn truncated(&self) -> u64 {
        self.inner.truncated()
    }

    /// ClientHellos dropped on arrival because their source was muted.
    #[getter]
    fn muted_hellos(&self) -> u64 {
        self.inner.muted_hellos()
    }

    /// Drop epoch-0 ClientHellos from the network of `host` (`prefix_length`
    /// bits; IPv4 and IPv4-mapped hosts count in IPv4 bits) for `seconds`.
    /// False if the table of muted sources is full.
    fn mute(&mut self, host: &str, prefix_length: u8, seconds: f64) -> PyResult<bool> {
        let ip: IpAddr = host
            .split('%')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| {
                ConfigurationError::new_err(format!("mute needs an IP address, not {host:?}"))
            })?;
        let v4 = match ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
        };
        if prefix_length > if v4 { 32 } else { 128 } {
            return Err(ConfigurationError::new_err(format!(
                "prefix_length {prefix_length} is too long for {host}"
            )));
        }
        if !(0.0..=3600.0).contains(&seconds) {
            return Err(ConfigurationError::new_err(format!(
                "a mute lasts 0 to 3600 seconds, not {seconds}"
            )));
        }
        let duration = Duration::from_secs_f64(seconds);
        Ok(self
            .inner
            .muted
            .mute(ip, prefix_length, duration, Instant::now()))
    }

    /// Up to `batch` waiting datagrams as `(data, address)`; [] if none.
    fn recv<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let inner = &mut self.inner;
        let received = py.detach(|| inner.recv())?;
        let out = PyList::empty(py);
        for (data, addr) in &received {
            out.append((PyBytes::new(py, data), address_tuple(py, addr)?))?;
        }
        Ok(out)
    }

    /// Send `[(data, address), ...]`; returns how many the socket took now.
    fn send(&mut self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<usize> {
        let owned = extract_datagrams(items)?;
        let borrowed: Vec<(&[u8], SocketAddr)> =
            owned.iter().map(|(d, a)| (d.as_bytes(), *a)).collect();
        let inner = &mut self.inner;
        Ok(py.detach(|| inner.send(&borrowed))?)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.setattr("BatchSocket", m.py().get_type::<PyBatchSocket>())
}
