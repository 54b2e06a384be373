//! `regent totp enroll USER` and `regent totp remove USER` (or `--client NAME`
//! for a TLS client, by its certificate's name): manage TOTP secrets in the
//! service's root-only store. Run as root on the service's machine.

use crate::exit;
use regent::auth::TotpStore;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

/// Which store.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// The daemon config whose `store` holds the TOTP secrets.
    #[arg(long, short = 'c', default_value = "/etc/regent/regent.toml")]
    pub config: PathBuf,
    /// The store file itself (instead of reading the config).
    #[arg(long)]
    pub store: Option<PathBuf>,
}

impl StoreArgs {
    fn open(&self) -> Result<TotpStore, String> {
        let path = match &self.store {
            Some(p) => p.clone(),
            None => {
                regent::config::load(&self.config)
                    .map_err(|d| format!("{d}"))?
                    .service
                    .store
            }
        };
        TotpStore::open(&path).map_err(|e| format!("TOTP store {}: {e}", path.display()))
    }
}

/// `regent totp`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Enrol a user: show the otpauth:// URI and QR code, then ask for one valid code.
    Enroll {
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a user's TOTP secret.
    Remove {
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Whose secret: a Unix user, or a TLS client.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Who {
    /// The user name (as the kernel reports it for the caller).
    user: Option<String>,
    /// A TLS client, by the name its certificate gives (see `[service.tcp]`).
    #[arg(long)]
    client: Option<String>,
}

impl Who {
    /// The TOTP account: the user name, or `tls:NAME` for a client.
    fn account(self) -> Result<String, String> {
        match (self.user, self.client) {
            (_, Some(c)) if regent::model::valid_client_name(&c) => {
                Ok(regent::auth::caller::totp_client(&c))
            }
            (_, Some(_)) => {
                Err("--client: not a client name ([A-Za-z0-9][A-Za-z0-9._@-]*, at most 64)".into())
            }
            (Some(u), None) => Ok(u),
            (None, None) => Err("name a user or a --client".into()),
        }
    }
}

pub fn run(cmd: Command) -> ExitCode {
    let (who, store, enrolling) = match cmd {
        Command::Enroll { who, store } => (who, store, true),
        Command::Remove { who, store } => (who, store, false),
    };
    let user = match who.account() {
        Ok(u) => u,
        Err(e) => return super::call::fail(e, exit::INVALID),
    };
    match enrolling {
        true => enroll(&user, &store),
        false => {
            let store = match store.open() {
                Ok(s) => s,
                Err(e) => return super::call::fail(e, exit::OTHER),
            };
            match store.remove(&user) {
                Ok(true) => {
                    println!("removed the TOTP secret of {user}");
                    exit::code(exit::OK)
                }
                Ok(false) => super::call::fail(format!("{user} has no TOTP secret"), exit::INVALID),
                Err(e) => super::call::fail(e, exit::OTHER),
            }
        }
    }
}

fn enroll(user: &str, store: &StoreArgs) -> ExitCode {
    let store = match store.open() {
        Ok(s) => s,
        Err(e) => return super::call::fail(e, exit::OTHER),
    };
    let enrollment = match store.begin_enroll(user) {
        Ok(e) => e,
        Err(e) => return super::call::fail(e, exit::INVALID),
    };
    println!("Scan this with an authenticator app, or enter the URI by hand:\n");
    println!("{}", enrollment.qr());
    println!("{}", enrollment.uri());
    println!();
    let stdin = std::io::stdin();
    for attempt in 1..=3 {
        eprint!("Enter the 6-digit code the app shows now: ");
        let mut line = zeroize::Zeroizing::new(String::new());
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
            return super::call::fail("no code entered; nothing saved", exit::INVALID);
        }
        match store.confirm_enroll(&enrollment, line.trim()) {
            Ok(()) => {
                println!("enrolled {user}");
                return exit::code(exit::OK);
            }
            Err(e) if attempt < 3 => eprintln!("{e}; try again"),
            Err(e) => return super::call::fail(format!("{e}; nothing saved"), exit::DENIED),
        }
    }
    exit::code(exit::DENIED)
}
