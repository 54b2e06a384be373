//! The seed's firewall example: open or close SSH (port 22) for one public IPv4
//! address through `ufw`. The data is typed and validated before anything runs:
//! `ip` must parse as an IPv4 address and be public; `action` is `open` or `close`.
//! Only members of the `admin` group or the user `www-data` may call it.
//!
//! ```text
//! sudo cargo run -p regent --example firewall -- /run/regent-examples/fw.sock &
//! REGENT_SECRET=123456 regent call firewall --data '{"action": "open", "ip": "203.0.113.9"}' --socket /run/regent-examples/fw.sock
//! ```
//! (203.0.113.0/24 is a documentation range, so that example is refused as not public.)

use regent::exec::{run, CommandSpec, ExecPolicy};
use regent::operation::{Context, InvalidData, OpError, OpInfo, Operation};
use regent::{AllowRule, OpOptions, Service};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Open,
    Close,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    action: Action,
    ip: Ipv4Addr,
}

struct Firewall;

impl Operation for Firewall {
    type Data = Rule;
    type Output = String;

    fn info(&self) -> OpInfo {
        OpInfo {
            description: "Open or close SSH for one public IPv4 address".into(),
            params: serde_json::json!({"action": {"type": "enum", "values": ["open", "close"]}, "ip": {"type": "ipv4", "public": true}}),
        }
    }

    fn validate(&self, rule: &Rule) -> Result<(), InvalidData> {
        match regent::config::non_public_reason(IpAddr::V4(rule.ip)) {
            None => Ok(()),
            Some(why) => Err(InvalidData::new(
                "ip",
                format!("not a public address ({why})"),
            )),
        }
    }

    async fn perform(&self, _ctx: Context, rule: Rule) -> Result<String, OpError> {
        let ip = rule.ip.to_string();
        let verb = match rule.action {
            Action::Open => "allow",
            Action::Close => "deny",
        };
        let argv = [
            "ufw",
            verb,
            "proto",
            "tcp",
            "from",
            ip.as_str(),
            "to",
            "any",
            "port",
            "22",
        ];
        let policy = ExecPolicy {
            timeout: Duration::from_secs(10),
            ..ExecPolicy::default()
        };
        let out = run(&CommandSpec::new(argv), &policy)
            .await
            .map_err(|e| OpError::failed(e.to_string()))?;
        if !out.success() {
            return Err(OpError::failed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let socket = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/run/regent-examples/fw.sock".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let allow = AllowRule::users(["www-data"]).and_groups(["admin"]);
    Service::builder(&socket)
        .mode(0o666)
        .secret_str("123456")
        .register_with(
            "firewall",
            Firewall,
            OpOptions::new()
                .allow(allow)
                .timeout(Duration::from_secs(15)),
        )?
        .build()?
        .run()
        .await?;
    Ok(())
}
