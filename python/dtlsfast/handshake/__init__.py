"""DTLS 1.2 handshake building blocks: constants, cipher suites, the PRF and key
schedule, message codecs, extensions, stateless cookies and the transcript.

The client and server state machines that use these live in
:mod:`dtlsfast.connection`. References: RFC 6347 (DTLS 1.2), RFC 5246 (TLS 1.2),
RFC 4279 (PSK), RFC 7627 (extended master secret), RFC 5746, RFC 8449, RFC 6066.
"""
