//! What would lower the tier: for a judged change, the smallest differences that route it to
//! a more automated tier, each found by re-deciding the modified change with the same
//! [`Judge`] that decided the original. Nothing here predicts a tier: every suggestion's
//! tier is the decision of the change it describes.
//!
//! Two kinds of difference are searched, each on its own:
//!
//! * **Removing changed files.** A candidate is a set of the change's files (a rename is one
//!   file: it moves both its paths) left out of the change, never all of them (an empty
//!   change is not a change). Per more automated tier, the suggestions are the removal sets
//!   of the fewest files whose re-decision gives that tier or a more automated one. Sets
//!   are tried exhaustively by increasing size, up to [`Budget::max_removed`] files; a set
//!   of size `k` is *minimal* because every set of fewer files was re-decided first and
//!   none reached the tier. Beyond that size, the search tries removing every file of one
//!   touched node (and every unmapped file, and every governance file) at once: such a
//!   suggestion reaches the tier but is not claimed minimal.
//! * **Assuming passing evidence.** A candidate is a set of planned suites, not already
//!   passing, taken as passing at the head (no failed test, so no regression; scans stay
//!   as reported), searched the same way by increasing size, then all of them at once
//!   (full coverage).
//!
//! Policies are arbitrary Cedar, so a decision need not be monotone in the files removed or
//! the suites assumed: the search prunes nothing on that assumption. It stops looking for a
//! tier once that tier's smallest size is found, and it stops altogether when its budget of
//! re-decisions or its deadline runs out; then [`Search::cut`] says so, and a tier not
//! found is [`Found::Unknown`], never [`Found::Nothing`]. "Nothing reaches this tier" is
//! only said of a search that tried every candidate of its kind.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use countersign_evidence::SuiteStatus;
use countersign_graph::EntityRef;
use countersign_policy::Tier;
use countersign_repo::ChangedPath;

use crate::evaluate::{Judge, Judged};

/// How much the search may do.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Re-decisions the whole search may make.
    pub decisions: u32,
    /// The largest set of files (or of suites) tried exhaustively.
    pub max_removed: usize,
    /// The search stops once this instant has passed (checked before each re-decision).
    pub deadline: Option<Instant>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            decisions: 256,
            max_removed: 3,
            deadline: None,
        }
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatIf {
    /// The change's own tier.
    pub tier: Tier,
    /// One entry per tier more automated than `tier`, most automated first.
    pub targets: Vec<Target>,
    pub search: Search,
}

/// How the search ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Re-decisions made.
    pub decisions: u32,
    pub budget: u32,
    pub max_removed: usize,
    /// Why the search stopped before trying every candidate it meant to; `None` when it did
    /// not stop early.
    pub cut: Option<Cut>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The budget of re-decisions ran out.
    Decisions,
    /// The deadline passed.
    Deadline,
}

impl Cut {
    pub fn as_str(self) -> &'static str {
        match self {
            Cut::Decisions => "decisions",
            Cut::Deadline => "deadline",
        }
    }
}

/// The ways to one more automated tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tier: Tier,
    pub removals: Found,
    pub evidence: Found,
}

/// The outcome of searching one kind of difference for one tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Differences that reach the tier, fewest files (or suites) first.
    Some(Vec<Suggestion>),
    /// Every candidate of this kind was re-decided: none reaches the tier.
    Nothing,
    /// The search did not try every candidate (size bound, budget or deadline) and found
    /// none: whether one exists is not known.
    Unknown,
}

/// One difference and the tier its re-decision gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub difference: Difference,
    /// The tier of the modified change: the target or a more automated one.
    pub tier: Tier,
    /// Every smaller difference of the same kind was re-decided and none reached the target.
    pub minimal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Leave these changed files out of the change (for a rename, both paths; the entry is
    /// named by its new path). `group` names what they are when the set is every file of
    /// one touched node, the unmapped files or the governance files.
    Remove {
        paths: Vec<String>,
        group: Option<Group>,
    },
    /// Passing evidence for these planned suites.
    AssumePassing { suites: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    Node(EntityRef),
    Unmapped,
    Governance,
}

/// At most this many alternatives are listed per tier and kind.
const ALTERNATIVES: usize = 5;

/// Searches what would lower `judged`'s tier, `judged` being `judge`'s decision of
/// `changes` (as [`crate::evaluate`] makes it).
pub(crate) fn search(
    judge: &Judge<'_>,
    changes: &[ChangedPath],
    judged: &Judged,
    budget: &Budget,
) -> WhatIf {
    let tier = judged.decision.tier;
    let targets: Vec<Tier> = Tier::ALL.into_iter().filter(|t| *t < tier).collect();
    let mut run = Run {
        budget,
        decisions: 0,
        cut: None,
    };

    // Removals: the files, sorted as the change lists them.
    let n = changes.len();
    let mut removals = Kind::new(&targets, n, n.saturating_sub(1));
    let mut removal_memo: HashMap<Vec<usize>, Tier> = HashMap::new();
    let mut decide_without = |run: &mut Run<'_>, removed: &[usize]| -> Option<Tier> {
        if let Some(tier) = removal_memo.get(removed) {
            return Some(*tier);
        }
        run.spend()?;
        let kept: Vec<ChangedPath> = changes
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed.contains(i))
            .map(|(_, c)| c.clone())
            .collect();
        let tier = judge.judge(&kept, &BTreeSet::new()).decision.tier;
        removal_memo.insert(removed.to_vec(), tier);
        Some(tier)
    };

    // Evidence: planned suites not already passing.
    let passing: BTreeSet<&str> = judged
        .assessment
        .iter()
        .flat_map(|a| a.suites.iter())
        .filter(|s| s.status == SuiteStatus::Passed)
        .map(|s| s.suite.as_str())
        .collect();
    let suites: Vec<String> = judged
        .plan
        .suites
        .iter()
        .map(|s| s.suite.clone())
        .filter(|s| !passing.contains(s.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut evidence = Kind::new(&targets, suites.len(), suites.len());
    let mut evidence_memo: HashMap<Vec<usize>, Tier> = HashMap::new();
    let mut decide_assuming = |run: &mut Run<'_>, assumed: &[usize]| -> Option<Tier> {
        if let Some(tier) = evidence_memo.get(assumed) {
            return Some(*tier);
        }
        run.spend()?;
        let assume: BTreeSet<String> = assumed.iter().map(|i| suites[*i].clone()).collect();
        let tier = judge.judge(changes, &assume).decision.tier;
        evidence_memo.insert(assumed.to_vec(), tier);
        Some(tier)
    };

    let groups = groups(judged, changes);
    let max_size = budget.max_removed.max(1);
    'sizes: for size in 1..=max_size {
        if !removals.exhaust_size(&mut run, size, &mut decide_without) {
            break 'sizes;
        }
        if !evidence.exhaust_size(&mut run, size, &mut decide_assuming) {
            break 'sizes;
        }
        if size == 1 {
            // Cheap and telling, so tried early: whole nodes and full coverage.
            for (group, members) in &groups {
                if members.len() < 2 || members.len() >= n {
                    continue;
                }
                let Some(got) = decide_without(&mut run, members) else {
                    break 'sizes;
                };
                removals.record_beyond(members, Some(group.clone()), got);
            }
            if suites.len() >= 2 {
                let all: Vec<usize> = (0..suites.len()).collect();
                let Some(got) = decide_assuming(&mut run, &all) else {
                    break 'sizes;
                };
                evidence.record_beyond(&all, None, got);
            }
        }
        if removals.done() && evidence.done() {
            break;
        }
    }

    let to_suggestion_removal = |members: &[usize], group: Option<Group>| Difference::Remove {
        paths: members.iter().map(|i| changes[*i].path.clone()).collect(),
        group,
    };
    let to_suggestion_evidence =
        |members: &[usize], _group: Option<Group>| Difference::AssumePassing {
            suites: members.iter().map(|i| suites[*i].clone()).collect(),
        };
    let targets = targets
        .iter()
        .enumerate()
        .map(|(t, target)| Target {
            tier: *target,
            removals: removals.found(t, &to_suggestion_removal),
            evidence: evidence.found(t, &to_suggestion_evidence),
        })
        .collect();
    WhatIf {
        tier,
        targets,
        search: Search {
            decisions: run.decisions,
            budget: budget.decisions,
            max_removed: max_size,
            cut: run.cut,
        },
    }
}

/// The files of each touched node, of the unmapped paths and of the governance paths, as
/// indexes into `changes`: the candidates removed as a whole.
fn groups(judged: &Judged, changes: &[ChangedPath]) -> Vec<(Group, Vec<usize>)> {
    let members = |paths: &[String]| -> Vec<usize> {
        let paths: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
        changes
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                paths.contains(c.path.as_str())
                    || matches!(&c.kind, countersign_repo::ChangeKind::Renamed { from } if paths.contains(from.as_str()))
            })
            .map(|(i, _)| i)
            .collect()
    };
    let impact = &judged.impact;
    let mut out: Vec<(Group, Vec<usize>)> = impact
        .touched
        .iter()
        .map(|node| (Group::Node(node.entity.clone()), members(&node.paths)))
        .collect();
    out.push((Group::Unmapped, members(&impact.unmapped)));
    out.push((Group::Governance, members(&impact.governance_paths)));
    let mut seen = BTreeSet::new();
    out.retain(|(_, m)| !m.is_empty() && seen.insert(m.clone()));
    out
}

/// The budget being spent.
struct Run<'a> {
    budget: &'a Budget,
    decisions: u32,
    cut: Option<Cut>,
}

impl Run<'_> {
    /// Takes one re-decision from the budget; `None` (and the reason kept) when the budget
    /// or the deadline is spent.
    fn spend(&mut self) -> Option<()> {
        if self.cut.is_some() {
            return None;
        }
        if self.decisions >= self.budget.decisions {
            self.cut = Some(Cut::Decisions);
            return None;
        }
        if self.budget.deadline.is_some_and(|d| Instant::now() >= d) {
            self.cut = Some(Cut::Deadline);
            return None;
        }
        self.decisions += 1;
        Some(())
    }
}

/// A whole-group candidate that reached a target: its members, what they are, its tier.
type GroupHit = (Vec<usize>, Option<Group>, Tier);

/// One kind of difference being searched, for every target tier.
struct Kind {
    targets: Vec<Tier>,
    /// How many things there are to pick from (files, or suites).
    candidates: usize,
    /// The largest candidate set allowed (removals: all files but one).
    limit: usize,
    /// Per target: the exhaustive hits of the smallest size found so far.
    exact: Vec<Vec<(Vec<usize>, Tier)>>,
    /// Per target: hits of the whole-group candidates, not known to be minimal.
    beyond: Vec<Vec<GroupHit>>,
    /// Every size up to this one was tried in full.
    exhausted: usize,
}

impl Kind {
    fn new(targets: &[Tier], candidates: usize, limit: usize) -> Kind {
        Kind {
            targets: targets.to_vec(),
            candidates,
            limit,
            exact: vec![Vec::new(); targets.len()],
            beyond: vec![Vec::new(); targets.len()],
            exhausted: 0,
        }
    }

    /// Every target has its minimal suggestions, or no candidate is left.
    fn done(&self) -> bool {
        self.exhausted >= self.limit || self.exact.iter().all(|hits| !hits.is_empty())
    }

    /// Re-decides every candidate of `size` for the targets still open; false when the
    /// budget ran out on the way.
    fn exhaust_size(
        &mut self,
        run: &mut Run<'_>,
        size: usize,
        decide: &mut dyn FnMut(&mut Run<'_>, &[usize]) -> Option<Tier>,
    ) -> bool {
        if self.done() || size > self.limit {
            return true;
        }
        let open: Vec<usize> = (0..self.targets.len())
            .filter(|t| self.exact[*t].is_empty())
            .collect();
        let n = self.candidates;
        let mut combination: Vec<usize> = (0..size).collect();
        loop {
            // Once every open target has its alternatives, the rest of this size adds
            // nothing that is listed.
            if open.iter().all(|t| self.exact[*t].len() >= ALTERNATIVES) {
                break;
            }
            let Some(got) = decide(run, &combination) else {
                return false;
            };
            for t in &open {
                if got <= self.targets[*t] && self.exact[*t].len() < ALTERNATIVES {
                    self.exact[*t].push((combination.clone(), got));
                }
            }
            if !next_combination(&mut combination, n) {
                break;
            }
        }
        self.exhausted = size;
        true
    }

    fn record_beyond(&mut self, members: &[usize], group: Option<Group>, got: Tier) {
        for (t, target) in self.targets.iter().enumerate() {
            if got <= *target && self.beyond[t].len() < ALTERNATIVES {
                self.beyond[t].push((members.to_vec(), group.clone(), got));
            }
        }
    }

    fn found(&self, t: usize, describe: &dyn Fn(&[usize], Option<Group>) -> Difference) -> Found {
        if !self.exact[t].is_empty() {
            return Found::Some(
                self.exact[t]
                    .iter()
                    .map(|(members, got)| Suggestion {
                        difference: describe(members, None),
                        tier: *got,
                        minimal: true,
                    })
                    .collect(),
            );
        }
        if !self.beyond[t].is_empty() {
            let mut hits = self.beyond[t].clone();
            hits.sort_by_key(|(members, _, _)| members.len());
            return Found::Some(
                hits.into_iter()
                    .map(|(members, group, got)| Suggestion {
                        difference: describe(&members, group),
                        tier: got,
                        minimal: false,
                    })
                    .collect(),
            );
        }
        if self.exhausted >= self.limit {
            Found::Nothing
        } else {
            Found::Unknown
        }
    }
}

/// Advances `combination` (strictly increasing indexes below `n`) to the next one in
/// lexicographic order; false after the last.
fn next_combination(combination: &mut [usize], n: usize) -> bool {
    let k = combination.len();
    for i in (0..k).rev() {
        if combination[i] < n - k + i {
            combination[i] += 1;
            for j in i + 1..k {
                combination[j] = combination[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_in_order() {
        let mut c = vec![0, 1];
        let mut all = vec![c.clone()];
        while next_combination(&mut c, 4) {
            all.push(c.clone());
        }
        assert_eq!(
            all,
            [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]].map(|a| a.to_vec())
        );
    }
}
