//! The service: listeners on one or more Unix sockets ([`sockets`]), a task per
//! connection, and the request pipeline ([`pipeline`]) that authenticates,
//! authorizes and executes.
//!
//! ```no_run
//! # use regent::{Service, operation::*};
//! # struct WhoAmI;
//! # impl Operation for WhoAmI { type Data = (); type Output = String;
//! #   async fn perform(&self, c: Context, _: ()) -> Result<String, OpError> { Ok(c.caller.user_or_uid()) } }
//! # async fn run() -> Result<(), regent::Error> {
//! Service::builder("/run/regent/regent.sock")
//!     .secret_str("123456")
//!     .register("whoami", WhoAmI)?
//!     .build()?
//!     .run()
//!     .await
//! # }
//! ```

pub mod audit;
mod connection;
pub mod listener;
pub(crate) mod pending;
pub mod pipeline;
pub mod reload;
pub mod sockets;
mod stream;
pub mod tls;

pub use listener::SocketOptions;
use regent_auth::RateLimiter;
pub use regent_auth::SharedSecret;
use reload::Current;
pub use reload::Reloader;
pub use sockets::{BoundSocket, Exposure, SocketEntry};
pub use tls::TlsOptions;

use crate::error::Error;
use crate::identity::{Caller, IdentityResolver};
use crate::operation::Operation;
use crate::policy;
use crate::registry::{OpOptions, Registry};
use regent_auth::{
    AuthFlow, AuthMethod, FlowOptions, Mailer, MethodRegistry, SmtpConfig, TotpStore,
};
use regent_model::{Account, CallerKey};
use regent_proto::{ErrorCode, Response};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// Connection limits (see `PROTOCOL.md`, Framing), with their defaults: the
/// shared [`regent_model::Limits`], which the config's defaults are too.
pub use regent_model::Limits;

/// One configuration of the service, shared by every connection: a request
/// takes the current one when it starts and keeps it to its end, so a reload
/// ([`Reloader`]) swaps in a new one for new requests while requests in flight
/// finish under the old. What must outlive a reload (failure and poll counts,
/// the bound on runs, the pending store) is shared by every snapshot.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    /// Only the secret's digest: the service never needs the secret itself.
    pub(crate) secret: Option<Arc<regent_auth::SecretDigest>>,
    pub(crate) limiter: Arc<RateLimiter<CallerKey>>,
    /// Approval polls per caller ([`pending::poll_limiter`]).
    pub(crate) poll_limiter: Arc<RateLimiter<CallerKey>>,
    /// Not reloaded: the limits the service started with.
    pub(crate) limits: Limits,
    pub(crate) flow: Option<AuthFlow>,
    pub(crate) admin_group: Option<Account>,
    /// TLS clients who administer like `admin_group`'s members.
    pub(crate) admin_clients: Vec<String>,
    pub(crate) allow_self_approval: bool,
    /// Refusals counted per uid, so a flood of them cannot flood the log.
    pub(crate) refusals: Arc<audit::Refusals>,
    /// Operations running at once ([`Limits::max_runs`]).
    pub(crate) runs: Arc<Semaphore>,
    /// Each operation's declaration digest when the service started: what a
    /// held request stored without one (by a store of schema version 2) is
    /// taken to have been held under ([`pending`]).
    pub(crate) started_with: Arc<HashMap<String, Option<String>>>,
    /// Connection slots ([`Limits::max_connections`]), shared by every acceptor
    /// and kept across reloads.
    pub(crate) slots: Arc<Semaphore>,
    /// When the service was built (for `regent.status`'s uptime).
    pub(crate) started: std::time::Instant,
    /// Serving a socket the service manager passed.
    pub(crate) activated: Arc<std::sync::atomic::AtomicBool>,
    /// What the embedding program adds to `regent.status`.
    pub(crate) status_extra: Option<StatusExtra>,
    /// The TLS material new handshakes use (reloaded with the rest), if the
    /// service serves TCP.
    pub(crate) tls: Option<Arc<tls::TlsMaterial>>,
}

/// A source of extra `regent.status` fields (e.g. the daemon's log queue), see
/// [`ServiceBuilder::status_extra`].
pub type StatusExtra = Arc<dyn Fn() -> serde_json::Map<String, serde_json::Value> + Send + Sync>;

impl Shared {
    /// Who administers held requests besides root, for [`policy::may_decide`].
    pub(crate) fn admins(&self) -> policy::Admins<'_> {
        policy::Admins {
            group: self.admin_group.as_ref(),
            allow_self_approval: self.allow_self_approval,
            clients: &self.admin_clients,
        }
    }

    /// An administrator (root, or a member of `admin_group`: who may see the
    /// held requests of an operation without an `approve` rule) may use the
    /// reserved connections.
    fn is_admin(&self, caller: &Caller) -> bool {
        let any = policy::HeldRequest {
            approve: None,
            requested_by: None,
            action: policy::AdminAction::See,
        };
        policy::may_decide(caller, &self.admins(), &any).is_allowed()
    }
}

/// Builds a [`Service`].
pub struct ServiceBuilder {
    socket: SocketOptions,
    /// Sockets after the first (see [`ServiceBuilder::socket`]).
    more_sockets: Vec<SocketEntry>,
    registry: Registry,
    secret: Option<SharedSecret>,
    limits: Limits,
    store: Option<PathBuf>,
    flow: Option<AuthFlow>,
    methods: Vec<Arc<dyn AuthMethod>>,
    mailer: Option<(SmtpConfig, Duration)>,
    admin_group: Option<Account>,
    admin_clients: Vec<String>,
    allow_self_approval: bool,
    flow_options: FlowOptions,
    identities: IdentityResolver,
    keep_secret: bool,
    status_extra: Option<StatusExtra>,
    tls: Option<TlsOptions>,
}

impl ServiceBuilder {
    /// Also serve TCP with mutual TLS ([`tls`]); the material is loaded (and the
    /// key's mode checked) by [`ServiceBuilder::build`], and again by a
    /// [`Reloader::apply`] given a builder with these options (the listen
    /// addresses and `max_connections` stay the running service's).
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    /// Add the fields `extra` returns to every `regent.status` answer (called
    /// on the event loop: keep it cheap and non-blocking).
    pub fn status_extra(mut self, extra: StatusExtra) -> Self {
        self.status_extra = Some(extra);
        self
    }

    /// Cap the requests held for authorization: `total` at once in all, and
    /// `per_uid` per caller uid (all operations together; each operation's own
    /// cap is [`OpOptions::max_pending_per_uid`]). Beyond a cap: `busy`.
    pub fn pending_caps(mut self, total: u32, per_uid: u32) -> Self {
        self.flow_options.max_pending = total;
        self.flow_options.max_pending_per_uid = per_uid;
        self
    }

    /// Set the socket's mode (default 0660).
    pub fn mode(mut self, mode: u32) -> Self {
        self.socket.mode = mode;
        self
    }

    /// Set the socket's owner and group ids.
    pub fn owner(mut self, uid: Option<u32>, gid: Option<u32>) -> Self {
        self.socket.owner = uid;
        self.socket.group = gid;
        self
    }

    /// Listen on one more socket, offering what `entry` says (the first socket,
    /// given to [`Service::builder`], offers everything). See [`sockets`].
    pub fn socket(mut self, entry: SocketEntry) -> Self {
        self.more_sockets.push(entry);
        self
    }

    /// Require this secret on every request. The service keeps only its digest
    /// (the secret's text is zeroized when [`ServiceBuilder::build`] runs).
    pub fn secret(mut self, secret: SharedSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// For a reload ([`Reloader::apply`]): keep the secret the running service
    /// has (e.g. one read from standard input at start, which cannot be read
    /// again), whatever [`ServiceBuilder::secret`] says.
    pub fn keep_current_secret(mut self) -> Self {
        self.keep_secret = true;
        self
    }

    /// Require this secret (convenience for examples and tests; prefer a file).
    ///
    /// # Panics
    /// If the secret is empty.
    pub fn secret_str(self, secret: &str) -> Self {
        self.secret(SharedSecret::from_string(secret.to_string()).expect("a non-empty secret"))
    }

    /// Set the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Register an operation with default options.
    pub fn register<O: Operation>(self, name: &str, op: O) -> Result<Self, Error> {
        self.register_with(name, op, OpOptions::default())
    }

    /// Register an operation with options.
    pub fn register_with<O: Operation>(
        mut self,
        name: &str,
        op: O,
        options: OpOptions,
    ) -> Result<Self, Error> {
        self.registry.register(name, op, options)?;
        Ok(self)
    }

    /// Use a prepared registry (the daemon builds one from its config).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Keep held requests (and TOTP enrolments) in this SQLite file, created
    /// root-only. Needed by any operation with out-of-channel stages.
    pub fn pending_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(path.into());
        self
    }

    /// Send emailed codes through this SMTP server (enables the `email` method).
    pub fn smtp(self, smtp: SmtpConfig) -> Self {
        self.smtp_with_timeout(smtp, regent_model::smtp::DEFAULT_SMTP_TIMEOUT)
    }

    /// [`ServiceBuilder::smtp`] with a limit on sending one message.
    pub fn smtp_with_timeout(mut self, smtp: SmtpConfig, timeout: Duration) -> Self {
        self.mailer = Some((smtp, timeout));
        self
    }

    /// Add a custom out-of-channel method (see [`regent_auth::AuthMethod`]).
    pub fn auth_method(mut self, method: Arc<dyn AuthMethod>) -> Self {
        self.methods.push(method);
        self
    }

    /// Use a prepared engine instead of [`ServiceBuilder::pending_store`].
    pub fn auth_flow(mut self, flow: AuthFlow) -> Self {
        self.flow = Some(flow);
        self
    }

    /// Members of this group may list, approve and deny held requests (root always may).
    pub fn admin_group(mut self, group: Account) -> Self {
        self.admin_group = Some(group);
        self
    }

    /// TLS clients (by certificate name) who administer held requests like the
    /// admin group's members.
    pub fn admin_clients(mut self, clients: Vec<String>) -> Self {
        self.admin_clients = clients;
        self
    }

    /// Allow an administrator to approve their own request (default: refused).
    pub fn allow_self_approval(mut self, allow: bool) -> Self {
        self.allow_self_approval = allow;
        self
    }

    /// Resolve callers' names and groups with this resolver (default: the
    /// system's user database, cached for 5 s). Lookups run on tokio's blocking
    /// pool; see [`IdentityResolver`].
    pub fn identity_resolver(mut self, resolver: IdentityResolver) -> Self {
        self.identities = resolver;
        self
    }

    /// The methods for a flow over the store at `path`: the built-in ones (with
    /// this builder's mailer) and the added ones.
    fn methods_for(&mut self, path: &Path) -> Result<MethodRegistry, Error> {
        let totp = TotpStore::open(path)
            .map_err(|e| Error::Config(format!("TOTP store {}: {e}", path.display())))?;
        let mailer = match &self.mailer {
            Some((cfg, timeout)) => Some(Arc::new(
                Mailer::with_timeout(cfg, *timeout).map_err(|e| Error::Config(e.to_string()))?,
            )),
            None => None,
        };
        let mut methods = MethodRegistry::with_builtins(Some(Arc::new(totp)), mailer, 6);
        for m in std::mem::take(&mut self.methods) {
            methods.register(m);
        }
        Ok(methods)
    }

    /// Finish: open the pending store if one was given, and check that every
    /// stage an operation declares has a method.
    pub fn build(self) -> Result<Service, Error> {
        let tls = self.tls.as_ref().map(tls::TlsTransport::new).map(Arc::new);
        let (sockets, identities, shared) = self.snapshot(None)?;
        let shared = Arc::new(shared);
        Ok(Service {
            sockets,
            tls,
            tcp_bound: Mutex::new(None),
            identities,
            current: Arc::new(Current::new(shared)),
        })
    }

    /// The configuration this builder describes. With `running`, a reload's:
    /// the lasting state (counts, the bound on runs, the limits, the pending
    /// store, whose held requests survive) is the running service's.
    fn snapshot(
        mut self,
        running: Option<&Shared>,
    ) -> Result<(Vec<Arc<SocketEntry>>, IdentityResolver, Shared), Error> {
        let mut flow = self.flow.take();
        if flow.is_none() {
            let open = running.and_then(|r| r.flow.as_ref());
            if let Some(open) = open {
                // The store stays open (its path cannot change without a
                // restart): the same held requests, with this builder's methods.
                let methods = self.methods_for(open.store().path())?;
                flow = Some(open.reconfigured(methods, self.flow_options));
            } else if let Some(path) = self.store.clone() {
                let methods = self.methods_for(&path)?;
                flow = Some(
                    AuthFlow::open(&path, methods, self.flow_options).map_err(|e| {
                        Error::Config(format!("pending store {}: {e}", path.display()))
                    })?,
                );
            }
        }
        for (name, entry) in self.registry.iter() {
            if entry.options.auth.is_empty() {
                continue;
            }
            match &flow {
                None => {
                    return Err(Error::Config(format!(
                        "operation {name} requires {} but no pending store is configured",
                        pending::stage_names(&entry.options.auth).join(", ")
                    )))
                }
                Some(f) => f
                    .check_stages(&pending::stage_names(&entry.options.auth))
                    .map_err(|e| Error::Config(format!("operation {name}: {e}")))?,
            }
        }
        let sockets: Vec<Arc<SocketEntry>> =
            std::iter::once(SocketEntry::new(self.socket, Exposure::everything()))
                .chain(self.more_sockets)
                .map(Arc::new)
                .collect();
        sockets::check_entries(&sockets, |op| self.registry.get(op).is_some())?;
        let secret = match running {
            Some(r) if self.keep_secret => r.secret.clone(),
            _ => self.secret.map(|s| Arc::new(s.into_digest())),
        };
        // A reload's builder without TLS options keeps the running material.
        let tls = match &self.tls {
            Some(options) => Some(Arc::new(tls::TlsMaterial::load(options)?)),
            None => running.and_then(|r| r.tls.clone()),
        };
        let shared = match running {
            None => Shared {
                started_with: Arc::new(
                    self.registry
                        .iter()
                        .map(|(name, e)| (name.clone(), e.declaration.clone()))
                        .collect(),
                ),
                registry: self.registry,
                secret,
                limiter: Arc::new(RateLimiter::new(Default::default())),
                poll_limiter: Arc::new(pending::poll_limiter()),
                runs: Arc::new(Semaphore::new(
                    self.limits.max_runs.clamp(1, Semaphore::MAX_PERMITS),
                )),
                slots: Arc::new(Semaphore::new(self.limits.max_connections)),
                started: std::time::Instant::now(),
                activated: Arc::default(),
                status_extra: self.status_extra,
                limits: self.limits,
                flow,
                admin_group: self.admin_group,
                admin_clients: self.admin_clients,
                allow_self_approval: self.allow_self_approval,
                refusals: Arc::new(audit::Refusals::new()),
                tls,
            },
            Some(r) => Shared {
                registry: self.registry.keeping_gates_of(&r.registry),
                secret,
                limiter: r.limiter.clone(),
                poll_limiter: r.poll_limiter.clone(),
                runs: r.runs.clone(),
                limits: r.limits.clone(),
                // A store is never closed by a reload: its held requests
                // answer (`denied`, if their operation went away).
                flow: flow.or_else(|| {
                    r.flow
                        .as_ref()
                        .map(|f| f.reconfigured(f.methods().clone(), self.flow_options))
                }),
                admin_group: self.admin_group,
                admin_clients: self.admin_clients,
                allow_self_approval: self.allow_self_approval,
                refusals: r.refusals.clone(),
                started_with: r.started_with.clone(),
                slots: r.slots.clone(),
                started: r.started,
                activated: r.activated.clone(),
                // A reload's builder has none: the embedding program's stays.
                status_extra: self.status_extra.or_else(|| r.status_extra.clone()),
                tls,
            },
        };
        Ok((sockets, self.identities, shared))
    }
}

/// A Regent service.
pub struct Service {
    /// The first is the one given to [`Service::builder`].
    sockets: Vec<Arc<SocketEntry>>,
    /// The configuration it was built with.
    /// The TLS transport's fixed part, if `[service.tcp]` is set (its material
    /// is in the configuration snapshot, and reloaded with it).
    tls: Option<Arc<tls::TlsTransport>>,
    /// Its listeners, once [`Service::bind_tcp`] bound them.
    tcp_bound: Mutex<Option<Vec<std::net::TcpListener>>>,
    /// The configuration new requests are served under (see [`Reloader`]).
    current: Arc<Current>,
    identities: IdentityResolver,
}

/// Stops a running service: its `Drop` does nothing; call [`ShutdownHandle::shutdown`].
#[derive(Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    /// Stop accepting, let requests in flight finish, then return from `serve`.
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl Service {
    /// Start building a service on `socket`.
    pub fn builder(socket: impl AsRef<Path>) -> ServiceBuilder {
        ServiceBuilder {
            socket: SocketOptions::new(socket.as_ref()),
            more_sockets: Vec::new(),
            registry: Registry::new(),
            secret: None,
            limits: Limits::default(),
            store: None,
            flow: None,
            methods: Vec::new(),
            mailer: None,
            admin_group: None,
            admin_clients: Vec::new(),
            allow_self_approval: false,
            flow_options: FlowOptions::default(),
            identities: IdentityResolver::default(),
            keep_secret: false,
            status_extra: None,
            tls: None,
        }
    }

    /// A handle that swaps this service's configuration while it serves.
    pub fn reloader(&self) -> Reloader {
        Reloader::new(self.current.clone())
    }

    /// The first socket's path.
    pub fn socket_path(&self) -> &PathBuf {
        &self.sockets[0].options.path
    }

    /// Serve listeners the service manager passed (see [`crate::activation`]):
    /// marks the service as activated (for `regent.status`). A passed socket's
    /// file belongs to the manager: it is left in place when the service stops
    /// (see [`BoundSocket::passed`]).
    pub fn socket_passed(self) -> Self {
        // (Lasting state: every later configuration shares the flag.)
        self.current
            .load()
            .activated
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Every socket, the first one first: what each offers, and the paths a
    /// listener passed by a service manager is matched by.
    pub fn sockets(&self) -> &[Arc<SocketEntry>] {
        &self.sockets
    }

    /// Bind the first socket (with its mode, owner and group). A service with
    /// several sockets binds them all with [`Service::bind_all`].
    pub fn bind(&self) -> Result<std::os::unix::net::UnixListener, Error> {
        self.bind_tcp()?;
        self.sockets[0].bind()
    }

    /// Bind the TCP addresses of the TLS transport, if there is one (kept until
    /// the service serves); [`Service::bind`] and [`Service::bind_all`] do it too.
    pub fn bind_tcp(&self) -> Result<(), Error> {
        self.bind_tcp_passed(Vec::new())
    }

    /// Like [`Service::bind_tcp`], serving the listeners a service manager
    /// passed instead of binding their addresses: `passed` is in the order of
    /// [`Service::tcp_listen`] (`None`, or a short list: bound as usual).
    pub fn bind_tcp_passed(&self, passed: Vec<Option<std::net::TcpListener>>) -> Result<(), Error> {
        if let Some(tls) = &self.tls {
            let mut bound = self.tcp_bound.lock().unwrap_or_else(|e| e.into_inner());
            if bound.is_none() {
                *bound = Some(tls.bind(passed)?);
            }
        }
        Ok(())
    }

    /// The TCP addresses `[service.tcp]` lists (`listen`), as configured;
    /// empty without it.
    pub fn tcp_listen(&self) -> &[std::net::SocketAddr] {
        self.tls.as_ref().map_or(&[], |t| &t.listen)
    }

    /// The TCP addresses the TLS transport listens on (the ports the system
    /// chose for port 0), once bound; empty without `[service.tcp]`.
    pub fn tcp_addresses(&self) -> Vec<std::net::SocketAddr> {
        let bound = self.tcp_bound.lock().unwrap_or_else(|e| e.into_inner());
        bound
            .iter()
            .flatten()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Bind every socket, each with its entry, ready for [`Service::run_on_sockets`].
    pub fn bind_all(&self) -> Result<Vec<BoundSocket>, Error> {
        self.bind_tcp()?;
        self.sockets
            .iter()
            .map(|e| Ok(BoundSocket::new(e.clone(), e.bind()?)))
            .collect()
    }

    /// The first socket's entry paired with `listener`.
    fn first(&self, listener: std::os::unix::net::UnixListener) -> Vec<BoundSocket> {
        vec![BoundSocket::new(self.sockets[0].clone(), listener)]
    }

    /// Bind every socket, serve until SIGTERM or SIGINT, finish requests in
    /// flight, remove the sockets. SIGHUP is logged and ignored (see
    /// [`Service::run_on_reloading`]). To stop on
    /// something else, see [`Service::run_until`].
    pub async fn run(self) -> Result<(), Error> {
        let bound = self.bind_all()?;
        self.run_on_sockets(bound).await
    }

    /// Serve on the first socket, already bound (see [`Service::bind`]), until
    /// SIGTERM or SIGINT, finish requests in flight, remove the socket. A
    /// service with several sockets uses [`Service::run_on_sockets`].
    pub async fn run_on(self, std_listener: std::os::unix::net::UnixListener) -> Result<(), Error> {
        let bound = self.first(std_listener);
        self.run_on_sockets(bound).await
    }

    /// Serve on sockets already bound (see [`Service::bind_all`]) until SIGTERM
    /// or SIGINT, finish requests in flight, remove the sockets this service
    /// bound. The daemon binds, drops privileges, and only then starts its
    /// runtime and calls this.
    pub async fn run_on_sockets(self, bound: Vec<BoundSocket>) -> Result<(), Error> {
        self.run_signalled(bound, None).await
    }

    /// [`Service::run_on_sockets`], calling `reload` on each SIGHUP (on the
    /// blocking pool, one at a time; the daemon's is
    /// [`crate::reload::DaemonReload::run`], which swaps the configuration
    /// through [`Service::reloader`]).
    pub async fn run_on_reloading(
        self,
        bound: Vec<BoundSocket>,
        reload: impl Fn() + Send + Sync + 'static,
    ) -> Result<(), Error> {
        self.run_signalled(bound, Some(Arc::new(reload))).await
    }

    async fn run_signalled(
        self,
        bound: Vec<BoundSocket>,
        reload: Option<OnHangup>,
    ) -> Result<(), Error> {
        let signals = Signals::install()?;
        let stop = async {
            signals.wait_for_stop(reload).await;
            tracing::info!("signal received: finishing requests in flight");
        };
        self.run_sockets_until(bound, stop).await
    }

    /// Bind, serve until `shutdown` completes, finish requests in flight (up to
    /// [`Limits::shutdown_grace`]), remove the socket. No signal handler is
    /// installed: the embedding program decides when to stop, e.g. with
    /// `tokio::signal::ctrl_c()` or a channel.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let bound = self.bind_all()?;
        self.run_sockets_until(bound, shutdown).await
    }

    /// [`Service::run_until`] on the first socket, already bound (see [`Service::bind`]).
    pub async fn run_on_until(
        self,
        std_listener: std::os::unix::net::UnixListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let bound = self.first(std_listener);
        self.run_sockets_until(bound, shutdown).await
    }

    /// [`Service::run_until`] on sockets already bound (see [`Service::bind_all`]).
    pub async fn run_sockets_until(
        self,
        bound: Vec<BoundSocket>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let (tx, rx) = watch::channel(false);
        // Only the sockets this service bound: a passed one is the manager's.
        let paths: Vec<PathBuf> = bound
            .iter()
            .filter(|b| !b.passed)
            .map(|b| b.entry.path().to_owned())
            .collect();
        let serve = self.serve_sockets(bound, rx);
        tokio::pin!(serve, shutdown);
        let mut stopping = false;
        // The watchdog is pinged from this event loop: a stuck loop stops pinging.
        let watchdog = crate::notify::watchdog_interval();
        let mut ping = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                r = &mut serve => break r,
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    crate::notify::stopping();
                    let _ = tx.send(true);
                }
                _ = ping.tick(), if watchdog.is_some() => crate::notify::watchdog(),
            }
        };
        for path in paths {
            let _ = std::fs::remove_file(&path);
        }
        result
    }

    /// Serve on the first socket's bound listener until `shutdown` turns true.
    pub async fn serve(
        self,
        listener: std::os::unix::net::UnixListener,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let bound = self.first(listener);
        self.serve_sockets(bound, shutdown).await
    }

    /// Serve on bound sockets until `shutdown` turns true. Every socket shares
    /// the service's connection limits (in all, per uid, and the reserve).
    pub async fn serve_sockets(
        self,
        bound: Vec<BoundSocket>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        for b in &bound {
            b.listener
                .set_nonblocking(true)
                .map_err(|e| Error::io("setting the listener non-blocking", e))?;
        }
        let shared = self.current.load();
        let acceptor = Arc::new(Acceptor {
            identities: self.identities,
            current: self.current.clone(),
            slots: shared.slots.clone(),
            reserve: shared
                .limits
                .reserved_connections
                .min(shared.limits.max_connections.saturating_sub(1)),
            per_uid: Arc::default(),
        });
        if shared.flow.is_some() {
            // Off the event loop and in the background: a store another process
            // holds locked does not delay listening.
            let s = shared.clone();
            tokio::spawn(async move {
                let Some(flow) = &s.flow else { return };
                match flow.purge_expired().await {
                    Ok(n) if n > 0 => {
                        tracing::info!(purged = n, "expired pending requests removed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purging expired pending requests"),
                }
            });
        }
        for b in &bound {
            let offered = b.entry.exposure.operations().map(Iterator::count);
            tracing::info!(
                socket = %b.entry.path().display(),
                operations = offered.unwrap_or(shared.registry.len()),
                admin = b.entry.exposure.admin(),
                acceptors = shared.limits.acceptors.max(1),
                "listening"
            );
        }
        // Thread-per-core: each extra acceptor is a thread with its own
        // single-threaded runtime accepting on the same listening socket, so a
        // connection is served start to finish on the thread that accepted it.
        let mut threads = Vec::new();
        let acceptors = shared.limits.acceptors.max(1);
        let operations = shared.registry.len();
        // Not kept: a reload must be able to drop this configuration (its
        // operations, and their Augeas workers).
        drop(shared);
        for i in 1..acceptors {
            let l = bound
                .iter()
                .map(|b| {
                    let l = b.listener.try_clone()?;
                    Ok(BoundSocket::new(b.entry.clone(), l))
                })
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| Error::io("cloning the listener", e))?;
            let a = acceptor.clone();
            let rx = shutdown.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("starting an acceptor runtime", e))?;
            let t = std::thread::Builder::new()
                .name(format!("regent-acceptor-{i}"))
                .spawn(move || runtime.block_on(a.accept_on_all(l, rx)))
                .map_err(|e| Error::io("starting an acceptor thread", e))?;
            threads.push(t);
        }
        let mut tls_loops = Vec::new();
        if let Some(tls) = &self.tls {
            let tcp = self
                .tcp_bound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let tcp = match tcp {
                Some(b) => b,
                None => tls.bind(Vec::new())?,
            };
            // TLS clients are offered what the first socket offers (every
            // operation); `allow.clients` and `admin_clients` decide who may call.
            let entry = self.sockets[0].clone();
            for l in tcp {
                if let Ok(addr) = l.local_addr() {
                    tracing::info!(address = %addr, "listening for TLS clients");
                }
                tls_loops.push(tokio::spawn(tls::accept_loop(
                    self.current.clone(),
                    tls.clone(),
                    entry.clone(),
                    l,
                    shutdown.clone(),
                )));
            }
        }
        // Listening already (connections wait in the backlog), and the daemon
        // dropped its privileges before starting this runtime.
        let paths: Vec<String> = bound
            .iter()
            .map(|b| b.entry.path().display().to_string())
            .collect();
        crate::notify::ready_with_status(&format!(
            "serving {} operation(s) on {}",
            operations,
            paths.join(", ")
        ));
        let result = acceptor.accept_on_all(bound, shutdown).await;
        for l in tls_loops {
            match l.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "TLS listener"),
                Err(e) => tracing::warn!(error = %e, "TLS listener task"),
                Ok(Ok(())) => {}
            }
        }
        for t in threads {
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || t.join())
                .await
                .unwrap_or(Ok(Ok(())))
            {
                tracing::warn!(error = %e, "acceptor thread");
            }
        }
        tracing::info!("stopped");
        result
    }

    /// Bind and serve in the background; returns the shutdown handle and the task.
    /// Convenient for tests and for embedding.
    pub fn spawn(
        self,
    ) -> Result<(ShutdownHandle, tokio::task::JoinHandle<Result<(), Error>>), Error> {
        let bound = self.bind_all()?;
        let (tx, rx) = watch::channel(false);
        let handle = ShutdownHandle(Arc::new(tx));
        let task = tokio::spawn(self.serve_sockets(bound, rx));
        Ok((handle, task))
    }
}

/// Accepts connections and serves each on the runtime it runs on.
struct Acceptor {
    /// The configuration: each connection is admitted under the current one,
    /// each of its requests served under the one current when it starts.
    current: Arc<Current>,
    identities: IdentityResolver,
    slots: Arc<Semaphore>,
    /// Slots only root and administrators may take.
    reserve: usize,
    per_uid: Arc<Mutex<HashMap<u32, usize>>>,
}

/// What an admitted connection holds until it ends: its slot and its uid's count.
struct Admitted {
    _slot: OwnedSemaphorePermit,
    _per_uid: PerUid,
}

impl Acceptor {
    /// Accept on every socket, on this runtime, until `shutdown`.
    async fn accept_on_all(
        self: Arc<Self>,
        bound: Vec<BoundSocket>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let mut bound = bound.into_iter();
        let Some(first) = bound.next() else {
            return Ok(());
        };
        let others: Vec<_> = bound
            .map(|b| tokio::spawn(self.clone().accept_loop(b, shutdown.clone())))
            .collect();
        let mut result = self.accept_loop(first, shutdown).await;
        for task in others {
            let r = task
                .await
                .unwrap_or_else(|e| Err(Error::io("accept loop", std::io::Error::other(e))));
            result = result.and(r);
        }
        result
    }

    /// Accept on one socket until `shutdown`, then wait (up to the grace) for
    /// this loop's connections to finish their requests in flight.
    async fn accept_loop(
        self: Arc<Self>,
        bound: BoundSocket,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let entry = bound.entry;
        let listener = UnixListener::from_std(bound.listener)
            .map_err(|e| Error::io("registering the listener", e))?;
        // For what no reload changes (the limits, the refusal counts); not the
        // whole configuration, which a reload must be able to drop (its
        // operations, and their Augeas workers).
        let (limits, refusals) = {
            let first = self.current.load();
            (first.limits.clone(), Arc::clone(&first.refusals))
        };
        let connections = TaskTracker::new();
        // A timer that is always armed on this runtime. Tokio's timer driver wakes
        // its own thread (an eventfd write and an extra epoll round) whenever a new
        // timer is due before every armed one; without this tick, each connection's
        // idle timeout would be the only timer and cost that wake-up.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = tick.tick() => {
                    refusals.flush(false);
                    continue;
                }
                _ = shutdown.changed() => break,
            };
            let (stream, _) = match accepted {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let cred = match stream.peer_cred() {
                Ok(c) => c,
                Err(e) => {
                    // No kernel identity: deny by closing.
                    tracing::warn!(error = %e, "no peer credentials; closing");
                    continue;
                }
            };
            let per_uid =
                PerUid::acquire(&self.per_uid, cred.uid(), limits.max_connections_per_uid);
            let permit = self.slots.clone().try_acquire_owned().ok();
            let (Some(per_uid), Some(permit)) = (per_uid, permit) else {
                connections.spawn(refuse_busy(stream));
                continue;
            };
            // Only the reserve is left: for root and administrators.
            let admin_only = cred.uid() != 0 && self.slots.available_permits() < self.reserve;
            let held = Admitted {
                _slot: permit,
                _per_uid: per_uid,
            };
            let (pid, uid, gid) = (cred.pid(), cred.uid(), cred.gid());
            let shared = &self.current.load();
            // A cache hit is served at once; a miss is looked up off the loop by
            // the connection's own task, so only this connection waits for it.
            match self.identities.cached(pid, uid, gid) {
                Some(caller) if admin_only && !shared.is_admin(&caller) => {
                    connections.spawn(refuse_busy(stream));
                }
                Some(caller) => {
                    let current = self.current.clone();
                    let rx = shutdown.clone();
                    let entry = entry.clone();
                    connections.spawn(async move {
                        connection::serve(current, stream, Arc::new(caller), &entry, None, rx)
                            .await;
                        drop(held);
                    });
                }
                None => {
                    let this = self.clone();
                    let rx = shutdown.clone();
                    let entry = entry.clone();
                    connections.spawn(Box::pin(async move {
                        this.resolve_then_serve(stream, &entry, (pid, uid, gid), admin_only, rx)
                            .await;
                        drop(held);
                    }));
                }
            }
        }
        drop(listener);
        finish_in_flight(connections, &limits).await;
        refusals.flush(true);
        Ok(())
    }

    /// A connection whose caller is not cached: look the caller up on the
    /// blocking pool (this task alone waits, holding its connection slot), then
    /// serve it. The wait ends early at shutdown, or after `idle_timeout` (a
    /// user database that does not answer), closing the connection with `busy`.
    async fn resolve_then_serve(
        &self,
        stream: UnixStream,
        entry: &SocketEntry,
        (pid, uid, gid): (Option<i32>, u32, u32),
        admin_only: bool,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let shared = self.current.load();
        let stopping = async {
            if shutdown.changed().await.is_err() {
                // No one can stop the service any more: only the timeout applies.
                std::future::pending::<()>().await;
            }
        };
        let lookup = self.identities.resolve(pid, uid, gid);
        let resolved = tokio::select! {
            r = tokio::time::timeout(shared.limits.idle_timeout, lookup) => r,
            () = stopping => return,
        };
        let caller = match resolved {
            Ok(caller) => caller,
            Err(_elapsed) => {
                tracing::warn!(
                    uid,
                    gid,
                    "the user database did not answer within idle_timeout; closing"
                );
                return refuse_busy(stream).await;
            }
        };
        if admin_only && !shared.is_admin(&caller) {
            return refuse_busy(stream).await;
        }
        // Each request loads the configuration it is served under: holding this
        // one for the connection's life would keep it (its operations and their
        // Augeas workers) past a reload.
        drop(shared);
        connection::serve(
            self.current.clone(),
            stream,
            Arc::new(caller),
            entry,
            None,
            shutdown,
        )
        .await;
    }
}

/// Answer `busy` (within a second) and close.
async fn refuse_busy(mut stream: UnixStream) {
    let line = Response::error(ErrorCode::Busy).to_line();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&line)).await;
}

/// After the listener stopped: wait (up to the shutdown grace) for the
/// connections' requests in flight.
pub(crate) async fn finish_in_flight(connections: TaskTracker, limits: &Limits) {
    connections.close();
    let grace = limits.shutdown_grace;
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {grace:?}; exiting anyway");
    }
}

/// A connection slot counted against one uid; released on drop.
type PerUid = Counted<u32>;

/// A count held against one key of a map while it lives (the connections of a
/// uid or of a TLS client, the handshakes of an address); released on drop.
pub(crate) struct Counted<K: std::hash::Hash + Eq + Clone> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Clone> Counted<K> {
    /// Count one more for `key`, unless it already has `max`.
    pub(crate) fn acquire(
        counts: &Arc<Mutex<HashMap<K, usize>>>,
        key: K,
        max: usize,
    ) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted {
            counts: counts.clone(),
            key,
        })
    }
}

impl<K: std::hash::Hash + Eq + Clone> Drop for Counted<K> {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// What the service does on SIGHUP (see [`Service::run_on_reloading`]).
type OnHangup = Arc<dyn Fn() + Send + Sync>;

/// The signals the service handles: SIGTERM and SIGINT stop it; SIGHUP reloads
/// (or, with nothing to reload, is logged and otherwise ignored), so a hangup
/// can never kill the daemon.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Install the handlers, then unblock SIGHUP for this thread (the daemon
    /// blocks it from its first instruction so that a hangup during start-up
    /// cannot kill it either; a blocked signal waits until now).
    fn install() -> Result<Signals, Error> {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |kind, name: &str| {
            signal(kind).map_err(|e| Error::io(format!("installing the {name} handler"), e))
        };
        let signals = Signals {
            term: handler(SignalKind::terminate(), "SIGTERM")?,
            int: handler(SignalKind::interrupt(), "SIGINT")?,
            hup: handler(SignalKind::hangup(), "SIGHUP")?,
        };
        let mut hup = nix::sys::signal::SigSet::empty();
        hup.add(nix::sys::signal::Signal::SIGHUP);
        hup.thread_unblock()
            .map_err(|e| Error::io("unblocking SIGHUP", e.into()))?;
        Ok(signals)
    }

    /// Resolves on SIGTERM or SIGINT; on each SIGHUP, reloads (off the event
    /// loop, while requests go on being served) or logs it, and keeps waiting.
    /// A stop signal during a reload is acted on once the reload is done.
    async fn wait_for_stop(mut self, reload: Option<OnHangup>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => match &reload {
                    Some(reload) => {
                        let reload = reload.clone();
                        if let Err(e) = tokio::task::spawn_blocking(move || reload()).await {
                            tracing::error!(error = %e, "configuration reload failed");
                        }
                    }
                    None => tracing::warn!(
                        "SIGHUP received: this service has nothing to reload; \
                         still serving with the configuration loaded at start"
                    ),
                },
            }
        }
    }
}
