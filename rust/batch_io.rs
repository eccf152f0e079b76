//! Batched datagram I/O for the server's fast path: recvmmsg(2) and
//! sendmmsg(2) on Linux, so that one system call (and one trip through the
//! Python event loop) moves a whole batch of datagrams. Elsewhere
//! [`BatchSocket::new`] fails and Python keeps asyncio's per-datagram path.
//!
//! The socket is non-blocking and owned by Python; this module only borrows
//! its file descriptor. ClientHellos from sources the server muted
//! ([`crate::source_mute`]) are dropped as they are read, and counted. Buffers are allocated once per `BatchSocket` and
//! reused, so a receive costs no allocation beyond the datagrams it returns.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::source_mute::MutedSources;

/// Sources muted at once, at most.
pub const MAX_MUTED: usize = 4096;

/// One received datagram: its bytes and its source address.
pub type Datagram = (Vec<u8>, SocketAddr);

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use crate::source_mute::is_client_hello;
    use std::mem::{size_of, zeroed};
    use std::os::fd::RawFd;

    /// Receive and send buffers for up to `batch` datagrams of `buffer_size` bytes.
    pub struct BatchSocket {
        fd: RawFd,
        batch: usize,
        buffer_size: usize,
        buffers: Vec<u8>,
        truncated: u64,
        pub(crate) muted: MutedSources,
        muted_hellos: u64,
    }

    fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: ss_family says the storage holds a sockaddr_in, and
                // sockaddr_storage is large and aligned enough for it.
                let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn write_addr(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
                let sin = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in6) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                sin6.sin6_scope_id = a.scope_id();
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    fn would_block(err: &io::Error) -> bool {
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        )
    }

    impl BatchSocket {
        pub fn new(fd: RawFd, batch: usize, buffer_size: usize) -> io::Result<Self> {
            if !(1..=1024).contains(&batch) || !(64..=65_536).contains(&buffer_size) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "batch must be in 1..=1024 and buffer_size in 64..=65536",
                ));
            }
            let len = batch
                .checked_mul(buffer_size)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffers too large"))?;
            Ok(BatchSocket {
                fd,
                batch,
                buffer_size,
                buffers: vec![0u8; len],
                truncated: 0,
                muted: MutedSources::new(MAX_MUTED),
                muted_hellos: 0,
            })
        }

        pub fn truncated(&self) -> u64 {
            self.truncated
        }

        /// ClientHellos dropped on arrival because their source was muted.
        pub fn muted_hellos(&self) -> u64 {
            self.muted_hellos
        }

        /// Up to `batch` datagrams waiting on the socket; empty if none.
        /// Datagrams longer than `buffer_size` are dropped and counted, and
        /// so are ClientHellos from muted sources.
        pub fn recv(&mut self) -> io::Result<Vec<Datagram>> {
            let n = self.batch;
            // SAFETY: all-zero is a valid value of these plain C structs.
            let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; n];
            let mut iovecs: Vec<libc::iovec> = self
                .buffers
                .chunks_exact_mut(self.buffer_size)
                .map(|chunk| libc::iovec {
                    iov_base: chunk.as_mut_ptr().cast(),
                    iov_len: chunk.len(),
                })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = (0..n)
                .map(|i| {
                    // SAFETY: as above.
                    let mut m: libc::mmsghdr = unsafe { zeroed() };
                    m.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                    m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                    m.msg_hdr.msg_iov = &mut iovecs[i];
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            // SAFETY: msgs, iovecs, addrs and the buffers outlive the call and
            // each header points at its own address slot and buffer chunk.
            let got = unsafe {
                libc::recvmmsg(
                    self.fd,
                    msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if got < 0 {
                let err = io::Error::last_os_error();
                return if would_block(&err) {
                    Ok(Vec::new())
                } else {
                    Err(err)
                };
            }
            let mut out = Vec::with_capacity(got as usize);
            let now = (!self.muted.is_empty()).then(std::time::Instant::now);
            for (i, m) in msgs.iter().take(got as usize).enumerate() {
                if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    self.truncated += 1;
                    continue;
                }
                let len = (m.msg_len as usize).min(self.buffer_size);
                let start = i * self.buffer_size;
                let Some(data) = self.buffers.get(start..start + len) else {
                    continue;
                };
                if let Some(addr) = socket_addr(&addrs[i]) {
                    if let Some(now) = now {
                        if is_client_hello(data) && self.muted.is_muted(addr.ip(), now) {
                            self.muted_hellos += 1;
                            continue;
                        }
                    }
                    out.push((data.to_vec(), addr));
                }
            }
            Ok(out)
        }

        /// Send as many of `items` as the socket takes now; returns how many
        /// went (the caller keeps the rest for when the socket is writable).
        pub fn send(&mut self, items: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
            let mut sent = 0;
            while sent < items.len() {
                let chunk = &items[sent..items.len().min(sent + self.batch)];
                // SAFETY: all-zero is a valid value of these plain C structs.
                let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; chunk.len()];
                let lens: Vec<libc::socklen_t> = chunk
                    .iter()
                    .zip(addrs.iter_mut())
                    .map(|((_, addr), storage)| write_addr(addr, storage))
                    .collect();
                let mut iovecs: Vec<libc::iovec> = chunk
                    .iter()
                    .map(|(data, _)| libc::iovec {
                        iov_base: data.as_ptr() as *mut libc::c_void,
                        iov_len: data.len(),
                    })
                    .collect();
                let mut msgs: Vec<libc::mmsghdr> = (0..chunk.len())
                    .map(|i| {
                        // SAFETY: as above.
                        let mut m: libc::mmsghdr = unsafe { zeroed() };
                        m.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                        m.msg_hdr.msg_namelen = lens[i];
                        m.msg_hdr.msg_iov = &mut iovecs[i];
                        m.msg_hdr.msg_iovlen = 1;
                        m
                    })
                    .collect();
                // SAFETY: every pointer refers to memory that outlives the
                // call; sendmmsg only reads the data buffers.
                let got = unsafe {
                    libc::sendmmsg(
                        self.fd,
                        msgs.as_mut_ptr(),
                        chunk.len() as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if got < 0 {
                    let err = io::Error::last_os_error();
                    if would_block(&err) {
                        return Ok(sent);
                    }
                    if sent > 0 {
                        return Ok(sent);
                    }
                    return Err(err);
                }
                if got == 0 {
                    return Ok(sent);
                }
                sent += got as usize;
            }
            Ok(sent)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub struct BatchSocket {
        pub(crate) muted: MutedSources,
    }

    impl BatchSocket {
        pub fn new(_fd: i32, _batch: usize, _buffer_size: usize) -> io::Result<Self> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "recvmmsg/sendmmsg are Linux only",
            ))
        }
        pub fn truncated(&self) -> u64 {
            0
        }
        pub fn muted_hellos(&self) -> u64 {
            0
        }
        pub fn recv(&mut self) -> io::Result<Vec<Datagram>> {
            Ok(Vec::new())
        }
        pub fn send(&mut self, _items: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
            Ok(0)
        }
    }
}

pub use imp::BatchSocket;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_out_and_comes_back_in_one_call_each() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let to = b.local_addr().unwrap();
        let mut out = BatchSocket::new(a.as_raw_fd(), 8, 2048).unwrap();
        let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 10 + i as usize]).collect();
        let items: Vec<(&[u8], SocketAddr)> = payloads.iter().map(|p| (&p[..], to)).collect();
        assert_eq!(out.send(&items).unwrap(), 20);
        let mut inb = BatchSocket::new(b.as_raw_fd(), 8, 2048).unwrap();
        let mut got = Vec::new();
        loop {
            let batch = inb.recv().unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 8);
            got.extend(batch);
        }
        assert_eq!(got.len(), 20);
        for (i, (data, from)) in got.iter().enumerate() {
            assert_eq!(data, &payloads[i]);
            assert_eq!(*from, a.local_addr().unwrap());
        }
    }

    #[test]
    fn oversized_datagrams_are_dropped_and_counted() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        a.send_to(&[1u8; 100], b.local_addr().unwrap()).unwrap();
        a.send_to(&[2u8; 10], b.local_addr().unwrap()).unwrap();
        let mut inb = BatchSocket::new(b.as_raw_fd(), 4, 64).unwrap();
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(inb.recv().unwrap());
            if got.len() + inb.truncated() as usize >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(inb.truncated(), 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, vec![2u8; 10]);
    }

    #[test]
    fn hellos_from_a_muted_source_are_dropped_and_counted() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let mut hello = vec![0u8; 40];
        hello[0] = 22;
        hello[13] = 1;
        let record = vec![23u8; 40];
        let mut inb = BatchSocket::new(b.as_raw_fd(), 8, 2048).unwrap();
        let now = std::time::Instant::now();
        let source = a.local_addr().unwrap().ip();
        assert!(inb
            .muted
            .mute(source, 32, std::time::Duration::from_secs(60), now));
        for _ in 0..3 {
            a.send_to(&hello, b.local_addr().unwrap()).unwrap();
            a.send_to(&record, b.local_addr().unwrap()).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(inb.recv().unwrap());
            if got.len() + inb.muted_hellos() as usize >= 6 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(inb.muted_hellos(), 3);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(data, _)| data == &record));
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(BatchSocket::new(0, 0, 2048).is_err());
        assert!(BatchSocket::new(0, 8, 10).is_err());
    }
}
