//! dtlsfast._core: the DTLS record-layer hot path, assembled into a Python module.
//!
//! The engine modules (record, cipher, replay, reassembly; the handshake's
//! hs_codec, prf, cookie, hello_gate, transcript and flight) are plain Rust and
//! tested with `cargo test`; the `*bindings` modules are the thin PyO3 layer over them.
use pyo3::prelude::*;

pub mod batch_io;
pub mod cipher;
pub mod client_table;
pub mod coap_answer;
pub mod cookie;
pub mod errors;
pub mod flight;
pub mod hello_gate;
pub mod hs_codec;
pub mod prf;
pub mod reassembly;
pub mod reassembly_budget;
pub mod record;
pub mod replay;
pub mod session_export;
pub mod session_table;
pub mod source_mute;
pub mod transcript;

#[cfg(test)]
mod test_support;

mod bindings;
mod client_bindings;
mod handshake_crypto_bindings;
mod hs_codec_bindings;
mod io_bindings;
mod table_bindings;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    bindings::register(m)?;
    table_bindings::register(m)?;
    hs_codec_bindings::register(m)?;
    client_bindings::register(m)?;
    handshake_crypto_bindings::register(m)?;
    io_bindings::register(m)
}
