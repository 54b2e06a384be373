//! Reading the `[service]` table and its `smtp` and `tcp` sub-tables.

use super::*;

const SERVICE_KEYS: &[&str] = &[
    "socket",
    "socket_mode",
    "socket_owner",
    "socket_group",
    "secret_file",
    "max_line",
    "line_timeout",
    "idle_timeout",
    "max_connections",
    "max_connections_per_uid",
    "reserved_connections",
    "max_runs",
    "write_timeout",
    "rate_limit_hold",
    "threads",
    "log_format",
    "store",
    "admin_group",
    "allow_self_approval",
    "max_pending",
    "max_pending_per_uid",
    "command_path",
    "smtp",
    "tcp",
];

const SMTP_KEYS: &[&str] = &[
    "host",
    "port",
    "security",
    "from",
    "credentials_file",
    "timeout",
];

const TCP_KEYS: &[&str] = &["listen", "cert", "key", "client_ca"];

pub(super) fn read_service(r: &mut Reader<'_>, f: &Field<'_, '_>) -> ServiceConfig {
    let mut s = ServiceConfig::default();
    let Some(t) = r.table(f, SERVICE_KEYS) else {
        return s;
    };
    if let Some(f) = t.get("socket") {
        s.socket = r.abs_path(&f).unwrap_or(s.socket);
    }
    if let Some(f) = t.get("socket_mode") {
        let mode = match f.value() {
            DeValue::String(m) => parse_mode(m),
            DeValue::Integer(i) if i.radix() == 8 => u32::from_str_radix(i.as_str(), 8)
                .map_err(|e| e.to_string())
                .and_then(check_mode),
            DeValue::Integer(i) => Err(format!(
                "write the mode as an octal string, e.g. \"0{}\" ({} is read as decimal)",
                i.as_str(),
                i.as_str()
            )),
            other => Err(format!(
                "expected an octal mode string such as \"0660\", found {}",
                type_name(other)
            )),
        };
        match mode {
            Ok(m) => s.socket_mode = m,
            Err(e) => r.err(f.span(), &f.path, e),
        }
    }
    if let Some(f) = t.get("socket_owner") {
        s.socket_owner = r.principal(&f);
    }
    if let Some(f) = t.get("socket_group") {
        s.socket_group = r.principal(&f);
    }
    if let Some(f) = t.get("secret_file") {
        s.secret_file = r.abs_path(&f);
    }
    if let Some(f) = t.get("max_line") {
        if let Some(n) = r.size(&f, 256) {
            s.max_line = usize::try_from(n).unwrap_or(usize::MAX);
        }
    }
    if let Some(f) = t.get("line_timeout") {
        s.line_timeout = r
            .duration(&f, Duration::from_millis(1))
            .unwrap_or(s.line_timeout);
    }
    if let Some(f) = t.get("idle_timeout") {
        s.idle_timeout = r
            .duration(&f, Duration::from_millis(1))
            .unwrap_or(s.idle_timeout);
    }
    if let Some(f) = t.get("max_connections") {
        s.max_connections = r.int_in(&f, 1, 1_000_000).unwrap_or(s.max_connections);
    }
    if let Some(f) = t.get("max_connections_per_uid") {
        s.max_connections_per_uid = r
            .int_in(&f, 1, 1_000_000)
            .unwrap_or(s.max_connections_per_uid);
    }
    // Unset: 8, but never more than a quarter of the slots.
    s.reserved_connections = s.reserved_connections.min(s.max_connections / 4);
    if let Some(f) = t.get("reserved_connections") {
        if let Some(n) = r.int_in(&f, 0, 1_000_000) {
            if n < s.max_connections {
                s.reserved_connections = n;
            } else {
                r.err(
                    f.span(),
                    &f.path,
                    format!(
                        "must be less than max_connections ({}): others would get no slot",
                        s.max_connections
                    ),
                );
            }
        }
    }
    if let Some(f) = t.get("max_runs") {
        s.max_runs = r.int_in(&f, 1, 1_000_000).unwrap_or(s.max_runs);
    }
    if let Some(f) = t.get("write_timeout") {
        s.write_timeout = r
            .duration(&f, Duration::from_millis(1))
            .unwrap_or(s.write_timeout);
    }
    if let Some(f) = t.get("threads") {
        s.threads = r.int_in(&f, 1, 256).unwrap_or(s.threads);
    }
    if let Some(f) = t.get("rate_limit_hold") {
        s.rate_limit_hold = r.duration(&f, Duration::ZERO).unwrap_or(s.rate_limit_hold);
    }
    if let Some(f) = t.get("log_format") {
        s.log_format = r
            .choice(&f, &[("text", LogFormat::Text), ("json", LogFormat::Json)])
            .unwrap_or_default();
    }
    if let Some(f) = t.get("store") {
        s.store = r.abs_path(&f).unwrap_or(s.store);
    }
    if let Some(f) = t.get("admin_group") {
        s.admin_group = r.principal(&f);
    }
    if let Some(f) = t.get("allow_self_approval") {
        s.allow_self_approval = r.boolean(&f).unwrap_or(false);
    }
    if let Some(f) = t.get("max_pending") {
        s.max_pending = r.int_in(&f, 1, 1_000_000).unwrap_or(s.max_pending);
    }
    if let Some(f) = t.get("max_pending_per_uid") {
        s.max_pending_per_uid = r.int_in(&f, 1, 1_000_000).unwrap_or(s.max_pending_per_uid);
    }
    if let Some(f) = t.get("command_path") {
        if let Some(p) = r.string(&f) {
            if p.split(':')
                .all(|d| d.starts_with('/') && !d.contains('\0'))
            {
                s.command_path = p;
            } else {
                r.err(
                    f.span(),
                    &f.path,
                    "must be a ':'-separated list of absolute directories",
                );
            }
        }
    }
    if let Some(f) = t.get("smtp") {
        s.smtp = read_smtp(r, &f);
    }
    if let Some(f) = t.get("tcp") {
        s.tcp = read_tcp(r, &f);
    }
    t.finish(r);
    s
}

fn read_smtp(r: &mut Reader<'_>, f: &Field<'_, '_>) -> Option<SmtpDecl> {
    let t = r.table(f, SMTP_KEYS)?;
    let before = r.errors();
    let host = match t.get("host") {
        Some(f) => r.string(&f).and_then(|h| {
            let ok = !h.is_empty()
                && (check_hostname(&h).is_ok() || h.parse::<std::net::IpAddr>().is_ok());
            if !ok {
                r.err(f.span(), &f.path, "must be a hostname or an IP address");
            }
            ok.then_some(h)
        }),
        None => {
            missing(r, &t, "host");
            None
        }
    };
    let security = match t.get("security") {
        Some(f) => r
            .choice(
                &f,
                &[
                    ("starttls", SmtpSecurity::StartTls),
                    ("tls", SmtpSecurity::Tls),
                    ("none", SmtpSecurity::None),
                ],
            )
            .unwrap_or_default(),
        None => SmtpSecurity::StartTls,
    };
    let port = match t.get("port") {
        Some(f) => r.int_in(&f, 1, 65535),
        None => Some(match security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }),
    };
    let from = match t.get("from") {
        Some(f) => r.string(&f).and_then(|a| {
            check_email(&a)
                .map_err(|e| r.err(f.span(), &f.path, e))
                .ok()?;
            Some(a)
        }),
        None => {
            missing(r, &t, "from");
            None
        }
    };
    let credentials_file = t.get("credentials_file").and_then(|f| {
        let p = r.abs_path(&f)?;
        if security == SmtpSecurity::None {
            r.err(
                f.span(),
                &f.path,
                "refusing to send credentials without TLS (security = \"none\")",
            );
        }
        Some(p)
    });
    let timeout = match t.get("timeout") {
        Some(f) => r.duration(&f, Duration::from_millis(1)),
        None => Some(regent_model::smtp::DEFAULT_SMTP_TIMEOUT),
    };
    t.finish(r);
    if r.errors() != before {
        return None;
    }
    Some(SmtpDecl {
        host: host?,
        port: port?,
        security,
        from: from?,
        credentials_file,
        timeout: timeout?,
    })
}

fn read_tcp(r: &mut Reader<'_>, f: &Field<'_, '_>) -> Option<TcpDecl> {
    let t = r.table(f, TCP_KEYS)?;
    let before = r.errors();
    let listen = match t.get("listen") {
        Some(f) => r.string(&f).and_then(|s| {
            s.parse()
                .map_err(|_| {
                    r.err(
                        f.span(),
                        &f.path,
                        "expected an address:port such as \"0.0.0.0:8443\"",
                    )
                })
                .ok()
        }),
        None => {
            missing(r, &t, "listen");
            None
        }
    };
    let req_path = |r: &mut Reader<'_>, key: &str| match t.get(key) {
        Some(f) => r.abs_path(&f),
        None => {
            missing(r, &t, key);
            None
        }
    };
    let cert = req_path(r, "cert");
    let key = req_path(r, "key");
    let client_ca = t.get("client_ca").and_then(|f| r.abs_path(&f));
    t.finish(r);
    if r.errors() != before {
        return None;
    }
    Some(TcpDecl {
        listen: listen?,
        cert: cert?,
        key: key?,
        client_ca,
    })
}
