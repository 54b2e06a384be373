//! The seed's restart example: restart one service from an allowlist. Restarting
//! nginx passes at once; any other allowed service is held until an administrator
//! approves it (`regent pending`, `regent approve ID`), as the operation decides per
//! request in `authorize`.
//!
//! ```text
//! sudo cargo run -p regent --example restart -- /run/regent-examples/restart.sock /var/lib/regent-examples/pending.db &
//! REGENT_SECRET=123456 regent call restart --data '{"service": "nginx"}' --socket /run/regent-examples/restart.sock
//! REGENT_SECRET=123456 regent call restart --data '{"service": "postgresql"}' --wait --socket /run/regent-examples/restart.sock
//! ```

use regent::exec::{run, CommandSpec, ExecPolicy};
use regent::operation::{Authorization, Context, InvalidData, OpError, OpInfo, Operation};
use regent::{Caller, OpOptions, Service, Stage};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const ALLOWED: &[&str] = &["nginx", "postgresql", "ssh"];

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Restart {
    service: String,
}

struct RestartService;

impl Operation for RestartService {
    type Data = Restart;
    type Output = String;

    fn info(&self) -> OpInfo {
        OpInfo {
            description:
                "Restart an allowlisted system service (nginx at once, others after approval)"
                    .into(),
            params: serde_json::json!({"service": {"type": "enum", "values": ALLOWED}}),
        }
    }

    fn validate(&self, d: &Restart) -> Result<(), InvalidData> {
        if ALLOWED.contains(&d.service.as_str()) {
            Ok(())
        } else {
            Err(InvalidData::new(
                "service",
                format!("must be one of {}", ALLOWED.join(", ")),
            ))
        }
    }

    fn authorize(&self, _caller: &Caller, d: &Restart) -> Authorization {
        if d.service == "nginx" {
            Authorization::Allow
        } else {
            Authorization::require([Stage::Approval])
        }
    }

    async fn perform(&self, _ctx: Context, d: Restart) -> Result<String, OpError> {
        let policy = ExecPolicy {
            timeout: Duration::from_secs(60),
            ..ExecPolicy::default()
        };
        let out = run(
            &CommandSpec::new(["systemctl", "restart", d.service.as_str()]),
            &policy,
        )
        .await
        .map_err(|e| OpError::failed(e.to_string()))?;
        if !out.success() {
            return Err(OpError::failed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(format!("restarted {}", d.service))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let socket = args
        .next()
        .unwrap_or_else(|| "/run/regent-examples/restart.sock".into());
    let store = args
        .next()
        .unwrap_or_else(|| "/var/lib/regent-examples/pending.db".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    Service::builder(&socket)
        .mode(0o666)
        .secret_str("123456")
        .pending_store(&store)
        .register_with(
            "restart",
            RestartService,
            OpOptions::new().timeout(Duration::from_secs(70)),
        )?
        .build()?
        .run()
        .await?;
    Ok(())
}
