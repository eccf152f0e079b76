//! The Python face of the handshake codecs (hs_codec): one call per message.
//! Decoders take a message body and return plain values (ints, bytes,
//! tuples) or, for the two hellos, a frozen object whose attributes are
//! already Python values; encoders return the whole message, 12-byte header
//! included. `_core.pyi` declares them; `dtlsfast.pure.hs_codec` is the twin.
//!
//! Errors: `decode_error` cases raise DecodeError, `illegal_parameter` ones
//! IllegalParameterError (a DecodeError subclass); both carry the alert as
//! the class attribute `alert`. A value the wire cannot carry raises
//! LocalProtocolError, as the Python codecs do.

use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList, PyTuple};

use crate::hs_codec::{
    self as codec, CodecError, EcdhParams, ErrorKind, HandshakeHeader, Message, U16List,
};

pyo3::import_exception!(dtlsfast.exceptions, DecodeError);
pyo3::import_exception!(dtlsfast.exceptions, IllegalParameterError);
pyo3::import_exception!(dtlsfast.exceptions, LocalProtocolError);

impl From<CodecError> for PyErr {
    fn from(err: CodecError) -> PyErr {
        let message = err.to_string();
        match err.kind() {
            ErrorKind::DecodeError => DecodeError::new_err(message),
            ErrorKind::IllegalParameter => IllegalParameterError::new_err(message),
            ErrorKind::Unencodable => LocalProtocolError::new_err(message),
        }
    }
}

/// An integer field to encode: LocalProtocolError (as the Python codecs
/// raise) for a bool, a negative number or one past `max`.
fn field(value: &Bound<'_, PyAny>, name: &str, max: u64) -> PyResult<u64> {
    let out_of_range = || {
        LocalProtocolError::new_err(format!(
            "{name} {} does not fit (0..={max})",
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    };
    if value.is_instance_of::<PyBool>() {
        return Err(out_of_range());
    }
    match value.extract::<u64>() {
        Ok(v) if v <= max => Ok(v),
        Ok(_) => Err(out_of_range()),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => Err(out_of_range()),
        Err(e) => Err(e),
    }
}

fn u8_field(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u8> {
    Ok(u8::try_from(field(value, name, 0xFF)?).unwrap_or(u8::MAX))
}

pub(crate) fn u16_field(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u16> {
    Ok(u16::try_from(field(value, name, 0xFFFF)?).unwrap_or(u16::MAX))
}

fn opt_u8_field(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<u8>> {
    value.map(|v| u8_field(v, name)).transpose()
}

fn u16_fields(values: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u16>> {
    values.try_iter()?.map(|v| u16_field(&v?, name)).collect()
}

/// A sequence of bytes objects, kept alive while their contents are borrowed.
fn bytes_items<'py>(values: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    values
        .try_iter()?
        .map(|v| Ok(v?.cast_into::<PyBytes>()?))
        .collect()
}

/// `(type, data)` pairs of raw extensions.
fn raw_extensions<'py>(values: &Bound<'py, PyAny>) -> PyResult<Vec<(u16, Bound<'py, PyBytes>)>> {
    values
        .try_iter()?
        .map(|item| {
            let (ext_type, data): (Bound<'py, PyAny>, Bound<'py, PyBytes>) = item?.extract()?;
            Ok((u16_field(&ext_type, "extension type")?, data))
        })
        .collect()
}

fn borrowed<'a>(items: &'a [(u16, Bound<'_, PyBytes>)]) -> Vec<(u16, &'a [u8])> {
    items.iter().map(|(t, d)| (*t, d.as_bytes())).collect()
}

fn message_bytes<'py>(
    py: Python<'py>,
    encoded: codec::CodecResult<Vec<u8>>,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &encoded?))
}

fn u16_tuple<'py>(py: Python<'py>, list: U16List<'_>) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, list.iter())
}

fn opt_bytes(py: Python<'_>, data: Option<&[u8]>) -> Option<Py<PyBytes>> {
    data.map(|d| PyBytes::new(py, d).unbind())
}

fn others_tuple(py: Python<'_>, others: &[(u16, &[u8])]) -> PyResult<Py<PyTuple>> {
    Ok(PyTuple::new(py, others.iter().map(|(t, d)| (*t, PyBytes::new(py, d))))?.unbind())
}

fn header_tuple(h: &HandshakeHeader) -> (u8, u32, u16, u32, u32) {
    (
        h.msg_type,
        h.length,
        h.message_seq,
        h.fragment_offset,
        h.fragment_length,
    )
}

// ------------------------------------------------------------ header

/// ``(msg_type, length, message_seq, fragment_offset, fragment_length)`` of
/// the 12-byte header at the start of ``data`` (RFC 6347 §4.2.2).
#[pyfunction]
fn parse_handshake_header(data: &[u8]) -> PyResult<(u8, u32, u16, u32, u32)> {
    Ok(header_tuple(&HandshakeHeader::parse(data)?))
}

/// The handshake fragments of a record's payload (RFC 6347 §4.2.3).
#[pyfunction]
fn parse_handshake_fragments<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let pieces = codec::parse_fragments(payload)?;
    PyList::new(
        py,
        pieces.iter().map(|f| {
            let h = f.header;
            (
                h.msg_type,
                h.length,
                h.message_seq,
                h.fragment_offset,
                h.fragment_length,
                PyBytes::new(py, f.bytes),
            )
        }),
    )
}

/// A whole, unfragmented handshake message: header then ``body``.
#[pyfunction]
fn encode_handshake<'py>(
    py: Python<'py>,
    msg_type: &Bound<'py, PyAny>,
    message_seq: &Bound<'py, PyAny>,
    body: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let msg_type = u8_field(msg_type, "msg_type")?;
    let seq = u16_field(message_seq, "message_seq")?;
    message_bytes(
        py,
        codec::encode_handshake(msg_type, seq, body, Message::HandshakeHeader),
    )
}

// ------------------------------------------------------------ hellos

/// A decoded ClientHello: its fields, and the extensions a server reads.
#[pyclass(frozen, get_all, module = "dtlsfast._core", name = "ParsedClientHello")]
pub struct PyParsedClientHello {
    client_version: u16,
    random: Py<PyBytes>,
    session_id: Py<PyBytes>,
    cookie: Py<PyBytes>,
    cipher_suites: Py<PyTuple>,
    compression_methods: Py<PyBytes>,
    supported_groups: Option<Py<PyTuple>>,
    ec_point_formats: Option<Py<PyBytes>>,
    signature_algorithms: Option<Py<PyTuple>>,
    renegotiation_info: Option<Py<PyBytes>>,
    extended_master_secret: bool,
    record_size_limit: Option<u16>,
    connection_id: Option<Py<PyBytes>>,
    client_certificate_types: Option<Py<PyBytes>>,
    server_certificate_types: Option<Py<PyBytes>>,
    session_ticket: Option<Py<PyBytes>>,
    server_name: bool,
    other_extensions: Py<PyTuple>,
}

#[pymethods]
impl PyParsedClientHello {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<ParsedClientHello version={:#06x} cookie={} bytes>",
            self.client_version,
            self.cookie.bind(py).as_bytes().len()
        )
    }
}

/// Decode a ClientHello body (RFC 5246 §7.4.1.2, RFC 6347 §4.2.1).
#[pyfunction]
fn decode_client_hello(py: Python<'_>, body: &[u8]) -> PyResult<PyParsedClientHello> {
    let h = codec::ClientHello::decode(body)?;
    let e = &h.extensions;
    Ok(PyParsedClientHello {
        client_version: h.client_version,
        random: PyBytes::new(py, h.random).unbind(),
        session_id: PyBytes::new(py, h.session_id).unbind(),
        cookie: PyBytes::new(py, h.cookie).unbind(),
        cipher_suites: u16_tuple(py, h.cipher_suites)?.unbind(),
        compression_methods: PyBytes::new(py, h.compression_methods).unbind(),
        supported_groups: e
            .supported_groups
            .map(|l| u16_tuple(py, l).map(Bound::unbind))
            .transpose()?,
        ec_point_formats: opt_bytes(py, e.ec_point_formats),
        signature_algorithms: e
            .signature_algorithms
            .map(|l| u16_tuple(py, l).map(Bound::unbind))
            .transpose()?,
        renegotiation_info: opt_bytes(py, e.renegotiation_info),
        extended_master_secret: e.extended_master_secret,
        record_size_limit: e.record_size_limit,
        connection_id: opt_bytes(py, e.connection_id),
        client_certificate_types: opt_bytes(py, e.client_certificate_types),
        server_certificate_types: opt_bytes(py, e.server_certificate_types),
        session_ticket: opt_bytes(py, e.session_ticket),
        server_name: e.server_name,
        other_extensions: others_tuple(py, &e.others)?,
    })
}

/// ``(cookie, cookie_input)`` of a ClientHello body, checked exactly as
/// :func:`decode_client_hello` checks it: what the cookie gate needs.
#[pyfunction]
fn client_hello_cookie<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let h = codec::ClientHello::decode(body)?;
    Ok((
        PyBytes::new(py, h.cookie),
        PyBytes::new(py, &h.cookie_input()),
    ))
}

/// A decoded ServerHello: its fields and the extensions a client reads.
#[pyclass(frozen, get_all, module = "dtlsfast._core", name = "ParsedServerHello")]
pub struct PyParsedServerHello {
    server_version: u16,
    random: Py<PyBytes>,
    session_id: Py<PyBytes>,
    cipher_suite: u16,
    compression_method: u8,
    renegotiation_info: Option<Py<PyBytes>>,
    extended_master_secret: bool,
    record_size_limit: Option<u16>,
    connection_id: Option<Py<PyBytes>>,
    ec_point_formats: Option<Py<PyBytes>>,
    server_certificate_type: Option<u8>,
    client_certificate_type: Option<u8>,
    session_ticket: Option<Py<PyBytes>>,
    server_name: bool,
    other_extensions: Py<PyTuple>,
}

#[pymethods]
impl PyParsedServerHello {
    fn __repr__(&self) -> String {
        format!(
            "<ParsedServerHello version={:#06x} cipher_suite={:#06x}>",
            self.server_version, self.cipher_suite
        )
    }
}

/// Decode a ServerHello body (RFC 5246 §7.4.1.3).
#[pyfunction]
fn decode_server_hello(py: Python<'_>, body: &[u8]) -> PyResult<PyParsedServerHello> {
    let h = codec::ServerHello::decode(body)?;
    let e = &h.extensions;
    Ok(PyParsedServerHello {
        server_version: h.server_version,
        random: PyBytes::new(py, h.random).unbind(),
        session_id: PyBytes::new(py, h.session_id).unbind(),
        cipher_suite: h.cipher_suite,
        compression_method: h.compression_method,
        renegotiation_info: opt_bytes(py, e.renegotiation_info),
        extended_master_secret: e.extended_master_secret,
        record_size_limit: e.record_size_limit,
        connection_id: opt_bytes(py, e.connection_id),
        ec_point_formats: opt_bytes(py, e.ec_point_formats),
        server_certificate_type: h.server_certificate_type(),
        client_certificate_type: h.client_certificate_type(),
        session_ticket: opt_bytes(py, e.session_ticket),
        server_name: e.server_name,
        other_extensions: others_tuple(py, &e.others)?,
    })
}

/// ``(server_version, cookie)`` of a HelloVerifyRequest body (RFC 6347 §4.2.1).
#[pyfunction]
fn decode_hello_verify_request<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<(u16, Bound<'py, PyBytes>)> {
    let (version, cookie) = codec::decode_hello_verify_request(body)?;
    Ok((version, PyBytes::new(py, cookie)))
}

/// A whole ClientHello; ``extensions`` are ``(type, data)`` pairs sent as given.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn encode_client_hello<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    client_version: &Bound<'py, PyAny>,
    random: &[u8],
    session_id: &[u8],
    cookie: &[u8],
    cipher_suites: &Bound<'py, PyAny>,
    compression_methods: &[u8],
    extensions: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    let suites = u16_fields(cipher_suites, "cipher suite")?;
    let raw = raw_extensions(extensions)?;
    let extensions = borrowed(&raw);
    let fields = codec::ClientHelloFields {
        client_version: u16_field(client_version, "client_version")?,
        random,
        session_id,
        cookie,
        cipher_suites: &suites,
        compression_methods,
        extensions: &extensions,
    };
    message_bytes(py, codec::encode_client_hello(seq, &fields))
}

/// A whole ServerHello with its extensions, in one call.
#[pyfunction]
#[pyo3(signature = (
    message_seq, server_version, random, session_id, cipher_suite, *,
    renegotiation_info = None, extended_master_secret = false, record_size_limit = None,
    ec_point_formats = None, server_certificate_type = None, client_certificate_type = None,
    connection_id = None, session_ticket = false, extensions = None,
))]
#[allow(clippy::too_many_arguments)]
fn encode_server_hello<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    server_version: &Bound<'py, PyAny>,
    random: &[u8],
    session_id: &[u8],
    cipher_suite: &Bound<'py, PyAny>,
    renegotiation_info: Option<&[u8]>,
    extended_master_secret: bool,
    record_size_limit: Option<&Bound<'py, PyAny>>,
    ec_point_formats: Option<&[u8]>,
    server_certificate_type: Option<&Bound<'py, PyAny>>,
    client_certificate_type: Option<&Bound<'py, PyAny>>,
    connection_id: Option<&[u8]>,
    session_ticket: bool,
    extensions: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    let raw = match extensions {
        Some(e) => raw_extensions(e)?,
        None => Vec::new(),
    };
    let extensions = borrowed(&raw);
    let fields = codec::ServerHelloFields {
        server_version: u16_field(server_version, "server_version")?,
        random,
        session_id,
        cipher_suite: u16_field(cipher_suite, "cipher_suite")?,
        // dtlsfast never compresses (RFC 7457 §2.6, CRIME): always null.
        compression_method: 0,
        renegotiation_info,
        extended_master_secret,
        record_size_limit: record_size_limit
            .map(|v| u16_field(v, "record_size_limit"))
            .transpose()?,
        ec_point_formats,
        server_certificate_type: opt_u8_field(server_certificate_type, "server_certificate_type")?,
        client_certificate_type: opt_u8_field(client_certificate_type, "client_certificate_type")?,
        connection_id,
        session_ticket,
        extensions: &extensions,
    };
    message_bytes(py, codec::encode_server_hello(seq, &fields))
}

/// A whole HelloVerifyRequest (RFC 6347 §4.2.1).
#[pyfunction]
fn encode_hello_verify_request<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    server_version: &Bound<'py, PyAny>,
    cookie: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    let version = u16_field(server_version, "server_version")?;
    message_bytes(py, codec::encode_hello_verify_request(seq, version, cookie))
}

// ------------------------------------------------------ key exchange

/// The psk_identity_hint of a PSK ServerKeyExchange body (RFC 4279 §2).
#[pyfunction]
fn decode_server_key_exchange_psk<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(
        py,
        codec::decode_server_key_exchange_psk(body)?,
    ))
}

/// ``(identity_hint, group, public)`` of an ECDHE_PSK ServerKeyExchange (RFC 5489 §2).
#[pyfunction]
fn decode_server_key_exchange_ecdhe_psk<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, u16, Bound<'py, PyBytes>)> {
    let (hint, params) = codec::decode_server_key_exchange_ecdhe_psk(body)?;
    Ok((
        PyBytes::new(py, hint),
        params.group,
        PyBytes::new(py, params.public),
    ))
}

/// ``(group, public, scheme, signature)`` of an ECDHE_ECDSA ServerKeyExchange (RFC 8422 §5.4).
#[pyfunction]
fn decode_server_key_exchange_ecdhe<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<(u16, Bound<'py, PyBytes>, u16, Bound<'py, PyBytes>)> {
    let (params, scheme, signature) = codec::decode_server_key_exchange_ecdhe(body)?;
    Ok((
        params.group,
        PyBytes::new(py, params.public),
        scheme,
        PyBytes::new(py, signature),
    ))
}

/// The psk_identity of a PSK ClientKeyExchange body (RFC 4279 §2).
#[pyfunction]
fn decode_client_key_exchange_psk<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(
        py,
        codec::decode_client_key_exchange_psk(body)?,
    ))
}

/// ``(identity, public)`` of an ECDHE_PSK ClientKeyExchange (RFC 5489 §2).
#[pyfunction]
fn decode_client_key_exchange_ecdhe_psk<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (identity, public) = codec::decode_client_key_exchange_ecdhe_psk(body)?;
    Ok((PyBytes::new(py, identity), PyBytes::new(py, public)))
}

/// The client's ECPoint of an ECDHE_ECDSA ClientKeyExchange (RFC 8422 §5.7).
#[pyfunction]
fn decode_client_key_exchange_ecdhe<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(
        py,
        codec::decode_client_key_exchange_ecdhe(body)?,
    ))
}

fn params<'a>(group: &Bound<'_, PyAny>, public: &'a [u8]) -> PyResult<EcdhParams<'a>> {
    Ok(EcdhParams {
        group: u16_field(group, "group")?,
        public,
    })
}

#[pyfunction]
fn encode_server_key_exchange_psk<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    identity_hint: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    message_bytes(
        py,
        codec::encode_server_key_exchange_psk(seq, identity_hint),
    )
}

#[pyfunction]
fn encode_server_key_exchange_ecdhe_psk<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    identity_hint: &[u8],
    group: &Bound<'py, PyAny>,
    public: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    let params = params(group, public)?;
    message_bytes(
        py,
        codec::encode_server_key_exchange_ecdhe_psk(seq, identity_hint, &params),
    )
}

#[pyfunction]
fn encode_server_key_exchange_ecdhe<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    group: &Bound<'py, PyAny>,
    public: &[u8],
    scheme: &Bound<'py, PyAny>,
    signature: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    let params = params(group, public)?;
    let scheme = u16_field(scheme, "signature algorithm")?;
    message_bytes(
        py,
        codec::encode_server_key_exchange_ecdhe(seq, &params, scheme, signature),
    )
}

/// client_random + server_random + ServerECDHParams: what an ECDHE_ECDSA
/// ServerKeyExchange signs (RFC 8422 §5.4).
#[pyfunction]
fn ecdhe_signed_params<'py>(
    py: Python<'py>,
    client_random: &[u8],
    server_random: &[u8],
    group: &Bound<'py, PyAny>,
    public: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let params = params(group, public)?;
    message_bytes(
        py,
        codec::ecdhe_signed_params(client_random, server_random, &params),
    )
}

#[pyfunction]
fn encode_client_key_exchange_psk<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    identity: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    message_bytes(py, codec::encode_client_key_exchange_psk(seq, identity))
}

#[pyfunction]
fn encode_client_key_exchange_ecdhe_psk<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    identity: &[u8],
    public: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    message_bytes(
        py,
        codec::encode_client_key_exchange_ecdhe_psk(seq, identity, public),
    )
}

#[pyfunction]
fn encode_client_key_exchange_ecdhe<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    public: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    message_bytes(py, codec::encode_client_key_exchange_ecdhe(seq, public))
}

// ------------------------------------------------------ certificates

/// The DER certificates of a Certificate body, leaf first (RFC 5246 §7.4.2).
#[pyfunction]
fn decode_certificate<'py>(py: Python<'py>, body: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let chain = codec::decode_certificate(body)?;
    PyTuple::new(py, chain.iter().map(|der| PyBytes::new(py, der)))
}

/// The SubjectPublicKeyInfo of a raw public key Certificate body (RFC 7250 §3).
#[pyfunction]
fn decode_raw_public_key_certificate<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(
        py,
        codec::decode_raw_public_key_certificate(body)?,
    ))
}

/// ``(certificate_types, signature_algorithms, authorities)`` of a
/// CertificateRequest body (RFC 5246 §7.4.4).
#[pyfunction]
fn decode_certificate_request<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<(
    Bound<'py, PyBytes>,
    Bound<'py, PyTuple>,
    Bound<'py, PyTuple>,
)> {
    let r = codec::decode_certificate_request(body)?;
    Ok((
        PyBytes::new(py, r.certificate_types),
        u16_tuple(py, r.signature_algorithms)?,
        PyTuple::new(py, r.authorities.iter().map(|n| PyBytes::new(py, n)))?,
    ))
}

/// ``(scheme, signature)`` of a CertificateVerify body (RFC 5246 §7.4.8).
#[pyfunction]
fn decode_certificate_verify<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<(u16, Bound<'py, PyBytes>)> {
    let (scheme, signature) = codec::decode_certificate_verify(body)?;
    Ok((scheme, PyBytes::new(py, signature)))
}

/// Check a ServerHelloDone body is empty (RFC 5246 §7.4.5).
#[pyfunction]
fn decode_server_hello_done(body: &[u8]) -> PyResult<()> {
    Ok(codec::decode_server_hello_done(body)?)
}

#[pyfunction]
fn encode_certificate<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    chain: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    let items = bytes_items(chain)?;
    let chain: Vec<&[u8]> = items.iter().map(|b| b.as_bytes()).collect();
    message_bytes(py, codec::encode_certificate(seq, &chain))
}

#[pyfunction]
fn encode_raw_public_key_certificate<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    spki: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    message_bytes(py, codec::encode_raw_public_key_certificate(seq, spki))
}

#[pyfunction]
fn encode_certificate_request<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    certificate_types: &[u8],
    signature_algorithms: &Bound<'py, PyAny>,
    authorities: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    let schemes = u16_fields(signature_algorithms, "signature algorithm")?;
    let items = bytes_items(authorities)?;
    let names: Vec<&[u8]> = items.iter().map(|b| b.as_bytes()).collect();
    message_bytes(
        py,
        codec::encode_certificate_request(seq, certificate_types, &schemes, &names),
    )
}

#[pyfunction]
fn encode_certificate_verify<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
    scheme: &Bound<'py, PyAny>,
    signature: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    let scheme = u16_field(scheme, "signature algorithm")?;
    message_bytes(py, codec::encode_certificate_verify(seq, scheme, signature))
}

#[pyfunction]
fn encode_server_hello_done<'py>(
    py: Python<'py>,
    message_seq: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let seq = u16_field(message_seq, "message_seq")?;
    message_bytes(py, codec::encode_server_hello_done(seq))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // setattr, as bindings.rs does: no module __all__.
    let py = m.py();
    m.setattr("ParsedClientHello", py.get_type::<PyParsedClientHello>())?;
    m.setattr("ParsedServerHello", py.get_type::<PyParsedServerHello>())?;
    macro_rules! functions {
        ($($f:ident),* $(,)?) => {
            $( m.setattr(stringify!($f), wrap_pyfunction!($f, m)?)?; )*
        };
    }
    functions!(
        parse_handshake_header,
        parse_handshake_fragments,
        encode_handshake,
        decode_client_hello,
        client_hello_cookie,
        decode_server_hello,
        decode_hello_verify_request,
        encode_client_hello,
        encode_server_hello,
        encode_hello_verify_request,
        decode_server_key_exchange_psk,
        decode_server_key_exchange_ecdhe_psk,
        decode_server_key_exchange_ecdhe,
        decode_client_key_exchange_psk,
        decode_client_key_exchange_ecdhe_psk,
        decode_client_key_exchange_ecdhe,
        encode_server_key_exchange_psk,
        encode_server_key_exchange_ecdhe_psk,
        encode_server_key_exchange_ecdhe,
        ecdhe_signed_params,
        encode_client_key_exchange_psk,
        encode_client_key_exchange_ecdhe_psk,
        encode_client_key_exchange_ecdhe,
        decode_certificate,
        decode_raw_public_key_certificate,
        decode_certificate_request,
        decode_certificate_verify,
        decode_server_hello_done,
        encode_certificate,
        encode_raw_public_key_certificate,
        encode_certificate_request,
        encode_certificate_verify,
        encode_server_hello_done,
    );
    Ok(())
}
