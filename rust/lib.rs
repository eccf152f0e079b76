//! dtlsfast._core: the DTLS record-layer hot path, assembled into a Python module.
use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_SEQUENCE_NUMBER", (1u64 << 48) - 1)?;
    Ok(())
}
