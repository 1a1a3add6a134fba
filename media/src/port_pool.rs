//! RTP port allocation.

use crate::MediaError;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::net::UdpSocket;

/// Hands out RTP sockets on even ports of a range (RFC 3550 §11: RTP on an even port, RTCP on
/// the odd one above it) of one address.
///
/// The pool is a lock-free table of in-use flags walked round-robin, so a port just released
/// is the last to be handed out again and late packets of an ended call rarely reach the next
/// one. A port that another process holds is skipped. Dropping the [`RtpSocket`] closes it
/// and returns the port.
#[derive(Debug, Clone)]
pub struct PortPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    address: IpAddr,
    min: u16,
    max: u16,
    first_port: u16,
    in_use: Box<[AtomicBool]>,
    /// How many of `in_use` are set: read on every new call (the overload check), so kept
    /// rather than counted.
    leased: AtomicUsize,
    cursor: AtomicUsize,
}

impl PortPool {
    /// A pool of the even ports in `min..=max` on `address` (the address advertised in SDP;
    /// binding a wildcard address would make `local_addr` unusable in SDP).
    pub fn new(address: IpAddr, min: u16, max: u16) -> Result<Self, MediaError> {
        let first_port = min
            .checked_add(min % 2)
            .filter(|first| min <= max && *first <= max);
        let Some(first_port) = first_port else {
            return Err(MediaError::InvalidPortRange { min, max });
        };
        let slots = usize::from((max - first_port) / 2) + 1;
        Ok(Self {
            inner: Arc::new(PoolInner {
                address,
                min,
                max,
                first_port,
                in_use: (0..slots).map(|_| AtomicBool::new(false)).collect(),
                leased: AtomicUsize::new(0),
                cursor: AtomicUsize::new(0),
            }),
        })
    }

    /// Binds the next free even port. Must run inside a Tokio runtime.
    pub fn allocate(&self) -> Result<RtpSocket, MediaError> {
        let inner = &self.inner;
        let slots = inner.in_use.len();
        for _ in 0..slots {
            let slot = inner.cursor.fetch_add(1, Ordering::Relaxed) % slots;
            if inner.in_use[slot]
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            inner.leased.fetch_add(1, Ordering::Relaxed);
            let lease = Lease {
                pool: Arc::clone(inner),
                slot,
            };
            let address = SocketAddr::new(inner.address, inner.first_port + 2 * slot as u16);
            match bind(address) {
                Ok((socket, local_addr)) => {
                    return Ok(RtpSocket {
                        socket,
                        local_addr,
                        _lease: Some(lease),
                    });
                }
                // Someone outside the pool holds it; the lease drop frees the slot for later.
                Err(MediaError::Bind { source, .. })
                    if source.kind() == io::ErrorKind::AddrInUse =>
                {
                    continue;
                }
                Err(error) => return Err(error),
            }
        }
        Err(MediaError::PortRangeExhausted {
            address: inner.address,
            min: inner.min,
            max: inner.max,
        })
    }

    /// How many ports are allocated now.
    pub fn in_use(&self) -> usize {
        self.inner.leased.load(Ordering::Relaxed)
    }

    /// How many ports the pool holds in all.
    pub fn capacity(&self) -> usize {
        self.inner.in_use.len()
    }
}

#[derive(Debug)]
struct Lease {
    pool: Arc<PoolInner>,
    slot: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.in_use[self.slot].store(false, Ordering::Release);
        self.pool.leased.fetch_sub(1, Ordering::Relaxed);
    }
}

fn bind(address: SocketAddr) -> Result<(UdpSocket, SocketAddr), MediaError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(MediaError::NoRuntime);
    }
    let error = |source| MediaError::Bind { address, source };
    let socket = std::net::UdpSocket::bind(address).map_err(error)?;
    socket.set_nonblocking(true).map_err(error)?;
    let local_addr = socket.local_addr().map_err(error)?;
    Ok((UdpSocket::from_std(socket).map_err(error)?, local_addr))
}

/// One leg's RTP socket on Amico. Dropping it closes the socket and, if it came from a
/// [`PortPool`], returns its port.
#[derive(Debug)]
pub struct RtpSocket {
    socket: UdpSocket,
    local_addr: SocketAddr,
    // Declared after the socket so that the socket closes before the port is offered again.
    _lease: Option<Lease>,
}

impl RtpSocket {
    /// Binds an RTP socket outside any pool; port 0 lets the system choose (for tests and
    /// tools). Must run inside a Tokio runtime.
    pub fn bind(address: SocketAddr) -> Result<Self, MediaError> {
        let (socket, local_addr) = bind(address)?;
        Ok(Self {
            socket,
            local_addr,
            _lease: None,
        })
    }

    /// The address and port this leg receives on, to put in SDP.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A free range of `even_ports` even ports, found by asking the system for an ephemeral
    /// port and hoping its neighbours are free too (re-tried if not).
    fn pool_of(even_ports: u16) -> PortPool {
        for _ in 0..50 {
            let probe = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
            let base = probe.local_addr().unwrap().port() & !1;
            drop(probe);
            let Some(max) = base.checked_add(2 * even_ports - 1) else {
                continue;
            };
            let free = (0..even_ports)
                .all(|i| std::net::UdpSocket::bind((LOCALHOST, base + 2 * i)).is_ok());
            if free {
                return PortPool::new(LOCALHOST, base, max).unwrap();
            }
        }
        panic!("no free port range found");
    }

    #[tokio::test]
    async fn allocates_even_ports_inside_the_range() {
        let pool = pool_of(3);
        let sockets: Vec<_> = (0..3).map(|_| pool.allocate().unwrap()).collect();
        let mut ports: Vec<u16> = sockets.iter().map(|s| s.local_addr().port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 3);
        for port in ports {
            assert_eq!(port % 2, 0);
            assert!((pool.inner.min..=pool.inner.max).contains(&port));
        }
        assert_eq!(pool.in_use(), 3);
    }

    #[tokio::test]
    async fn exhaustion_names_the_range_and_a_dropped_socket_returns_its_port() {
        let pool = pool_of(2);
        let first = pool.allocate().unwrap();
        let _second = pool.allocate().unwrap();
        let error = pool.allocate().unwrap_err();
        let (min, max) = (pool.inner.min, pool.inner.max);
        assert!(
            matches!(error, MediaError::PortRangeExhausted { min: a, max: b, .. }
                if (a, b) == (min, max))
        );
        assert!(
            error.to_string().contains(&format!("{min}-{max}")),
            "{error}"
        );
        let port = first.local_addr().port();
        drop(first);
        assert_eq!(pool.in_use(), 1);
        assert_eq!(pool.allocate().unwrap().local_addr().port(), port);
    }

    #[tokio::test]
    async fn a_port_held_by_someone_else_is_skipped() {
        let pool = pool_of(2);
        let squatter = std::net::UdpSocket::bind((LOCALHOST, pool.inner.first_port)).unwrap();
        let socket = pool.allocate().unwrap();
        assert_eq!(socket.local_addr().port(), pool.inner.first_port + 2);
        assert!(matches!(
            pool.allocate(),
            Err(MediaError::PortRangeExhausted { .. })
        ));
        drop(squatter);
        assert_eq!(
            pool.allocate().unwrap().local_addr().port(),
            pool.inner.first_port
        );
    }

    #[test]
    fn ranges_without_an_even_port_are_refused() {
        assert!(matches!(
            PortPool::new(LOCALHOST, 40001, 40001),
            Err(MediaError::InvalidPortRange { .. })
        ));
        assert!(matches!(
            PortPool::new(LOCALHOST, 40010, 40000),
            Err(MediaError::InvalidPortRange { .. })
        ));
        assert!(matches!(
            PortPool::new(LOCALHOST, 65535, 65535),
            Err(MediaError::InvalidPortRange { .. })
        ));
        assert_eq!(
            PortPool::new(LOCALHOST, 40001, 40004).unwrap().capacity(),
            2
        );
    }

    #[test]
    fn allocating_outside_a_runtime_is_an_error_not_a_panic() {
        let pool = PortPool::new(LOCALHOST, 40000, 40010).unwrap();
        assert!(matches!(pool.allocate(), Err(MediaError::NoRuntime)));
        assert_eq!(pool.in_use(), 0);
    }
}
