//! Asking a running server what it is: the `srvr` four-letter word on the
//! client port (what zkServer.sh's `status` sends), and whether a process owns
//! a listening socket on a port (so `start` never mistakes another server on
//! the same port for the one it just started).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The `Mode:` of a `srvr` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Leader,
    Follower,
    Observer,
    ReadOnly,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Leader => "leader",
            Mode::Follower => "follower",
            Mode::Observer => "observer",
            Mode::ReadOnly => "read-only",
        }
    }

    fn parse(text: &str) -> Option<Mode> {
        match text {
            "standalone" => Some(Mode::Standalone),
            "leader" => Some(Mode::Leader),
            "follower" => Some(Mode::Follower),
            "observer" => Some(Mode::Observer),
            "read-only" => Some(Mode::ReadOnly),
            _ => None,
        }
    }
}

/// Why a `srvr` reply gave no mode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SrvrError {
    #[error("the server refused srvr: add it to 4lw.commands.whitelist")]
    NotWhitelisted,
    #[error("the srvr reply has no Mode: line")]
    NoMode,
    #[error("the srvr reply names an unknown mode '{0}'")]
    UnknownMode(String),
}

/// The mode named by a `srvr` reply.
pub fn parse_srvr_mode(reply: &str) -> Result<Mode, SrvrError> {
    if reply.contains("is not executed because it is not in the whitelist") {
        return Err(SrvrError::NotWhitelisted);
    }
    let value = reply
        .lines()
        .find_map(|line| line.strip_prefix("Mode:"))
        .map(str::trim)
        .ok_or(SrvrError::NoMode)?;
    Mode::parse(value).ok_or_else(|| SrvrError::UnknownMode(value.to_string()))
}

/// Whether a reply to `srvr` came from a ZooKeeper-protocol server that is
/// serving: a mode, or a whitelist refusal (only a server that runs its
/// request loop answers that).
pub fn is_server_reply(reply: &str) -> bool {
    matches!(
        parse_srvr_mode(reply),
        Ok(_) | Err(SrvrError::NotWhitelisted)
    )
}

/// Where to reach a server listening on `ip`: a wildcard address is reached
/// on loopback, as zkServer.sh falls back to localhost.
pub fn reachable_addr(ip: IpAddr, port: u16) -> SocketAddr {
    let ip = match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, port)
}

/// Sends a four-letter word on a fresh connection and reads the reply until
/// the server closes it. `timeout` bounds the connect and each read/write, so
/// something that accepts but never answers (a plain listener on the port)
/// cannot hang the caller.
pub fn four_letter(addr: SocketAddr, word: &str, timeout: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(word.as_bytes())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Whether process `pid` holds a listening TCP socket on `port`: the socket
/// inodes of its descriptors against the LISTEN entries of its network
/// namespace's /proc tables. `None` when /proc does not tell (not our
/// process, or no /proc).
pub fn listens_on(pid: u32, port: u16) -> Option<bool> {
    let mut listening = Vec::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            listening.extend(listening_inodes(&text, port));
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let owned = fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|target| socket_inode(&target.to_string_lossy()))
            .is_some_and(|inode| listening.contains(&inode))
    });
    Some(owned)
}

/// TCP state 0x0A in /proc/net/tcp{,6}.
const TCP_LISTEN: &str = "0A";

/// Inodes of the sockets listening on `port` in a /proc/net/tcp{,6} table
/// (`sl local_address rem_address st ... uid timeout inode`, hex port).
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let listening = *fields.get(3)? == TCP_LISTEN;
            let on_port = u16::from_str_radix(local_port, 16).ok()? == port;
            if !(listening && on_port) {
                return None;
            }
            fields.get(9)?.parse().ok()
        })
        .collect()
}

/// The inode of a `socket:[N]` descriptor link.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRVR: &str = "Zookeeper version: 3.9.2-ferrokeeper-0.1.0, built on unknown\n\
        Latency min/avg/max: 0/0.0/0\nReceived: 1\nSent: 0\nConnections: 1\n\
        Outstanding: 0\nZxid: 0x0\nMode: standalone\nNode count: 5\n";

    #[test]
    fn reads_the_mode_line() {
        assert_eq!(parse_srvr_mode(SRVR), Ok(Mode::Standalone));
        assert_eq!(parse_srvr_mode("Mode: leader\n"), Ok(Mode::Leader));
        assert_eq!(parse_srvr_mode("x\nMode: follower\r\n"), Ok(Mode::Follower));
        assert_eq!(parse_srvr_mode("Mode: observer"), Ok(Mode::Observer));
        assert_eq!(parse_srvr_mode("Mode: read-only\n"), Ok(Mode::ReadOnly));
        assert_eq!(Mode::ReadOnly.as_str(), "read-only");
    }

    #[test]
    fn reports_why_there_is_no_mode() {
        let refused = "srvr is not executed because it is not in the whitelist.\n";
        assert_eq!(parse_srvr_mode(refused), Err(SrvrError::NotWhitelisted));
        assert_eq!(parse_srvr_mode(""), Err(SrvrError::NoMode));
        assert_eq!(parse_srvr_mode("imok"), Err(SrvrError::NoMode));
        assert_eq!(
            parse_srvr_mode("Mode: sideways\n"),
            Err(SrvrError::UnknownMode("sideways".into()))
        );
        assert!(is_server_reply(SRVR));
        assert!(is_server_reply(refused));
        assert!(!is_server_reply(""));
    }

    #[test]
    fn wildcard_addresses_are_probed_on_loopback() {
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(reachable_addr(any4, 2181).to_string(), "127.0.0.1:2181");
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        assert_eq!(reachable_addr(any6, 2181).to_string(), "[::1]:2181");
        let host: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(reachable_addr(host, 2181).to_string(), "10.1.2.3:2181");
    }

    #[test]
    fn finds_listening_sockets_in_proc_tables() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:0885 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n\
           1: 0100007F:0885 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n\
           2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0\n";
        assert_eq!(listening_inodes(table, 2181), vec![4242]);
        assert_eq!(listening_inodes(table, 8080), vec![4444]);
        assert!(listening_inodes(table, 1).is_empty());
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn sees_our_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(listens_on(std::process::id(), port), Some(true));
        drop(listener);
        assert_eq!(listens_on(std::process::id(), port), Some(false));
    }
}
