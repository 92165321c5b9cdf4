//! What the two matrices share: [`crate::diff`] (`shm_open`) and [`crate::sem`] (`sem_open`)
//! differ in their calls, operations and prior states, not in how a pass runs them.
//!
//! A pass runs every name x operation x prior state on the native side and on the subject's,
//! each case from a clean slate: both sides unlink the name, then build the prior state (a
//! case whose state cannot be built on both sides is skipped). Where the two observations
//! differ, the first entry of the table that covers the case explains it; the [`Report`]
//! counts what each entry explains, and an entry that applies to the pass but explains nothing
//! is stale.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fmt;
use std::fs::File;
use std::path::Path;

use nix::errno::Errno;

use crate::diff::Name;
use crate::table::{result_matches, selects, Entry, Table};

/// The other user of the foreign prior states (uid and gid).
pub const FOREIGN_UID: u32 = 65534;

/// An operation of a matrix: an open with its arguments (`A`), or an unlink.
#[derive(Debug, Clone)]
pub struct Op<A> {
    /// Label, e.g. `RDWR|CREAT mode=1640`, `open|CREAT|EXCL mode=644 value=max+1` or
    /// `unlink`; its words, split at `|` and spaces, are what a table's `ops` select.
    pub label: String,
    /// The open's arguments, or `None` for the unlink.
    pub open: Option<A>,
}

impl<A> Op<A> {
    /// The words of the label.
    pub(crate) fn words(&self) -> Vec<&str> {
        self.label.split(['|', ' ']).collect()
    }
}

/// The result of one case on one side, and what a plain open of the name shows after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation<O> {
    /// The operation's own outcome.
    pub result: O,
    /// A plain open of the name right after.
    pub after: O,
}

/// A prior state of the object, as a matrix builds it.
pub trait PriorState: Copy + Eq + 'static {
    /// Every state, in the order a pass runs them.
    fn all() -> &'static [Self];
    /// The word tables use.
    fn word(self) -> &'static str;
    /// Owned by [`FOREIGN_UID`]: needs root to build.
    fn foreign(self) -> bool;
    /// Run on the subject's side with cross-user sharing on (then the subject must behave as
    /// the native side does, so no entry may name the state).
    fn shared(self) -> bool;
}

/// Which user runs a pass: `root` can set up foreign-owned objects and bypasses modes;
/// `user` (any other uid) sees modes enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// euid 0.
    Root,
    /// Any other euid.
    User,
}

impl Pass {
    /// The pass for this process's euid.
    pub fn current() -> Pass {
        if nix::unistd::geteuid().is_root() {
            Pass::Root
        } else {
            Pass::User
        }
    }

    /// `root` or `user`, as tables (their `user` key) and reports name the pass.
    pub fn word(self) -> &'static str {
        match self {
            Pass::Root => "root",
            Pass::User => "user",
        }
    }
}

/// One case where the two sides differ.
#[derive(Debug, Clone)]
pub struct Divergence<O> {
    /// Name class, operation label, state word.
    pub case: (String, String, &'static str),
    /// The native side's observation.
    pub native: Observation<O>,
    /// The subject's observation.
    pub tmpshm: Observation<O>,
    /// The table entry that explains it, if any.
    pub explained_by: Option<String>,
}

/// The outcome of a pass.
#[derive(Debug, Clone)]
pub struct Report<O> {
    /// Which user ran it.
    pub pass: Pass,
    /// The subject's word, as the lines of a divergence name its side (`shmdir`, `preload`,
    /// `strict`).
    pub subject: &'static str,
    /// How the report's first line names the pass: the subject's word, after `sem ` in the
    /// semaphore matrix.
    pub title: &'static str,
    /// Cases run on both sides.
    pub cases: usize,
    /// Cases skipped because the prior state could not be built on both sides.
    pub skipped: usize,
    /// Notes: the two sides' versions and directories, the states skipped.
    pub notes: Vec<String>,
    /// Every divergence.
    pub divergences: Vec<Divergence<O>>,
    /// Entries that apply to this pass, with how many divergences each explains.
    pub uses: BTreeMap<String, usize>,
}

impl<O> Report<O> {
    /// Divergences no entry explains.
    pub fn unexplained(&self) -> Vec<&Divergence<O>> {
        self.divergences
            .iter()
            .filter(|d| d.explained_by.is_none())
            .collect()
    }

    /// Entries that apply to this pass but explain nothing: the divergence is gone.
    pub fn stale(&self) -> Vec<&str> {
        self.uses
            .iter()
            .filter(|(_, &n)| n == 0)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// No unexplained divergence and no stale entry.
    pub fn ok(&self) -> bool {
        self.unexplained().is_empty() && self.stale().is_empty()
    }
}

impl<O: fmt::Display> fmt::Display for Report<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pass {} ({}): {} cases, {} divergences; {} skipped (the prior state needs a name both sides accept)",
            self.pass.word(),
            self.title,
            self.cases,
            self.divergences.len(),
            self.skipped
        )?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        for (id, n) in &self.uses {
            writeln!(f, "  [{id}] explains {n}")?;
        }
        for d in self.unexplained() {
            writeln!(
                f,
                "  UNEXPLAINED {} / {} / {}: native {} then {}; {} {} then {}",
                d.case.0,
                d.case.1,
                d.case.2,
                d.native.result,
                d.native.after,
                self.subject,
                d.tmpshm.result,
                d.tmpshm.after
            )?;
        }
        for id in self.stale() {
            writeln!(
                f,
                "  STALE [{id}]: applies to this pass but no longer diverges"
            )?;
        }
        Ok(())
    }
}

/// A subject of one matrix: how to reach its side and the native one, and the matrix's cases.
pub(crate) trait Matrix {
    /// One implementation under comparison.
    type Side;
    /// The arguments of an open.
    type Args;
    /// A prior state.
    type State: PriorState;
    /// What a caller sees of one call.
    type Outcome: Clone + fmt::Debug + PartialEq;

    /// The prefix of the subject's temporary directory.
    const DIR_PREFIX: &'static str;
    /// Stands between the user and the subject's word in the tag that makes the names unique.
    const TAG: &'static str;

    /// The subject's word ([`Report::subject`]).
    fn word(&self) -> &'static str;
    /// [`Report::title`].
    fn title(&self) -> &'static str;
    /// The native side, and how the report's first note describes it.
    fn native(&self) -> Result<(Self::Side, String), String>;
    /// How the report's first note describes the subject.
    fn describe(&self) -> String;
    /// The subject's side in `dir`.
    fn side(&self, dir: &Path, cross_user: bool) -> Self::Side;
    /// The names of a pass, made unique by `tag`.
    fn names(&self, tag: &str) -> Vec<Name>;
    /// The operations.
    fn ops(&self) -> Vec<Op<Self::Args>>;
    /// Whether `entry` applies to a pass with these names: by default, when its `user` is the
    /// pass's.
    fn applies(&self, entry: &Entry, pass: Pass, _names: &[Name]) -> bool {
        for_user(entry, pass)
    }
    /// A guard that keeps other passes from running at the same time, where the names on the
    /// native side would collide.
    fn lock(&self) -> Result<Option<File>, String> {
        Ok(None)
    }

    /// Builds `state` for `name` on `side`; false when it cannot.
    fn setup(side: &Self::Side, state: Self::State, name: &CStr) -> bool;
    /// Runs `op` on `side` and observes it.
    fn observe(side: &Self::Side, name: &CStr, op: &Op<Self::Args>) -> Observation<Self::Outcome>;
    /// Unlinks `name` on `side`.
    fn unlink(side: &Self::Side, name: &CStr) -> Result<(), Errno>;
    /// `ok` or the errno's name, as the table writes results.
    fn summary(outcome: &Self::Outcome) -> String;
}

/// The entry's `user` is `*` or the pass's.
pub(crate) fn for_user(entry: &Entry, pass: Pass) -> bool {
    entry.user == "*" || entry.user == pass.word()
}

/// Runs `subject`'s whole matrix in this process as its current user against the native
/// side, and checks it against `table`. Sets the umask to 022 (both sides then see the same
/// mode rule).
pub(crate) fn run<M: Matrix>(table: &Table, subject: &M) -> Result<Report<M::Outcome>, String> {
    nix::sys::stat::umask(tmpshm::Mode::from_bits_truncate(0o022));
    let pass = Pass::current();
    let (native, native_is) = subject.native()?;
    let dir = tempfile::Builder::new()
        .prefix(M::DIR_PREFIX)
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let ours = subject.side(dir.path(), false);
    let ours_shared = subject.side(dir.path(), true);
    let tag = format!(
        "{}{}{}{}",
        std::process::id(),
        pass.word(),
        M::TAG,
        subject.word()
    );
    let names = subject.names(&tag);
    let mut report = Report {
        pass,
        subject: subject.word(),
        title: subject.title(),
        cases: 0,
        skipped: 0,
        notes: vec![format!(
            "native: {native_is}, in /dev/shm; {}: {}, in {}",
            subject.word(),
            subject.describe(),
            dir.path().display()
        )],
        divergences: Vec::new(),
        uses: table
            .entries
            .iter()
            .filter(|e| subject.applies(e, pass, &names))
            .map(|e| (e.id.clone(), 0))
            .collect(),
    };
    let states: Vec<M::State> = M::State::all()
        .iter()
        .copied()
        .filter(|&s| {
            if s.foreign() && pass != Pass::Root {
                report.notes.push(format!(
                    "state {} skipped: chown to uid {FOREIGN_UID} needs root",
                    s.word()
                ));
                return false;
            }
            true
        })
        .collect();
    let ops = subject.ops();
    let _one_pass_at_a_time = subject.lock()?;
    for name in &names {
        let n = name.bytes.as_c_str();
        for &state in &states {
            let side = if state.shared() { &ours_shared } else { &ours };
            for op in &ops {
                // Ignore the results: most cases leave nothing behind.
                let _ = M::unlink(&native, n);
                let _ = M::unlink(side, n);
                if !(M::setup(&native, state, n) && M::setup(side, state, n)) {
                    report.skipped += 1;
                    continue;
                }
                report.cases += 1;
                let a = M::observe(&native, n, op);
                let b = M::observe(side, n, op);
                if a != b {
                    let results = (M::summary(&a.result), M::summary(&b.result));
                    let explained_by = explain(table, pass, name, op, state, results);
                    if let Some(id) = &explained_by {
                        *report.uses.entry(id.clone()).or_default() += 1;
                    }
                    report.divergences.push(Divergence {
                        case: (name.id.clone(), op.label.clone(), state.word()),
                        native: a,
                        tmpshm: b,
                        explained_by,
                    });
                }
            }
        }
        let _ = M::unlink(&native, n);
        let _ = M::unlink(&ours, n);
    }
    Ok(report)
}

/// The first entry of `table` that covers this divergence; `results` are the native side's
/// and the subject's, as [`Matrix::summary`] writes them.
fn explain<A, S: PriorState>(
    table: &Table,
    pass: Pass,
    name: &Name,
    op: &Op<A>,
    state: S,
    results: (String, String),
) -> Option<String> {
    let (nr, tr) = results;
    table
        .entries
        .iter()
        .find(|e| {
            for_user(e, pass)
                && selects(&e.names, &name.words, name.len)
                && selects(&e.ops, &op.words(), None)
                && selects(&e.states, &[state.word()], None)
                && result_matches(&e.native, &nr)
                && result_matches(&e.tmpshm, &tr)
        })
        .map(|e| e.id.clone())
}
