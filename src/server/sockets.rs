//! Who owns the other end of a loopback TCP connection: the kernel's socket
//! table (`/proc/net/tcp`, `/proc/net/tcp6`) gives the uid and inode of the
//! client's socket, and the inode, found among `/proc/<pid>/fd`, gives the
//! process. `peers::PeerPolicy::identify_tcp` calls [`owner`] once per
//! accepted connection, on a blocking thread, never per request.
//!
//! Both reads are streaming and bounded: the table is read a line at a time
//! and stops at the matching row; the process search looks only at the
//! owner's processes and gives up after [`MAX_FDS_SEARCHED`] descriptors,
//! leaving the pid unknown rather than spending more.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The client's socket as the kernel's table lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The uid that created the socket.
    pub uid: u32,
    /// The socket's inode (`socket:[N]` in its owner's fd table).
    pub inode: u64,
}

/// The most descriptors the process search reads before giving up: a busy
/// desktop user has a few hundred processes with a few dozen descriptors
/// each, so 20,000 covers it while keeping a miss to a few milliseconds of
/// `readlink` calls.
pub const MAX_FDS_SEARCHED: usize = 20_000;

/// The owner of the socket whose local address is `peer` and whose remote
/// address is `ours`: the client's end of a connection this daemon accepted
/// on `ours`. `None` when no live row matches (the client already closed,
/// or `/proc` is not mounted).
pub fn owner(peer: SocketAddr, ours: SocketAddr) -> Option<Owner> {
    let table = match peer {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let file = std::fs::File::open(table).ok()?;
    find_row(BufReader::new(file), peer, ours)
}

/// Reads `table` a line at a time up to the row for `peer` → `ours`.
fn find_row(table: impl BufRead, peer: SocketAddr, ours: SocketAddr) -> Option<Owner> {
    table
        .lines()
        .skip(1)
        .map_while(Result::ok)
        .find_map(|line| row_owner(&line, peer, ours))
}

/// The owner in one table row, if the row is `peer` → `ours` and names a
/// live socket. A row with inode 0 (TIME_WAIT and other sockets no process
/// holds) lists uid 0, which must never be taken for root.
fn row_owner(line: &str, peer: SocketAddr, ours: SocketAddr) -> Option<Owner> {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    let fields: Vec<&str> = line.split_whitespace().take(10).collect();
    let [_, local, remote, _, _, _, _, uid, _, inode] = fields[..] else {
        return None;
    };
    if parse_addr(local)? != peer || parse_addr(remote)? != ours {
        return None;
    }
    let inode = inode.parse().ok().filter(|inode| *inode != 0)?;
    Some(Owner {
        uid: uid.parse().ok()?,
        inode,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit
/// word is printed in the kernel's byte order, so its native-endian bytes
/// are the address's bytes in network order.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes)
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The process holding socket `owner.inode`: the first of `owner.uid`'s
/// processes with `socket:[inode]` among its descriptors. `None` when none
/// is found within [`MAX_FDS_SEARCHED`] descriptors, or the daemon may not
/// read them (another user's processes, unless it runs as root).
pub fn process_of(owner: Owner) -> Option<i32> {
    let wanted = format!("socket:[{}]", owner.inode);
    let mut budget = MAX_FDS_SEARCHED;
    for entry in std::fs::read_dir("/proc").ok()?.map_while(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let owned = entry.metadata().is_ok_and(|m| m.uid() == owner.uid);
        if owned && holds(&entry.path(), &wanted, &mut budget) {
            return Some(pid);
        }
        if budget == 0 {
            return None;
        }
    }
    None
}

/// Whether `/proc/<pid>/fd` has a descriptor linked to `wanted`, spending
/// one of `budget` per descriptor read.
fn holds(process: &Path, wanted: &str, budget: &mut usize) -> bool {
    let Ok(fds) = std::fs::read_dir(process.join("fd")) else {
        return false;
    };
    for fd in fds.map_while(Result::ok) {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == wanted) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_the_kernel_prints_them() {
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(parse_addr("0100007F:1F90"), Some(v4));
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(
            parse_addr("00000000000000000000000001000000:1F90"),
            Some(v6)
        );
        assert_eq!(parse_addr("zz:1F90"), None);
        assert_eq!(parse_addr("0100007F"), None);
    }

    #[test]
    fn only_the_live_row_from_peer_to_us_matches() {
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let ours: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 111 1\n\
            1: 0100007F:9C40 0100007F:1F90 06 00000000:00000000 03:00000000 00000000     0        0 0 3\n\
            2: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 222 1\n";
        let found = find_row(table.as_bytes(), peer, ours);
        assert_eq!(
            found,
            Some(Owner {
                uid: 1001,
                inode: 222
            }),
            "the daemon's own end and a TIME_WAIT row (uid 0, inode 0) are skipped"
        );
        let elsewhere: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        assert_eq!(find_row(table.as_bytes(), peer, elsewhere), None);
    }

    #[test]
    fn our_own_connections_are_found_with_their_process() {
        for loopback in ["127.0.0.1:0", "[::1]:0"] {
            let listener = std::net::TcpListener::bind(loopback).expect("bind");
            let ours = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(ours).expect("connect");
            let (_accepted, peer) = listener.accept().expect("accept");
            assert_eq!(peer, client.local_addr().unwrap());
            let owner = owner(peer, ours).expect("our client's row is in /proc/net/tcp{,6}");
            // SAFETY: getuid has no preconditions and cannot fail.
            assert_eq!(owner.uid, unsafe { libc::getuid() }, "{loopback}");
            let pid = i32::try_from(std::process::id()).unwrap();
            assert_eq!(process_of(owner), Some(pid), "{loopback}");
        }
    }
}
