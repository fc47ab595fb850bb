//! `clinic healthcheck`: one GET of `/readyz`, so the image's health check needs no `curl`.
//! Only `http://`: it checks the server's own port from inside its host or container.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

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
    if !url.starts_with("http://") {
        return Err(format!("healthcheck: {url}: only http:// URLs are supported"));
    }
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build(),
    );
    match agent.get(url).header("User-Agent", "clinic-healthcheck").call() {
        Ok(res) if res.status() == 200 => Ok(()),
        Ok(res) => Err(format!("healthcheck: {url} answered {}", res.status().as_u16())),
        Err(ureq::Error::Timeout(_)) => Err(format!(
            "healthcheck: no answer from {url} within {}s",
            timeout.as_secs()
        )),
        Err(e) => Err(format!("healthcheck: cannot reach {url}: {e}")),
    }
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
    fn only_plain_http_is_checked() {
        let e = check("https://127.0.0.1:1/readyz", Duration::from_secs(1)).expect_err("https");
        assert!(e.contains("only http://"), "{e}");
    }
}
