//! `clinic healthcheck`: one plain-HTTP GET with `std::net`, so the image's health check needs
//! no `curl`. Only `http://`: it checks the server's own port from inside its host or container.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// `/readyz` on the bound address; a wildcard bind (0.0.0.0, ::) is reached on the loopback.
pub fn default_url(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/readyz", SocketAddr::new(ip, bind.port()))
}

/// Ok only when `url` answers 200 within `timeout` (connecting, sending and reading included).
pub fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("healthcheck: {url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("healthcheck: {url}: no host"));
    }
    let with_port = if has_port(authority) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let deadline = Instant::now() + timeout;
    let timed_out = || format!("healthcheck: no answer from {url} within {}s", timeout.as_secs());
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)
    };

    let addrs = with_port
        .to_socket_addrs()
        .map_err(|e| format!("healthcheck: {url}: {e}"))?;
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| match last_error {
        Some(e) => format!("healthcheck: cannot connect to {url}: {e}"),
        None => format!("healthcheck: {url}: no address"),
    })?;

    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: clinic-healthcheck\r\nConnection: close\r\n\r\n"
    );
    let io_error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => timed_out(),
        _ => format!("healthcheck: {url}: {e}"),
    };
    stream.set_write_timeout(Some(remaining()?)).map_err(io_error)?;
    stream.write_all(request.as_bytes()).map_err(io_error)?;

    // Only the status line matters; it is short, so stop reading at its end (or 1 KiB).
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        stream.set_read_timeout(Some(remaining()?)).map_err(io_error)?;
        let n = stream.read(&mut buf).map_err(io_error)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let status = match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    };
    match status {
        Some(200) => Ok(()),
        Some(code) => Err(format!("healthcheck: {url} answered {code}")),
        None => Err(format!("healthcheck: {url} did not answer HTTP")),
    }
}

/// `host:port` or `[v6]:port`, as opposed to a bare host or `[v6]`.
fn has_port(authority: &str) -> bool {
    authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && (!host.starts_with('[') || host.ends_with(']'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_checked_on_the_loopback() {
        let v4: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert_eq!(default_url(v4), "http://127.0.0.1:8080/readyz");
        let v6: SocketAddr = "[::]:9000".parse().expect("addr");
        assert_eq!(default_url(v6), "http://[::1]:9000/readyz");
        let exact: SocketAddr = "10.0.0.5:8080".parse().expect("addr");
        assert_eq!(default_url(exact), "http://10.0.0.5:8080/readyz");
    }

    #[test]
    fn ports_are_found_in_hosts_and_ipv6_literals() {
        assert!(has_port("127.0.0.1:8080"));
        assert!(has_port("[::1]:8080"));
        assert!(!has_port("localhost"));
        assert!(!has_port("[::1]"));
        assert!(check("https://127.0.0.1:1/readyz", Duration::from_secs(1)).is_err());
    }
}
