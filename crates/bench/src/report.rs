//! The figures of one run, their medians over rounds, the ratios against the bare
//! server and the targets, and how they are printed.

use crate::load::Figures;
use std::fmt;
use std::time::Duration;

/// A load shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One persistent connection, one client, requests in turn.
    Persistent,
    /// A connection per request, one client.
    PerRequest,
    /// A connection per request, several concurrent clients.
    PerRequestConcurrent(usize),
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Persistent => write!(f, "persistent, 1 client"),
            Mode::PerRequest => write!(f, "conn/request, 1 client"),
            Mode::PerRequestConcurrent(n) => write!(f, "conn/request, {n} clients"),
        }
    }
}

/// The median of `values` (0 when empty).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Each field's median over several runs (errors are summed).
pub fn median_figures(runs: &[Figures]) -> Figures {
    Figures {
        rps: median(runs.iter().map(|f| f.rps)),
        p50_us: median(runs.iter().map(|f| f.p50_us)),
        p90_us: median(runs.iter().map(|f| f.p90_us)),
        p99_us: median(runs.iter().map(|f| f.p99_us)),
        n: runs.iter().map(|f| f.n).sum(),
        errs: runs.iter().map(|f| f.errs).sum(),
    }
}

/// One server in one mode, every round.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The server's label.
    pub server: String,
    /// The load shape.
    pub mode: Mode,
    /// One result per round.
    pub rounds: Vec<Figures>,
}

/// A legitimate caller's latency with and without attackers, every round.
#[derive(Debug, Clone)]
pub struct AttackMeasured {
    /// The server's label.
    pub server: String,
    /// The caller alone (connection per request), per round.
    pub quiet: Vec<Figures>,
    /// The caller while the attackers loop, per round.
    pub attacked: Vec<Figures>,
    /// What the attackers got done, per round.
    pub attackers: Vec<Figures>,
}

impl AttackMeasured {
    fn per_round(&self) -> impl Iterator<Item = f64> + '_ {
        self.quiet
            .iter()
            .zip(&self.attacked)
            .map(|(q, a)| a.p50_us / q.p50_us)
    }

    /// Median over rounds of (p50 under attack / p50 alone).
    pub fn slowdown(&self) -> f64 {
        median(self.per_round())
    }

    /// Median over rounds of this slowdown divided by `floor`'s in the same round:
    /// how much worse than the slowdown the attackers' CPU use alone causes.
    pub fn slowdown_vs(&self, floor: &AttackMeasured) -> f64 {
        median(self.per_round().zip(floor.per_round()).map(|(a, b)| a / b))
    }
}

/// A target from the issue, checked against one server.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is compared, e.g. `persistent p50 vs bare`.
    pub what: String,
    /// The Regent variant.
    pub server: String,
    /// The measured ratio (median of per-round ratios).
    pub ratio: f64,
    /// The limit.
    pub limit: f64,
    /// True when the ratio must be at least the limit, false when at most.
    pub at_least: bool,
}

impl Target {
    /// Whether the ratio meets the limit.
    pub fn pass(&self) -> bool {
        if self.at_least {
            self.ratio >= self.limit
        } else {
            self.ratio <= self.limit
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Online CPUs.
    pub cpus: usize,
    /// Rounds run.
    pub rounds: usize,
    /// Measured time per run.
    pub duration: Duration,
    /// Bytes in the request line, newline included.
    pub request_bytes: usize,
    /// The reply every server sends to the no-op request.
    pub reply: String,
    /// Who the legitimate clients ran as.
    pub caller: String,
    /// Who the attackers ran as.
    pub attacker: String,
    /// How many attackers.
    pub attackers: usize,
    /// Label of the bare server.
    pub bare: String,
    /// Every server in every mode.
    pub measured: Vec<Measured>,
    /// The attack measurements.
    pub attacks: Vec<AttackMeasured>,
    /// The targets.
    pub targets: Vec<Target>,
    /// Further figures of the daemon (command runs, memory, many connections),
    /// one line each.
    pub extras: Vec<String>,
}

impl Report {
    /// The measurements of `server` in `mode`.
    pub fn get(&self, server: &str, mode: Mode) -> Option<&Measured> {
        self.measured
            .iter()
            .find(|m| m.server == server && m.mode == mode)
    }

    /// True when every target passed.
    pub fn all_pass(&self) -> bool {
        self.targets.iter().all(Target::pass)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Regent round-trip benchmark: no-op operation, {}-byte request line, reply {}",
            self.request_bytes, self.reply
        )?;
        writeln!(
            f,
            "servers as root, clients as {}; {} CPUs; {} rounds x {:.1} s per figure; medians over rounds",
            self.caller,
            self.cpus,
            self.rounds,
            self.duration.as_secs_f64()
        )?;
        let w = self
            .measured
            .iter()
            .map(|m| m.server.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        writeln!(f)?;
        writeln!(
            f,
            "{:<w$} {:<26} {:>10} {:>9} {:>9} {:>9} {:>6}  {:>8}",
            "server", "mode", "req/s", "p50 µs", "p90 µs", "p99 µs", "errs", "vs bare"
        )?;
        let mut last_mode = None;
        for m in &self.measured {
            if last_mode.is_some() && last_mode != Some(m.mode) {
                writeln!(f)?;
            }
            last_mode = Some(m.mode);
            let fig = median_figures(&m.rounds);
            let vs = if m.server == self.bare {
                String::new()
            } else {
                match self.get(&self.bare, m.mode) {
                    Some(b) => {
                        let (ratio, what) = match m.mode {
                            Mode::Persistent => {
                                (per_round(&b.rounds, &m.rounds, |x| x.p50_us), "p50")
                            }
                            _ => (per_round(&b.rounds, &m.rounds, |x| x.rps), "rps"),
                        };
                        format!("{ratio:.2}x {what}")
                    }
                    None => String::new(),
                }
            };
            writeln!(
                f,
                "{:<w$} {:<26} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>6}  {:>8}",
                m.server,
                m.mode.to_string(),
                fig.rps,
                fig.p50_us,
                fig.p90_us,
                fig.p99_us,
                fig.errs,
                vs
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "attack: the caller ({}, conn/request) alone vs while {} clients as {} loop on wrong secrets",
            self.caller, self.attackers, self.attacker
        )?;
        writeln!(
            f,
            "{:<w$} {:>12} {:>15} {:>9} {:>13} {:>16} {:>6}",
            "server",
            "p50 alone µs",
            "p50 attacked µs",
            "slowdown",
            "vs bare's",
            "attackers req/s",
            "errs"
        )?;
        let floor = self.attacks.iter().find(|a| a.server == self.bare);
        for a in &self.attacks {
            let quiet = median_figures(&a.quiet);
            let hit = median_figures(&a.attacked);
            let att = median_figures(&a.attackers);
            let vs = match floor {
                Some(b) if b.server != a.server => format!("{:.2}x", a.slowdown_vs(b)),
                _ => String::new(),
            };
            writeln!(
                f,
                "{:<w$} {:>12.1} {:>15.1} {:>8.2}x {:>13} {:>16.0} {:>6}",
                a.server,
                quiet.p50_us,
                hit.p50_us,
                a.slowdown(),
                vs,
                att.rps,
                hit.errs
            )?;
        }
        if floor.is_some() {
            writeln!(
                f,
                "(the bare server's slowdown is the floor: what the attackers' own CPU use costs the caller on this machine)"
            )?;
        }
        writeln!(f)?;
        writeln!(f, "targets (ratios are medians of per-round ratios):")?;
        for t in &self.targets {
            writeln!(
                f,
                "  {:<46} {:<w$} {:>6.2}x  (target {} {:.1}x)  {}",
                t.what,
                t.server,
                t.ratio,
                if t.at_least { ">=" } else { "<=" },
                t.limit,
                if t.pass() { "PASS" } else { "MISS" }
            )?;
        }
        if !self.extras.is_empty() {
            writeln!(f)?;
            writeln!(f, "the daemon (regent serve) beyond the no-op:")?;
            for line in &self.extras {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

/// Median over rounds of `key(measured) / key(base)`.
pub fn per_round(base: &[Figures], measured: &[Figures], key: impl Fn(&Figures) -> f64) -> f64 {
    median(base.iter().zip(measured).map(|(b, m)| key(m) / key(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_targets() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median([]), 0.0);
        let t = Target {
            what: "x".into(),
            server: "s".into(),
            ratio: 0.79,
            limit: 0.8,
            at_least: true,
        };
        assert!(!t.pass());
        let t = Target {
            ratio: 1.5,
            limit: 1.5,
            at_least: false,
            ..t
        };
        assert!(t.pass());
        let f = |p50| Figures {
            p50_us: p50,
            ..Default::default()
        };
        assert_eq!(
            per_round(&[f(10.0), f(20.0)], &[f(15.0), f(20.0)], |x| x.p50_us),
            1.25
        );
    }
}
