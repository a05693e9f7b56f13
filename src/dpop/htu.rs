//! The `htu` comparison (RFC 9449 4.3, step 9): the proof's URI and the
//! request's, both without query and fragment, compared after the syntax- and
//! scheme-based normalization of RFC 3986 6.2.2 and 6.2.3.

/// `uri` normalized, or `None` when it is no absolute `http`/`https` URI we can
/// compare: scheme and host in lowercase, the default port dropped,
/// percent-encoded unreserved characters decoded and other percent-encodings
/// in uppercase hex, dot segments removed, an empty path as `/`; the query and
/// the fragment dropped. A URI with userinfo is refused (it has no place in a
/// request target, and would carry a password in the clear).
pub(crate) fn normalize(uri: &str) -> Option<String> {
    let uri = uri.split(['#', '?']).next().unwrap_or_default();
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    // The port follows the last ':' outside an IPv6 literal.
    let (host, port) = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => {
            (&authority[..colon], &authority[colon + 1..])
        }
        _ => (authority, ""),
    };
    if host.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A ':' names a port: an empty one, 0 or one past 65535 is no URI we take.
    let has_colon = authority.len() > host.len();
    if has_colon && !port.parse::<u16>().is_ok_and(|port| port != 0) {
        return None;
    }
    let port = port.trim_start_matches('0');
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    if !port.is_empty() && port != default_port {
        out.push(':');
        out.push_str(port);
    }
    out.push_str(&remove_dot_segments(&normalize_percent(path)?));
    Some(out)
}

/// `%XX` of an unreserved character decoded, every other `%XX` in uppercase
/// hex; `None` for a broken escape.
fn normalize_percent(path: &str) -> Option<String> {
    let mut out = String::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b as char);
            continue;
        }
        let hex = |b: Option<u8>| (b? as char).to_digit(16);
        let value = (hex(bytes.next())? * 16 + hex(bytes.next())?) as u8;
        if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
            out.push(value as char);
        } else {
            out.push_str(&format!("%{value:02X}"));
        }
    }
    Some(out)
}

/// Whether a request path holds a dot segment (`.` or `..`, percent-encoded
/// or not). Such a request is not compared with a proof: routers disagree on
/// what it names (`/x/%2e%2e/protected` is `/protected` to some, a route of
/// its own to others), and a proof for one path must not pass for another.
pub(crate) fn has_dot_segments(path: &str) -> bool {
    // `.` as written or percent-encoded; `..` as two of them. No allocation:
    // every DPoP request's path comes through here.
    let dot = |s: &[u8]| s == b"." || s.eq_ignore_ascii_case(b"%2e");
    path.split('/').map(str::as_bytes).any(|segment| {
        dot(segment)
            || [1, 3]
                .into_iter()
                .any(|i| segment.len() > i && dot(&segment[..i]) && dot(&segment[i..]))
    })
}

/// RFC 3986 5.2.4, for an absolute path (or an empty one, which is `/`).
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => {
                out.push(other);
                continue;
            }
        }
        if last {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn equivalent_uris_normalize_alike() {
        let want = Some("https://api.example.com/a/b%2F/~c".to_owned());
        for uri in [
            "https://api.example.com/a/b%2F/~c",
            "HTTPS://API.Example.COM:443/a/b%2f/%7Ec",
            "https://api.example.com/a/./x/../b%2F/~c?q=1#frag",
            "https://api.example.com:0443/a/b%2F/%7ec",
        ] {
            assert_eq!(normalize(uri), want, "{uri}");
        }
        assert_eq!(
            normalize("http://h:8080").as_deref(),
            Some("http://h:8080/")
        );
        assert_eq!(
            normalize("http://[::1]:80/x").as_deref(),
            Some("http://[::1]/x")
        );
        assert_eq!(normalize("http://h/a/..").as_deref(), Some("http://h/"));
    }

    #[test]
    fn different_uris_stay_different() {
        let base = normalize("https://h/a");
        for uri in [
            "http://h/a",
            "https://h:8443/a",
            "https://h/a/",
            "https://h/A",
            "https://g/a",
            "https://h/a%2Fb",
        ] {
            assert_ne!(normalize(uri), base, "{uri}");
        }
    }

    #[test]
    fn what_is_no_http_uri_is_refused() {
        for uri in [
            "",
            "/a",
            "ftp://h/a",
            "https://",
            "https://user:pw@h/a",
            "https://h:x/a",
            "https://h/a b",
            "https://h/%zz",
            "https://h/%4",
            "https://h/é",
            // A port that names none: empty, 0, past 65535.
            "http://127.0.0.1:18000:/protected",
            "http://127.0.0.1:/protected",
            "http://h:0/a",
            "http://h:000/a",
            "http://h:65536/a",
        ] {
            assert_eq!(normalize(uri), None, "{uri}");
        }
    }

    #[test]
    fn request_paths_with_dot_segments_are_told_apart() {
        use super::has_dot_segments;
        for path in [
            "/x/../protected",
            "/x/%2e%2e/protected",
            "/./a",
            "/a/%2E",
            "/a/.%2e/b",
            "/a/%2E%2e/b",
            "/a/%2e./b",
        ] {
            assert!(has_dot_segments(path), "{path}");
        }
        for path in [
            "/protected",
            "/a.b/c",
            "/..a/b",
            "/a/.well-known",
            "/",
            "/a/.../b",
            "/a/%2e%2e%2e/b",
            "/a/%2f/b",
        ] {
            assert!(!has_dot_segments(path), "{path}");
        }
    }
}
