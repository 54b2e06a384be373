//! The semantic pass over `[service]` and its `smtp` and `tcp` sub-tables.

use std::time::Duration;

use toml::Spanned;

use super::context::{closest, item, join, Reader};
use super::raw::{List, Mode, OneOrMany, RawService, RawSmtp, RawSocket, RawTcp, Scalar, Table};
use crate::model::{
    LogFormat, ServiceConfig, SmtpDecl, SocketDecl, TcpDecl, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_TCP_MAX_CONNECTIONS,
};
use crate::net::{check_email, check_hostname};
use crate::units::{check_mode, parse_mode};
use regent_model::SmtpSecurity;
use std::net::SocketAddr;

const MS: Duration = Duration::from_millis(1);

pub(super) fn read_service(r: &mut Reader<'_>, raw: &Spanned<Table<RawService>>) -> ServiceConfig {
    let p = "service";
    let at = |key: &str| join(p, key);
    let t = raw.get_ref();
    let mut s = ServiceConfig::default();
    if let Some(v) = &t.socket {
        s.socket = r.abs_path(v, &at("socket")).unwrap_or(s.socket);
    }
    if let Some(v) = &t.socket_mode {
        match mode(r, v) {
            Ok(m) => s.socket_mode = m,
            Err(e) => r.err(v.span(), &at("socket_mode"), e),
        }
    }
    if let Some(v) = &t.socket_owner {
        s.socket_owner = r.principal(v, &at("socket_owner"));
    }
    if let Some(v) = &t.socket_group {
        s.socket_group = r.principal(v, &at("socket_group"));
    }
    if let Some(v) = &t.secret_file {
        s.secret_file = r.abs_path(v, &at("secret_file"));
    }
    if let Some(v) = &t.max_line {
        if let Some(n) = r.size(v, &at("max_line"), 256) {
            s.limits.max_line = usize::try_from(n).unwrap_or(usize::MAX);
        }
    }
    if let Some(v) = &t.line_timeout {
        s.limits.line_timeout = r
            .duration(v, &at("line_timeout"), MS)
            .unwrap_or(s.limits.line_timeout);
    }
    if let Some(v) = &t.idle_timeout {
        s.limits.idle_timeout = r
            .duration(v, &at("idle_timeout"), MS)
            .unwrap_or(s.limits.idle_timeout);
    }
    if let Some(v) = &t.max_connections {
        s.limits.max_connections = r
            .int_in(v, &at("max_connections"), 1, 1_000_000)
            .unwrap_or(s.limits.max_connections);
    }
    if let Some(v) = &t.max_connections_per_uid {
        s.limits.max_connections_per_uid = r
            .int_in(v, &at("max_connections_per_uid"), 1, 1_000_000)
            .unwrap_or(s.limits.max_connections_per_uid);
    }
    // Unset: 8, but never more than a quarter of the slots.
    s.limits.reserved_connections = s
        .limits
        .reserved_connections
        .min(s.limits.max_connections / 4);
    if let Some(v) = &t.reserved_connections {
        if let Some(n) = r.int_in(v, &at("reserved_connections"), 0, 1_000_000) {
            if n < s.limits.max_connections {
                s.limits.reserved_connections = n;
            } else {
                r.err(
                    v.span(),
                    &at("reserved_connections"),
                    format!(
                        "must be less than max_connections ({}): others would get no slot",
                        s.limits.max_connections
                    ),
                );
            }
        }
    }
    if let Some(v) = &t.max_runs {
        s.limits.max_runs = r
            .int_in(v, &at("max_runs"), 1, 1_000_000)
            .unwrap_or(s.limits.max_runs);
    }
    if let Some(v) = &t.write_timeout {
        s.limits.write_timeout = r
            .duration(v, &at("write_timeout"), MS)
            .unwrap_or(s.limits.write_timeout);
    }
    if let Some(v) = &t.threads {
        s.limits.acceptors = r
            .int_in(v, &at("threads"), 1, 256)
            .unwrap_or(s.limits.acceptors);
    }
    if let Some(v) = &t.rate_limit_hold {
        s.limits.rate_limit_hold = r
            .duration(v, &at("rate_limit_hold"), Duration::ZERO)
            .unwrap_or(s.limits.rate_limit_hold);
    }
    if let Some(v) = &t.log_format {
        s.log_format = r
            .choice(
                v,
                &at("log_format"),
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )
            .unwrap_or_default();
    }
    if let Some(v) = &t.store {
        s.store = r.abs_path(v, &at("store")).unwrap_or(s.store);
    }
    if let Some(v) = &t.admin_group {
        s.admin_group = r.principal(v, &at("admin_group"));
    }
    if let Some(v) = &t.allow_self_approval {
        s.allow_self_approval = *v.get_ref();
    }
    if let Some(v) = &t.max_pending {
        s.max_pending = r
            .int_in(v, &at("max_pending"), 1, 1_000_000)
            .unwrap_or(s.max_pending);
    }
    if let Some(v) = &t.max_pending_per_uid {
        s.max_pending_per_uid = r
            .int_in(v, &at("max_pending_per_uid"), 1, 1_000_000)
            .unwrap_or(s.max_pending_per_uid);
    }
    if let Some(v) = &t.command_path {
        let dirs = v.get_ref();
        if dirs
            .split(':')
            .all(|d| d.starts_with('/') && !d.contains('\0'))
        {
            s.command_path.clone_from(dirs);
        } else {
            r.err(
                v.span(),
                &at("command_path"),
                "must be a ':'-separated list of absolute directories",
            );
        }
    }
    if let Some(v) = &t.admin_clients {
        s.admin_clients = read_clients(r, v.get_ref(), &at("admin_clients")).unwrap_or_default();
    }
    if let Some(v) = &t.smtp {
        s.smtp = read_smtp(r, v, &at("smtp"));
    }
    if let Some(v) = &t.tcp {
        s.tcp = read_tcp(r, v, &at("tcp"));
    }
    if let Some(v) = &t.sockets {
        s.sockets = read_sockets(r, v.get_ref(), &s, &at("sockets"));
    }
    s
}

/// The `[[service.sockets]]` entries. Their operation names are checked once
/// the operations are read ([`check_socket_operations`]).
fn read_sockets(
    r: &mut Reader<'_>,
    raw: &List<Table<RawSocket>>,
    s: &ServiceConfig,
    p: &str,
) -> Vec<SocketDecl> {
    let mut seen = vec![s.socket.clone()];
    let mut out = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let p = item(p, i);
        let at = |key: &str| join(&p, key);
        let t = entry.get_ref();
        let before = r.errors();
        let path = match &t.path {
            Some(v) => r.abs_path(v, &at("path")).and_then(|path| {
                if seen.contains(&path) {
                    r.err(
                        v.span(),
                        &at("path"),
                        format!(
                            "{} is already the path of another socket: each socket needs its own",
                            path.display()
                        ),
                    );
                    return None;
                }
                seen.push(path.clone());
                Some(path)
            }),
            None => {
                r.missing(r.key_span(entry), &p, "path");
                None
            }
        };
        let mode = match &t.mode {
            Some(v) => mode(r, v).map_err(|e| r.err(v.span(), &at("mode"), e)).ok(),
            None => Some(0o660),
        };
        let owner = t.owner.as_ref().map(|v| r.principal(v, &at("owner")));
        let group = t.group.as_ref().map(|v| r.principal(v, &at("group")));
        let operations = match &t.operations {
            Some(v) => v.get_ref().iter().map(|n| n.get_ref().clone()).collect(),
            None => {
                r.missing(r.key_span(entry), &p, "operations");
                Vec::new()
            }
        };
        if r.errors_since(before, &p) {
            continue;
        }
        let (Some(path), Some(mode)) = (path, mode) else {
            continue;
        };
        out.push(SocketDecl {
            path,
            mode,
            owner: owner.flatten(),
            group: group.flatten(),
            operations: Some(operations),
            admin: t.admin.as_ref().is_some_and(|a| *a.get_ref()),
        });
    }
    out
}

/// Every operation a `[[service.sockets]]` entry names must be declared (a
/// misspelt one gets a suggestion).
pub(super) fn check_socket_operations(
    r: &mut Reader<'_>,
    raw: &Spanned<Table<RawService>>,
    declared: &[&str],
) {
    let Some(sockets) = &raw.get_ref().sockets else {
        return;
    };
    for (i, entry) in sockets.get_ref().iter().enumerate() {
        let Some(ops) = &entry.get_ref().operations else {
            continue;
        };
        for (j, name) in ops.get_ref().iter().enumerate() {
            let n = name.get_ref();
            if declared.contains(&n.as_str()) {
                continue;
            }
            let hint = match closest(n, declared) {
                Some(k) => format!(" (did you mean '{k}'?)"),
                None => String::new(),
            };
            let path = item(&join(&item("service.sockets", i), "operations"), j);
            let shown = serde_json::Value::String(n.clone());
            r.err(
                name.span(),
                &path,
                format!("no operation {shown} is declared{hint}"),
            );
        }
    }
}

/// `socket_mode`: `"0660"`, or an integer written in octal (`0o660`).
fn mode(r: &Reader<'_>, v: &Spanned<Mode>) -> Result<u32, String> {
    match &v.get_ref().0 {
        Scalar::Str(m) => parse_mode(m),
        Scalar::Int(_) | Scalar::Big(_) => match r.integer_at(&v.span()) {
            (digits, 8) => u32::from_str_radix(&digits, 8)
                .map_err(|e| e.to_string())
                .and_then(check_mode),
            (digits, _) => Err(format!(
                "write the mode as an octal string, e.g. \"0{digits}\" ({digits} is read as decimal)"
            )),
        },
        Scalar::Float(_) | Scalar::Bool(_) => Err(super::context::UNEXPECTED.into()),
    }
}

fn read_smtp(r: &mut Reader<'_>, raw: &Spanned<Table<RawSmtp>>, p: &str) -> Option<SmtpDecl> {
    let at = |key: &str| join(p, key);
    let t = raw.get_ref();
    let key_span = r.key_span(raw);
    let before = r.errors();
    let host = match &t.host {
        Some(v) => {
            let h = v.get_ref();
            let ok = !h.is_empty()
                && (check_hostname(h).is_ok() || h.parse::<std::net::IpAddr>().is_ok());
            if !ok {
                r.err(v.span(), &at("host"), "must be a hostname or an IP address");
            }
            ok.then(|| h.clone())
        }
        None => {
            r.missing(key_span.clone(), p, "host");
            None
        }
    };
    let security = match &t.security {
        Some(v) => r
            .choice(
                v,
                &at("security"),
                &[
                    ("starttls", SmtpSecurity::StartTls),
                    ("tls", SmtpSecurity::Tls),
                    ("none", SmtpSecurity::None),
                ],
            )
            .unwrap_or_default(),
        None => SmtpSecurity::StartTls,
    };
    let port = match &t.port {
        Some(v) => r.int_in(v, &at("port"), 1, 65535),
        None => Some(match security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }),
    };
    let from = match &t.from {
        Some(v) => check_email(v.get_ref())
            .map_err(|e| r.err(v.span(), &at("from"), e))
            .ok()
            .map(|()| v.get_ref().clone()),
        None => {
            r.missing(key_span, p, "from");
            None
        }
    };
    let credentials_file = t.credentials_file.as_ref().and_then(|v| {
        let file = r.abs_path(v, &at("credentials_file"))?;
        if security == SmtpSecurity::None {
            r.err(
                v.span(),
                &at("credentials_file"),
                "refusing to send credentials without TLS (security = \"none\")",
            );
        }
        Some(file)
    });
    let timeout = match &t.timeout {
        Some(v) => r.duration(v, &at("timeout"), MS),
        None => Some(regent_model::smtp::DEFAULT_SMTP_TIMEOUT),
    };
    if r.errors_since(before, p) {
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

fn read_tcp(r: &mut Reader<'_>, raw: &Spanned<Table<RawTcp>>, p: &str) -> Option<TcpDecl> {
    let at = |key: &str| join(p, key);
    let t = raw.get_ref();
    let key_span = r.key_span(raw);
    let before = r.errors();
    let listen = match &t.listen {
        Some(v) => read_listen(r, v, &at("listen")),
        None => {
            r.missing(key_span.clone(), p, "listen");
            None
        }
    };
    let mut required = |v: &Option<Spanned<String>>, key: &str| match v {
        Some(v) => r.abs_path(v, &at(key)),
        None => {
            r.missing(key_span.clone(), p, key);
            None
        }
    };
    let cert = required(&t.cert, "cert");
    let key = required(&t.key, "key");
    let client_ca = required(&t.client_ca, "client_ca");
    let crl = t.crl.as_ref().and_then(|v| r.abs_path(v, &at("crl")));
    let handshake_timeout = match &t.handshake_timeout {
        Some(v) => r.duration(v, &at("handshake_timeout"), MS),
        None => Some(DEFAULT_HANDSHAKE_TIMEOUT),
    };
    let max_connections = match &t.max_connections {
        Some(v) => r.int_in(v, &at("max_connections"), 1, 1_000_000),
        None => Some(DEFAULT_TCP_MAX_CONNECTIONS),
    };
    if r.errors_since(before, p) {
        return None;
    }
    Some(TcpDecl {
        listen: listen?,
        cert: cert?,
        key: key?,
        client_ca: client_ca?,
        crl,
        handshake_timeout: handshake_timeout?,
        max_connections: max_connections?,
    })
}

/// `listen`: one `ADDR:PORT` or a list of them (IPv6 as `[::1]:8443`), no
/// address twice.
fn read_listen(r: &mut Reader<'_>, v: &Spanned<OneOrMany>, p: &str) -> Option<Vec<SocketAddr>> {
    let items = &v.get_ref().0;
    if items.is_empty() {
        r.err(v.span(), p, "lists no address");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        // A single string carries no span of its own: it is the whole value.
        let span = if item.span().is_empty() {
            v.span()
        } else {
            item.span()
        };
        match item.get_ref().parse::<SocketAddr>() {
            Ok(a) if out.contains(&a) => {
                r.err(span, p, format!("{a} is listed twice"));
                ok = false;
            }
            Ok(a) => out.push(a),
            Err(_) => {
                r.err(
                    span,
                    p,
                    "expected an address:port such as \"0.0.0.0:8443\" or \"[::]:8443\"",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A list of TLS client names (`clients`, `admin_clients`), each checked as a
/// certificate's name must be.
pub(super) fn read_clients(
    r: &mut Reader<'_>,
    list: &[Spanned<String>],
    p: &str,
) -> Option<Vec<String>> {
    let mut ok = true;
    for name in list {
        if !regent_model::valid_client_name(name.get_ref()) {
            r.err(
                name.span(),
                p,
                "a client name is 1 to 64 characters from [A-Za-z0-9._@-], starting with a letter or digit",
            );
            ok = false;
        }
    }
    ok.then(|| list.iter().map(|n| n.get_ref().clone()).collect())
}
