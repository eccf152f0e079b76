//! dtlsfast._core: the DTLS record-layer hot path, assembled into a Python module.
//!
//! The engine modules (record, cipher, replay, reassembly, hs_codec) are plain Rust and
//! tested with `cargo test`; the `*bindings` modules are the thin PyO3 layer over them.
use pyo3::prelude::*;

pub mod batch_io;
pub mod cipher;
pub mod coap_answer;
pub mod errors;
pub mod hs_codec;
pub mod reassembly;
pub mod record;
pub mod replay;
pub mod session_table;

mod bindings;
mod hs_codec_bindings;
mod io_bindings;
mod table_bindings;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    bindings::register(m)?;
    table_bindings::register(m)?;
    hs_codec_bindings::register(m)?;
    io_bindings::register(m)
}
