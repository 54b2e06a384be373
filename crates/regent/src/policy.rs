//! Who may do what: every authorization decision of the service, computed from the
//! caller and the rules, without I/O.
//!
//! Two questions, two pure functions:
//! - [`evaluate`]: may this caller's request run now, wait for out-of-channel
//!   stages, or not at all? Asked of a new request once its data is validated
//!   (the pipeline's verdict), after each stage a held request passes (the
//!   operation may change the stages still to come), and once more when the last
//!   stage passed, just before the stored data runs.
//! - [`may_decide`]: may this caller see, approve or deny a held request? Root
//!   always may; otherwise the operation's `approve` rule if it has one, else the
//!   admin group; nobody approves their own request unless the service allows it.
//!
//! Both rest on one matching of callers against rules ([`may_call`]): an
//! operation may carry an [`AllowRule`]; callers matching any listed user or any
//! listed group are allowed, and TLS clients named in its `clients`; everyone
//! else is denied. A TLS client never matches `users` or `groups` (it has no
//! Unix account), a Unix peer never matches `clients`. An operation without a rule
//! is open to every caller who can reach the socket and holds the secret. Names
//! are compared with the names the user database gave for the caller's kernel ids.
//! The pipeline asks [`may_call`] before it looks at a request's data, so that a
//! caller who may not call an operation never has its data validated.

use crate::identity::Caller;
use crate::operation::Authorization;
use regent_model::{CallerKey, Peer, Stages, Verdict};

pub use regent_model::Account;

/// Anything that names a user or group: `"www-data"`, `"33"`, `33`.
pub trait ToAccount {
    /// The account.
    fn to_account(self) -> Account;
}

impl ToAccount for &str {
    fn to_account(self) -> Account {
        Account::parse(self).unwrap_or_else(|_| Account::Name(self.to_string()))
    }
}

impl ToAccount for String {
    fn to_account(self) -> Account {
        self.as_str().to_account()
    }
}

impl ToAccount for u32 {
    fn to_account(self) -> Account {
        Account::Id(self)
    }
}

impl ToAccount for Account {
    fn to_account(self) -> Account {
        self
    }
}

/// Users, groups and TLS clients allowed to call an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowRule {
    /// Allowed users.
    pub users: Vec<Account>,
    /// Allowed groups (primary or supplementary membership).
    pub groups: Vec<Account>,
    /// Allowed TLS clients, by certificate name.
    pub clients: Vec<String>,
}

impl From<&regent_config::AllowDecl> for AllowRule {
    fn from(d: &regent_config::AllowDecl) -> Self {
        AllowRule {
            users: d.users.clone(),
            groups: d.groups.clone(),
            clients: d.clients.clone(),
        }
    }
}

impl AllowRule {
    /// A rule allowing these users.
    pub fn users<P: ToAccount>(users: impl IntoIterator<Item = P>) -> Self {
        AllowRule {
            users: users.into_iter().map(ToAccount::to_account).collect(),
            ..AllowRule::default()
        }
    }

    /// A rule allowing these groups.
    pub fn groups<P: ToAccount>(groups: impl IntoIterator<Item = P>) -> Self {
        AllowRule {
            groups: groups.into_iter().map(ToAccount::to_account).collect(),
            ..AllowRule::default()
        }
    }

    /// A rule allowing these TLS clients (by certificate name).
    pub fn clients<S: Into<String>>(clients: impl IntoIterator<Item = S>) -> Self {
        AllowRule {
            clients: clients.into_iter().map(Into::into).collect(),
            ..AllowRule::default()
        }
    }

    /// Add groups to a rule.
    pub fn and_groups<P: ToAccount>(mut self, groups: impl IntoIterator<Item = P>) -> Self {
        self.groups
            .extend(groups.into_iter().map(ToAccount::to_account));
        self
    }
}

/// The outcome of a check that admits or refuses (a caller, an administrator).
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The caller may proceed.
    Allow,
    /// The caller may not; the reason is for the log, never for the client.
    Deny(String),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Whether `caller` may call an operation guarded by `allow` (`None`: everyone).
pub fn may_call(caller: &Caller, allow: Option<&AllowRule>) -> Decision {
    let Some(rule) = allow else {
        return Decision::Allow;
    };
    if let Peer::Tls { name, .. } = &caller.peer {
        return if rule.clients.iter().any(|c| c == name) {
            Decision::Allow
        } else {
            Decision::Deny(format!(
                "TLS client {name} is not among the allowed clients"
            ))
        };
    }
    let user_match = rule
        .users
        .iter()
        .any(|p| p.matches(caller.user.as_deref(), caller.uid));
    let group_match = rule.groups.iter().any(|g| in_group(caller, g));
    if user_match || group_match {
        Decision::Allow
    } else {
        Decision::Deny(format!(
            "user {} (uid {}) is not among the allowed users or groups",
            caller.user_or_uid(),
            caller.uid
        ))
    }
}

/// True when `caller` is in group `g` (primary or supplementary, by id or name).
fn in_group(caller: &Caller, g: &Account) -> bool {
    match g {
        Account::Id(id) => caller.in_group(*id),
        Account::Name(n) => caller.in_group_named(n),
    }
}

/// What the policy weighs of an operation ([`OpOptions::rule`](crate::OpOptions::rule)).
#[derive(Debug, Clone, Copy)]
pub struct OpRule<'a> {
    /// Who may call it; `None` is everyone holding the secret.
    pub allow: Option<&'a AllowRule>,
    /// The stages every request passes (the config's `auth = [...]`), in order.
    pub auth: &'a Stages,
}

/// Where a request stands when [`evaluate`] is asked.
#[derive(Debug, Clone, Copy)]
pub enum Standing<'a> {
    /// A new request whose data is validated, and what the operation's own
    /// `authorize` said of that data. Its stages are the operation's `auth`
    /// followed by those the operation requires, each once.
    New(&'a Authorization),
    /// A held request that just passed a stage, and what the operation's
    /// `after_stage` said: the stages it requires replace those still to come
    /// (none: it runs now).
    AfterStage(&'a Authorization),
    /// A held request whose last stage passed: its stored data, exactly as
    /// validated and approved, is about to run.
    StagesPassed,
}

/// The verdict on `caller`'s request for the operation ruled by `rule`.
///
/// A caller the rule does not admit is denied whatever the stage; then the
/// operation's word decides: a denial denies, required stages hold.
pub fn evaluate(caller: &Caller, rule: &OpRule<'_>, standing: Standing<'_>) -> Verdict {
    if let Decision::Deny(why) = may_call(caller, rule.allow) {
        return Verdict::Deny(why);
    }
    let stages: Stages = match standing {
        Standing::StagesPassed => return Verdict::Run,
        Standing::New(said) => match said {
            Authorization::Deny(why) => return Verdict::Deny(why.clone()),
            Authorization::Allow => rule.auth.clone(),
            Authorization::Require(more) => rule.auth.iter().chain(more).cloned().collect(),
        },
        Standing::AfterStage(said) => match said {
            Authorization::Deny(why) => return Verdict::Deny(why.clone()),
            Authorization::Allow => Stages::none(),
            Authorization::Require(rest) => rest.clone(),
        },
    };
    if stages.is_empty() {
        Verdict::Run
    } else {
        Verdict::Hold(stages)
    }
}

/// Who administers held requests besides root: the service's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admins<'a> {
    /// Members of this group decide the requests of operations without an
    /// `approve` rule (`admin_group`).
    pub group: Option<&'a Account>,
    /// Whether anyone may approve their own request (`allow_self_approval`).
    pub allow_self_approval: bool,
    /// TLS clients who decide like the admin group's members (`admin_clients`).
    pub clients: &'a [String],
}

/// What an administrator asks to do with a held request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// See it listed (and use the administrator channel at all).
    See,
    /// Approve its current stage.
    Approve,
    /// Deny it.
    Deny,
}

/// What [`may_decide`] weighs of a held request.
#[derive(Debug, Clone)]
pub struct HeldRequest<'a> {
    /// Its operation's `approve` rule; `None`: the administrators decide.
    pub approve: Option<&'a AllowRule>,
    /// Who made it (a uid, or a TLS client's name), when known (a page is
    /// filtered by operation before any request is read).
    pub requested_by: Option<CallerKey>,
    /// What the caller asks to do with it.
    pub action: AdminAction,
}

/// What [`may_decide`] answers; a refusal's reason is for the log.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminDecision {
    /// The caller may do what it asked.
    Allow,
    /// The caller does not administer these requests (the administrator
    /// channel answers as if the request did not exist).
    NotEntitled(String),
    /// The caller administers these requests but made this one, and may not
    /// approve it.
    OwnRequest(String),
}

impl AdminDecision {
    /// True for [`AdminDecision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, AdminDecision::Allow)
    }
}

/// `user NAME (uid N)`, or `TLS client NAME`: who a refusal's reason names.
fn who(caller: &Caller) -> String {
    match caller.client() {
        Some(name) => format!("TLS client {name}"),
        None => format!("user {} (uid {})", caller.user_or_uid(), caller.uid),
    }
}

/// Whether `caller` may do `held.action` with a held request.
///
/// Root always may decide; otherwise the operation's `approve` rule if it has
/// one, else membership of the admin group. Nobody, root included, approves a
/// request they made themselves unless the service allows self-approval.
pub fn may_decide(caller: &Caller, admins: &Admins<'_>, held: &HeldRequest<'_>) -> AdminDecision {
    let entitled = caller.is_root()
        || match (held.approve, &caller.peer) {
            (Some(rule), _) => may_call(caller, Some(rule)).is_allowed(),
            (None, Peer::Unix) => admins.group.is_some_and(|g| in_group(caller, g)),
            (None, Peer::Tls { name, .. }) => admins.clients.iter().any(|c| c == name),
        };
    if !entitled {
        return AdminDecision::NotEntitled(format!(
            "{} may not decide on these requests",
            who(caller)
        ));
    }
    let own = held.requested_by.as_ref() == Some(&caller.key());
    if held.action == AdminAction::Approve && own && !admins.allow_self_approval {
        return AdminDecision::OwnRequest(format!(
            "{} may not approve their own request",
            who(caller)
        ));
    }
    AdminDecision::Allow
}

/// May `caller` read the service's status (`regent.status`: connections, held
/// requests, the audit queue)? Root and members of `admin_group` only: the
/// status tells how busy the service is and how many requests wait, which is
/// the administrators' business. An `approve` rule of one operation does not
/// grant it.
pub fn may_read_status(caller: &Caller, admins: &Admins<'_>) -> AdminDecision {
    let entitled = caller.is_root()
        || match &caller.peer {
            Peer::Unix => admins.group.is_some_and(|g| in_group(caller, g)),
            Peer::Tls { name, .. } => admins.clients.iter().any(|c| c == name),
        };
    if entitled {
        return AdminDecision::Allow;
    }
    AdminDecision::NotEntitled(format!("{} may not read the service's status", who(caller)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use regent_model::Stage;

    #[test]
    fn only_root_and_administrators_read_the_status() {
        let group = Account::Name("ops".into());
        let clients = ["ops.example.org".to_string()];
        let admins = Admins {
            group: Some(&group),
            allow_self_approval: false,
            clients: &clients,
        };
        assert!(may_read_status(&caller(0, "root", &[]), &admins).is_allowed());
        let addr = "192.0.2.1:4000".parse().unwrap();
        let admin_client = Caller::tls("ops.example.org".into(), "01".into(), addr);
        assert!(may_read_status(&admin_client, &admins).is_allowed());
        let other_client = Caller::tls("panel".into(), "02".into(), addr);
        assert!(!may_read_status(&other_client, &admins).is_allowed());
        assert!(may_read_status(&caller(1000, "ann", &[(50, "ops")]), &admins).is_allowed());
        let plain = may_read_status(&caller(1001, "bob", &[(51, "web")]), &admins);
        assert!(matches!(plain, AdminDecision::NotEntitled(ref why) if why.contains("bob")));
        assert!(!may_read_status(&caller(1001, "bob", &[]), &Admins::default()).is_allowed());
    }

    fn caller(uid: u32, user: &str, groups: &[(u32, &str)]) -> Caller {
        Caller {
            peer: regent_model::Peer::Unix,
            pid: Some(42),
            uid,
            gid: groups.first().map(|g| g.0).unwrap_or(uid),
            user: Some(user.into()),
            groups: groups.iter().map(|g| g.0).collect(),
            group_names: groups.iter().map(|g| g.1.to_string()).collect(),
        }
    }

    fn stages(s: &[Stage]) -> Stages {
        s.iter().cloned().collect()
    }

    fn rule<'a>(allow: Option<&'a AllowRule>, auth: &'a Stages) -> OpRule<'a> {
        OpRule { allow, auth }
    }

    const RUN_NOW: Standing<'static> = Standing::New(&Authorization::Allow);

    #[test]
    fn no_rule_allows_everyone() {
        let none = Stages::none();
        let alice = caller(1000, "alice", &[]);
        assert_eq!(may_call(&alice, None), Decision::Allow);
        assert_eq!(evaluate(&alice, &rule(None, &none), RUN_NOW), Verdict::Run);
    }

    #[test]
    fn users_by_name_and_by_id() {
        let allow = AllowRule::users(["www-data", "1001"]);
        let none = Stages::none();
        let r = rule(Some(&allow), &none);
        assert!(evaluate(&caller(33, "www-data", &[]), &r, RUN_NOW).is_run());
        assert!(evaluate(&caller(1001, "bob", &[]), &r, RUN_NOW).is_run());
        assert!(evaluate(&caller(1000, "alice", &[]), &r, RUN_NOW).is_deny());
        // A user *named* like an allowed uid is not that uid.
        assert!(evaluate(&caller(5, "1001", &[]), &r, RUN_NOW).is_deny());
    }

    #[test]
    fn groups_by_name_and_by_id_including_supplementary() {
        let allow = AllowRule::groups(["admin"]).and_groups([27u32]);
        let none = Stages::none();
        let r = rule(Some(&allow), &none);
        let alice = caller(1000, "alice", &[(1000, "alice"), (50, "admin")]);
        assert!(evaluate(&alice, &r, RUN_NOW).is_run());
        let bob = caller(1001, "bob", &[(1001, "bob"), (27, "sudo")]);
        assert!(evaluate(&bob, &r, RUN_NOW).is_run());
        let eve = caller(1002, "eve", &[(1002, "eve")]);
        assert!(evaluate(&eve, &r, RUN_NOW).is_deny());
    }

    #[test]
    fn an_empty_rule_denies_everyone_even_root() {
        let allow = AllowRule::default();
        let root = caller(0, "root", &[(0, "root")]);
        assert!(!may_call(&root, Some(&allow)).is_allowed());
        let none = Stages::none();
        assert!(evaluate(&root, &rule(Some(&allow), &none), RUN_NOW).is_deny());
    }

    #[test]
    fn deny_reason_names_the_caller() {
        let allow = AllowRule::users(["root"]);
        let none = Stages::none();
        match evaluate(
            &caller(1000, "alice", &[]),
            &rule(Some(&allow), &none),
            RUN_NOW,
        ) {
            Verdict::Deny(r) => assert!(r.contains("alice") && r.contains("1000"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_operation_may_deny_an_allowed_caller() {
        let none = Stages::none();
        let said = Authorization::Deny("not on weekdays".into());
        let v = evaluate(
            &caller(0, "root", &[]),
            &rule(None, &none),
            Standing::New(&said),
        );
        assert_eq!(v, Verdict::Deny("not on weekdays".into()));
        // After a stage too.
        let v = evaluate(
            &caller(0, "root", &[]),
            &rule(None, &none),
            Standing::AfterStage(&said),
        );
        assert!(v.is_deny());
    }

    #[test]
    fn a_caller_the_rule_refuses_is_denied_whatever_the_operation_says() {
        let allow = AllowRule::users(["root"]);
        let auth = stages(&[Stage::Approval]);
        let r = rule(Some(&allow), &auth);
        let eve = caller(1002, "eve", &[]);
        for standing in [
            RUN_NOW,
            Standing::New(&Authorization::Require(stages(&[Stage::Totp]))),
            Standing::AfterStage(&Authorization::Allow),
            Standing::StagesPassed,
        ] {
            assert!(evaluate(&eve, &r, standing).is_deny(), "{standing:?}");
        }
    }

    #[test]
    fn hold_with_the_configured_stages_then_the_operations_in_order_without_repeats() {
        let auth = stages(&[Stage::Totp, Stage::Email]);
        let r = rule(None, &auth);
        let alice = caller(1000, "alice", &[]);
        // The configured stages alone.
        assert_eq!(evaluate(&alice, &r, RUN_NOW), Verdict::Hold(auth.clone()));
        // Then the operation's, each stage once, in order.
        let said = Authorization::require([
            Stage::Approval,
            Stage::Email,
            Stage::parse("yubikey").unwrap(),
        ]);
        assert_eq!(
            evaluate(&alice, &r, Standing::New(&said)),
            Verdict::Hold(stages(&[
                Stage::Totp,
                Stage::Email,
                Stage::Approval,
                Stage::parse("yubikey").unwrap(),
            ]))
        );
        // An operation without configured stages holds for its own only.
        let none = Stages::none();
        let only = Authorization::require([Stage::Approval]);
        assert_eq!(
            evaluate(&alice, &rule(None, &none), Standing::New(&only)),
            Verdict::Hold(stages(&[Stage::Approval]))
        );
    }

    #[test]
    fn after_a_stage_the_operation_replaces_the_stages_to_come() {
        let auth = stages(&[Stage::Totp, Stage::Approval]);
        let r = rule(None, &auth);
        let alice = caller(1000, "alice", &[]);
        // Enough: it runs now, whatever the configuration listed.
        assert_eq!(
            evaluate(&alice, &r, Standing::AfterStage(&Authorization::Allow)),
            Verdict::Run
        );
        let rest = Authorization::require([Stage::Email]);
        assert_eq!(
            evaluate(&alice, &r, Standing::AfterStage(&rest)),
            Verdict::Hold(stages(&[Stage::Email]))
        );
    }

    #[test]
    fn a_held_request_whose_stages_passed_runs_if_its_caller_is_still_allowed() {
        let allow = AllowRule::groups(["deploy"]);
        let auth = stages(&[Stage::Approval]);
        let r = rule(Some(&allow), &auth);
        let member = caller(1000, "alice", &[(1000, "alice"), (60, "deploy")]);
        assert_eq!(evaluate(&member, &r, Standing::StagesPassed), Verdict::Run);
        // Removed from the group while the request waited.
        let removed = caller(1000, "alice", &[(1000, "alice")]);
        assert!(evaluate(&removed, &r, Standing::StagesPassed).is_deny());
    }

    fn held(approve: Option<&AllowRule>, by: Option<u32>, action: AdminAction) -> HeldRequest<'_> {
        HeldRequest {
            approve,
            requested_by: by.map(CallerKey::Uid),
            action,
        }
    }

    #[test]
    fn the_admin_group_decides_by_name_or_id() {
        let admin = caller(1000, "alice", &[(1000, "alice"), (50, "regent-admins")]);
        let other = caller(1001, "bob", &[(1001, "bob")]);
        let by_name = Account::Name("regent-admins".into());
        let by_id = Account::Id(50);
        for group in [&by_name, &by_id] {
            let admins = Admins {
                group: Some(group),
                allow_self_approval: false,
                clients: &[],
            };
            for action in [AdminAction::See, AdminAction::Approve, AdminAction::Deny] {
                let h = held(None, Some(2000), action);
                assert!(may_decide(&admin, &admins, &h).is_allowed(), "{action:?}");
                assert!(!may_decide(&other, &admins, &h).is_allowed(), "{action:?}");
            }
        }
        // No admin group: only root.
        let h = held(None, Some(2000), AdminAction::Approve);
        assert!(!may_decide(&admin, &Admins::default(), &h).is_allowed());
        assert!(may_decide(&caller(0, "root", &[]), &Admins::default(), &h).is_allowed());
    }

    #[test]
    fn an_approve_rule_replaces_the_admin_group_for_its_operation() {
        let group = Account::Name("regent-admins".into());
        let admins = Admins {
            group: Some(&group),
            allow_self_approval: false,
            clients: &[],
        };
        let approve = AllowRule::users(["carol"]);
        let admin = caller(1000, "alice", &[(1000, "alice"), (50, "regent-admins")]);
        let carol = caller(1003, "carol", &[(1003, "carol")]);
        for action in [AdminAction::See, AdminAction::Approve, AdminAction::Deny] {
            let h = held(Some(&approve), Some(2000), action);
            assert!(may_decide(&carol, &admins, &h).is_allowed());
            assert!(!may_decide(&admin, &admins, &h).is_allowed());
            assert!(may_decide(&caller(0, "root", &[]), &admins, &h).is_allowed());
        }
    }

    #[test]
    fn nobody_approves_their_own_request_unless_allowed() {
        let group = Account::Id(50);
        let admins = Admins {
            group: Some(&group),
            allow_self_approval: false,
            clients: &[],
        };
        let admin = caller(1000, "alice", &[(1000, "alice"), (50, "admins")]);
        let root = caller(0, "root", &[]);
        for who in [&admin, &root] {
            let own = held(None, Some(who.uid), AdminAction::Approve);
            match may_decide(who, &admins, &own) {
                AdminDecision::OwnRequest(why) => assert!(why.contains("own request"), "{why}"),
                other => panic!("uid {} approving its own request: {other:?}", who.uid),
            }
            // They may still see it and deny (withdraw) it.
            for action in [AdminAction::See, AdminAction::Deny] {
                let h = held(None, Some(who.uid), action);
                assert!(may_decide(who, &admins, &h).is_allowed());
            }
        }
        let lenient = Admins {
            allow_self_approval: true,
            ..admins
        };
        let own = held(None, Some(admin.uid), AdminAction::Approve);
        assert!(may_decide(&admin, &lenient, &own).is_allowed());
        // Self-approval never makes a non-administrator one.
        let bob = caller(1001, "bob", &[(1001, "bob")]);
        let own = held(None, Some(bob.uid), AdminAction::Approve);
        assert!(!may_decide(&bob, &lenient, &own).is_allowed());
    }

    #[test]
    fn root_decides_every_request() {
        let approve = AllowRule::users(["carol"]);
        let root = caller(0, "root", &[(0, "root")]);
        for approve in [None, Some(&approve)] {
            for action in [AdminAction::See, AdminAction::Approve, AdminAction::Deny] {
                let h = held(approve, Some(1000), action);
                assert!(may_decide(&root, &Admins::default(), &h).is_allowed());
            }
        }
    }

    fn client(name: &str) -> Caller {
        Caller::tls(
            name.into(),
            "1000".into(),
            "192.0.2.1:4000".parse().unwrap(),
        )
    }

    #[test]
    fn tls_clients_match_only_clients_and_unix_peers_never_do() {
        let none = Stages::none();
        let mut allow = AllowRule::users(["panel", "0"]).and_groups(["panel", "4294967295"]);
        allow.clients.push("panel".into());
        let r = rule(Some(&allow), &none);
        assert!(evaluate(&client("panel"), &r, RUN_NOW).is_run());
        assert!(evaluate(&client("other"), &r, RUN_NOW).is_deny());
        // A client named like an allowed user, or with the TLS id, is not that user.
        let only_users = AllowRule::users(["panel", "4294967295"]).and_groups(["4294967295"]);
        let r = rule(Some(&only_users), &none);
        assert!(evaluate(&client("panel"), &r, RUN_NOW).is_deny());
        // A Unix user named like an allowed client is not that client.
        let only_clients = AllowRule::clients(["alice"]);
        let r = rule(Some(&only_clients), &none);
        assert!(evaluate(&caller(1000, "alice", &[]), &r, RUN_NOW).is_deny());
        assert!(evaluate(&client("alice"), &r, RUN_NOW).is_run());
        // Open operations are open to both.
        assert!(evaluate(&client("x"), &rule(None, &none), RUN_NOW).is_run());
    }

    #[test]
    fn admin_clients_decide_and_not_their_own() {
        let group = Account::Id(0);
        let clients = ["ops".to_string()];
        let admins = Admins {
            group: Some(&group),
            allow_self_approval: false,
            clients: &clients,
        };
        let ops = client("ops");
        let h = HeldRequest {
            approve: None,
            requested_by: Some(CallerKey::Client("panel".into())),
            action: AdminAction::Approve,
        };
        assert!(may_decide(&ops, &admins, &h).is_allowed());
        assert!(!may_decide(&client("panel"), &admins, &h).is_allowed());
        // The TLS id is not root, nor in group 0.
        assert!(!may_decide(&client("root"), &admins, &h).is_allowed());
        let own = HeldRequest {
            requested_by: Some(ops.key()),
            ..h
        };
        assert!(matches!(
            may_decide(&ops, &admins, &own),
            AdminDecision::OwnRequest(_)
        ));
        // A Unix uid is never the same requester as a client.
        let by_uid = HeldRequest {
            requested_by: Some(CallerKey::Uid(ops.uid)),
            ..h
        };
        assert!(may_decide(&ops, &admins, &by_uid).is_allowed());
    }
}
