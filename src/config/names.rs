//! Names of nodes and cells: short, printable, safe in a table, a file name or a shell.

/// Longest accepted name, in bytes.
pub const NAME_LEN_MAX: usize = 64;

/// Checks a node or cell name: 1 to 64 characters among letters, digits, `-`, `_` and `.`,
/// not starting with `-` (it would read as an option) or `.`.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAME_LEN_MAX {
        return Err(format!(
            "name `{name}` must be 1 to {NAME_LEN_MAX} characters long"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(format!(
            "name `{name}` has `{c}`: use letters, digits, `-`, `_` and `.`"
        ));
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Err(format!("name `{name}` must not start with `-` or `.`"));
    }
    Ok(())
}

/// Checks an address other machines can dial: `host:port`, where host is an IP address
/// (IPv6 in brackets) or a DNS name.
pub fn check_address(address: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "address `{address}` is not `host:port` (e.g. `192.168.1.20:3330` or `pi.local:3330`)"
        )
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["pi", "home-cell", "a.b_c", "x1"] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", ".x", "a b", "a/b", &"x".repeat(65)] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        for good in [
            "127.0.0.1:3330",
            "pi.local:1",
            "[::1]:3330",
            "my-host:65535",
        ] {
            assert!(check_address(good).is_ok(), "{good}");
        }
        for bad in [
            "127.0.0.1",
            ":3330",
            "host:0",
            "host:70000",
            "a b:1",
            "[zz]:1",
            "::1:3330",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
