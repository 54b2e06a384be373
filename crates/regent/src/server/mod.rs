//! The service: a listener on a Unix socket, a task per connection, and the
//! request pipeline ([`pipeline`]) that authenticates, authorizes and executes.
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
mod stream;
pub mod tls;

pub use listener::SocketOptions;
use regent_auth::RateLimiter;
pub use regent_auth::SharedSecret;
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

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    /// Only the secret's digest: the service never needs the secret itself.
    pub(crate) secret: Option<regent_auth::SecretDigest>,
    pub(crate) limiter: RateLimiter<CallerKey>,
    /// Approval polls per caller ([`pending::poll_limiter`]).
    pub(crate) poll_limiter: RateLimiter<CallerKey>,
    pub(crate) limits: Limits,
    pub(crate) flow: Option<AuthFlow>,
    pub(crate) admin_group: Option<Account>,
    /// TLS clients who administer like `admin_group`'s members.
    pub(crate) admin_clients: Vec<String>,
    pub(crate) allow_self_approval: bool,
    /// Refusals counted per uid, so a flood of them cannot flood the log.
    pub(crate) refusals: audit::Refusals,
    /// Operations running at once ([`Limits::max_runs`]).
    pub(crate) runs: Semaphore,
}

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
    tls: Option<TlsOptions>,
}

impl ServiceBuilder {
    /// Also serve TCP with mutual TLS ([`tls`]); the material is loaded (and the
    /// key's mode checked) by [`ServiceBuilder::build`].
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.tls = Some(options);
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

    /// Require this secret on every request. The service keeps only its digest
    /// (the secret's text is zeroized when [`ServiceBuilder::build`] runs).
    pub fn secret(mut self, secret: SharedSecret) -> Self {
        self.secret = Some(secret);
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

    /// Finish: open the pending store if one was given, and check that every
    /// stage an operation declares has a method.
    pub fn build(self) -> Result<Service, Error> {
        let mut flow = self.flow;
        if flow.is_none() {
            if let Some(path) = &self.store {
                let totp = TotpStore::open(path)
                    .map_err(|e| Error::Config(format!("TOTP store {}: {e}", path.display())))?;
                let mailer = match &self.mailer {
                    Some((cfg, timeout)) => Some(Arc::new(
                        Mailer::with_timeout(cfg, *timeout)
                            .map_err(|e| Error::Config(e.to_string()))?,
                    )),
                    None => None,
                };
                let mut methods = MethodRegistry::with_builtins(Some(Arc::new(totp)), mailer, 6);
                for m in self.methods {
                    methods.register(m);
                }
                flow = Some(
                    AuthFlow::open(path, methods, self.flow_options).map_err(|e| {
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
        let tls = self
            .tls
            .as_ref()
            .map(tls::TlsTransport::load)
            .transpose()?
            .map(Arc::new);
        Ok(Service {
            socket: self.socket,
            tls,
            tcp_bound: Mutex::new(None),
            identities: self.identities,
            shared: Arc::new(Shared {
                registry: self.registry,
                secret: self.secret.map(SharedSecret::into_digest),
                limiter: RateLimiter::new(Default::default()),
                poll_limiter: pending::poll_limiter(),
                runs: Semaphore::new(self.limits.max_runs.clamp(1, Semaphore::MAX_PERMITS)),
                limits: self.limits,
                flow,
                admin_group: self.admin_group,
                admin_clients: self.admin_clients,
                allow_self_approval: self.allow_self_approval,
                refusals: audit::Refusals::new(),
            }),
        })
    }
}

/// A Regent service.
pub struct Service {
    socket: SocketOptions,
    /// The TLS transport, if `[service.tcp]` is set.
    tls: Option<Arc<tls::TlsTransport>>,
    /// Its listeners, once [`Service::bind`] bound them.
    tcp_bound: Mutex<Option<Vec<std::net::TcpListener>>>,
    shared: Arc<Shared>,
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
            tls: None,
        }
    }

    /// The socket path.
    pub fn socket_path(&self) -> &PathBuf {
        &self.socket.path
    }

    /// Bind the socket (with its mode, owner and group), and the TCP addresses
    /// of the TLS transport if there is one (kept until the service serves).
    pub fn bind(&self) -> Result<std::os::unix::net::UnixListener, Error> {
        if let Some(tls) = &self.tls {
            let bound = tls.bind()?;
            *self.tcp_bound.lock().unwrap_or_else(|e| e.into_inner()) = Some(bound);
        }
        listener::bind(&self.socket)
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

    /// Bind, serve until SIGTERM or SIGINT, finish requests in flight, remove the socket.
    /// SIGHUP is logged and ignored. To stop on something else, see [`Service::run_until`].
    pub async fn run(self) -> Result<(), Error> {
        let std_listener = self.bind()?;
        self.run_on(std_listener).await
    }

    /// Serve on an already bound listener (see [`Service::bind`]) until SIGTERM or
    /// SIGINT, finish requests in flight, remove the socket. The daemon binds, drops
    /// privileges, and only then starts its runtime and calls this.
    pub async fn run_on(self, std_listener: std::os::unix::net::UnixListener) -> Result<(), Error> {
        let signals = Signals::install()?;
        let stop = async {
            signals.wait_for_stop().await;
            tracing::info!("signal received: finishing requests in flight");
        };
        self.run_on_until(std_listener, stop).await
    }

    /// Bind, serve until `shutdown` completes, finish requests in flight (up to
    /// [`Limits::shutdown_grace`]), remove the socket. No signal handler is
    /// installed: the embedding program decides when to stop, e.g. with
    /// `tokio::signal::ctrl_c()` or a channel.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let std_listener = self.bind()?;
        self.run_on_until(std_listener, shutdown).await
    }

    /// [`Service::run_until`] on an already bound listener (see [`Service::bind`]).
    pub async fn run_on_until(
        self,
        std_listener: std::os::unix::net::UnixListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let (tx, rx) = watch::channel(false);
        let path = self.socket.path.clone();
        let serve = self.serve(std_listener, rx);
        tokio::pin!(serve, shutdown);
        let mut stopping = false;
        let result = loop {
            tokio::select! {
                r = &mut serve => break r,
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    let _ = tx.send(true);
                }
            }
        };
        let _ = std::fs::remove_file(&path);
        result
    }

    /// Serve on a bound listener until `shutdown` turns true.
    pub async fn serve(
        self,
        listener: std::os::unix::net::UnixListener,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("setting the listener non-blocking", e))?;
        let shared = self.shared;
        let acceptor = Arc::new(Acceptor {
            identities: self.identities,
            slots: Arc::new(Semaphore::new(shared.limits.max_connections)),
            reserve: shared
                .limits
                .reserved_connections
                .min(shared.limits.max_connections.saturating_sub(1)),
            per_uid: Arc::default(),
            shared: shared.clone(),
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
        tracing::info!(
            socket = %self.socket.path.display(),
            operations = shared.registry.len(),
            acceptors = shared.limits.acceptors.max(1),
            "listening"
        );
        // Thread-per-core: each extra acceptor is a thread with its own
        // single-threaded runtime accepting on the same listening socket, so a
        // connection is served start to finish on the thread that accepted it.
        let mut threads = Vec::new();
        for i in 1..shared.limits.acceptors.max(1) {
            let l = listener
                .try_clone()
                .map_err(|e| Error::io("cloning the listener", e))?;
            let a = acceptor.clone();
            let rx = shutdown.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("starting an acceptor runtime", e))?;
            let t = std::thread::Builder::new()
                .name(format!("regent-acceptor-{i}"))
                .spawn(move || runtime.block_on(a.accept_loop(l, rx)))
                .map_err(|e| Error::io("starting an acceptor thread", e))?;
            threads.push(t);
        }
        let mut tls_loops = Vec::new();
        if let Some(tls) = &self.tls {
            let bound = self
                .tcp_bound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let bound = match bound {
                Some(b) => b,
                None => tls.bind()?,
            };
            for l in bound {
                if let Ok(addr) = l.local_addr() {
                    tracing::info!(address = %addr, "listening for TLS clients");
                }
                tls_loops.push(tokio::spawn(tls::accept_loop(
                    shared.clone(),
                    tls.clone(),
                    l,
                    shutdown.clone(),
                )));
            }
        }
        let result = acceptor.accept_loop(listener, shutdown).await;
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
        let listener = self.bind()?;
        let (tx, rx) = watch::channel(false);
        let handle = ShutdownHandle(Arc::new(tx));
        let task = tokio::spawn(self.serve(listener, rx));
        Ok((handle, task))
    }
}

/// Accepts connections and serves each on the runtime it runs on.
struct Acceptor {
    shared: Arc<Shared>,
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
    /// Accept until `shutdown`, then wait (up to the grace) for this loop's
    /// connections to finish their requests in flight.
    async fn accept_loop(
        self: Arc<Self>,
        listener: std::os::unix::net::UnixListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let listener = UnixListener::from_std(listener)
            .map_err(|e| Error::io("registering the listener", e))?;
        let shared = &self.shared;
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
                    shared.refusals.flush(false);
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
            let per_uid = PerUid::acquire(
                &self.per_uid,
                cred.uid(),
                shared.limits.max_connections_per_uid,
            );
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
            // A cache hit is served at once; a miss is looked up off the loop by
            // the connection's own task, so only this connection waits for it.
            match self.identities.cached(pid, uid, gid) {
                Some(caller) if admin_only && !shared.is_admin(&caller) => {
                    connections.spawn(refuse_busy(stream));
                }
                Some(caller) => {
                    let shared = shared.clone();
                    let rx = shutdown.clone();
                    connections.spawn(async move {
                        connection::serve(shared, stream, Arc::new(caller), rx).await;
                        drop(held);
                    });
                }
                None => {
                    let this = self.clone();
                    let rx = shutdown.clone();
                    connections.spawn(Box::pin(async move {
                        this.resolve_then_serve(stream, (pid, uid, gid), admin_only, rx)
                            .await;
                        drop(held);
                    }));
                }
            }
        }
        drop(listener);
        finish_in_flight(connections, &shared.limits).await;
        shared.refusals.flush(true);
        Ok(())
    }

    /// A connection whose caller is not cached: look the caller up on the
    /// blocking pool (this task alone waits, holding its connection slot), then
    /// serve it. The wait ends early at shutdown, or after `idle_timeout` (a
    /// user database that does not answer), closing the connection with `busy`.
    async fn resolve_then_serve(
        &self,
        stream: UnixStream,
        (pid, uid, gid): (Option<i32>, u32, u32),
        admin_only: bool,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let shared = &self.shared;
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
        connection::serve(shared.clone(), stream, Arc::new(caller), shutdown).await;
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

/// The signals the service handles: SIGTERM and SIGINT stop it; SIGHUP is
/// logged and otherwise ignored (reloading the config is not supported yet), so
/// a hangup can never kill the daemon.
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

    /// Resolves on SIGTERM or SIGINT; logs each SIGHUP and keeps waiting.
    async fn wait_for_stop(mut self) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => tracing::warn!(
                    "SIGHUP received: reloading the configuration is not supported yet; \
                     still serving with the configuration loaded at start"
                ),
            }
        }
    }
}
