//! Evaluation: the first enabled rule matching a call decides it; otherwise allow.
//!
//! [`CompiledPolicy::evaluate`] looks only at rules that name the call's numbers (through the
//! exact-number hash, the prefix tries and the list memberships) plus rules whose source and
//! destination are both "any"; its cost depends on how many rules concern these numbers, not on
//! how many rules the policy has. [`CompiledPolicy::explain`] walks every rule in order and says
//! why each did or did not match; tests check that both always agree.

use smallvec::SmallVec;
use tollgate_number::E164;

use crate::compile::{CompiledPattern, CompiledPolicy, CompiledRule, SideIndex};
use crate::decision::{CallQuery, Decision, Direction, MatchedRule};
use crate::velocity::{NoCounters, VelocityCounters};

type Candidates = SmallVec<[u32; 16]>;

impl SideIndex {
    /// Appends the ids of rules this side names `number` in (unsorted, may repeat).
    fn candidates(&self, number: E164, policy: &CompiledPolicy, out: &mut Candidates) {
        if let Some(rules) = self.exact.get(&number.as_u64()) {
            out.extend_from_slice(rules);
        }
        if !self.prefixes.is_empty() {
            let digits = number.digits();
            self.prefixes.for_each_prefix_of(digits.as_bytes(), |_, rules| out.extend_from_slice(rules));
        }
        for (list, rules) in &self.lists {
            if policy.lists[*list].contains(number) {
                out.extend_from_slice(rules);
            }
        }
    }
}

/// Why a rule did not match, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleVerdict {
    /// Rule name.
    pub rule: String,
    /// Line in the policy file.
    pub line: usize,
    /// `None` if the rule matched; otherwise the first condition that failed.
    pub failed: Option<String>,
}

impl CompiledRule {
    fn window_ok(&self, q: &CallQuery) -> bool {
        self.windows.is_empty() || self.windows.iter().any(|w| w.contains(q.at))
    }

    fn direction_ok(&self, d: Direction) -> bool {
        self.directions & d.bit() != 0
    }

    /// The velocity condition: counts the call (it reached this rule) and says whether the
    /// caller is above the limit. Rules without one pass.
    fn velocity_ok(&self, q: &CallQuery, counters: &dyn VelocityCounters) -> bool {
        match (self.velocity, q.source) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(v), Some(s)) => counters.count(&self.name, s, q.at.timestamp_micros(), v) > v.calls,
        }
    }

    /// The concurrent-calls condition (rules without one pass): the caller already has `n`
    /// calls in progress (ringing or answered, as probes see them), so this call would be one
    /// more than `n`. The call being decided is never among them: a probe counts a call once it
    /// rings, which is after its query.
    fn concurrent_ok(&self, q: &CallQuery, counters: &dyn VelocityCounters) -> bool {
        match (self.concurrent, q.source) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(n), Some(s)) => counters.concurrent(s) >= n,
        }
    }

    /// Checks a rule against a call from first principles (no index), naming the failed
    /// condition. Velocity is looked at without counting.
    fn check(
        &self,
        policy: &CompiledPolicy,
        q: &CallQuery,
        direction: Direction,
        counters: &dyn VelocityCounters,
    ) -> Option<&'static str> {
        if !self.enabled {
            return Some("disabled");
        }
        let side_matches = |patterns: &[CompiledPattern], number: Option<E164>| {
            patterns.iter().any(|p| match (p, number) {
                (CompiledPattern::Any, _) => true,
                (_, None) => false,
                (CompiledPattern::Exact(n), Some(x)) => *n == x.as_u64(),
                (CompiledPattern::Prefix(p), Some(x)) => x.starts_with(p),
                (CompiledPattern::List(l), Some(x)) => policy.lists[*l].contains(x),
            })
        };
        if !side_matches(&self.source, q.source) {
            return Some("source");
        }
        if !side_matches(&self.destination, Some(q.destination)) {
            return Some("destination");
        }
        if !self.direction_ok(direction) {
            return Some("direction");
        }
        if !self.window_ok(q) {
            return Some("time");
        }
        if self.concurrent.is_some() && !self.concurrent_ok(q, counters) {
            return Some("concurrent");
        }
        if let Some(v) = self.velocity {
            match q.source {
                None => return Some("velocity (no calling number)"),
                Some(s) if counters.peek(&self.name, s, q.at.timestamp_micros(), v) <= v.calls => {
                    return Some("velocity");
                }
                Some(_) => {}
            }
        }
        None
    }
}

impl CompiledPolicy {
    /// The direction of a call under this policy's internal ranges.
    pub fn direction(&self, q: &CallQuery) -> Direction {
        self.classifier.classify(q.source, q.destination)
    }

    /// Decides a call. Never fails: with no matching rule the answer is allow. Velocity rules
    /// never match (no memory of past calls); see [`CompiledPolicy::evaluate_with`].
    pub fn evaluate(&self, q: &CallQuery) -> Decision {
        self.evaluate_with(q, &NoCounters)
    }

    /// Decides a call, counting it in `counters` for each velocity rule it reaches.
    pub fn evaluate_with(&self, q: &CallQuery, counters: &dyn VelocityCounters) -> Decision {
        let direction = self.direction(q);
        let mut dst = Candidates::new();
        self.destination_index.candidates(q.destination, self, &mut dst);
        let mut src = Candidates::new();
        if let Some(s) = q.source {
            self.source_index.candidates(s, self, &mut src);
        }
        src.sort_unstable();
        src.dedup();

        // Rules that can match: named on both sides, named on one side and "any" on the other.
        let mut cand = Candidates::new();
        for &r in &dst {
            let rule = &self.rules[r as usize];
            if rule.source_any() || src.binary_search(&r).is_ok() {
                cand.push(r);
            }
        }
        for &r in &src {
            if self.rules[r as usize].destination_any() {
                cand.push(r);
            }
        }
        cand.sort_unstable();
        cand.dedup();

        // Walk those and the "any/any" rules together in file order: the first that passes
        // decides (so a velocity rule counts only the calls that reach it).
        let passes = |r: u32| {
            let rule = &self.rules[r as usize];
            rule.direction_ok(direction)
                && rule.window_ok(q)
                && rule.concurrent_ok(q, counters)
                && rule.velocity_ok(q, counters)
        };
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (cand.get(i), self.any_any.get(j)) {
                (Some(&a), Some(&b)) if a <= b => {
                    i += 1;
                    j += usize::from(a == b);
                    a
                }
                (_, Some(&b)) => {
                    j += 1;
                    b
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, None) => return Decision::default_allow(direction),
            };
            if passes(next) {
                return self.decision_for(next as usize, direction);
            }
        }
    }

    /// Decides a call by checking every rule in order, and reports each rule's verdict up to
    /// and including the one that matched. Slower than [`CompiledPolicy::evaluate`]; for
    /// operators (`tollgate lookup`) and tests.
    pub fn explain(&self, q: &CallQuery) -> (Decision, Vec<RuleVerdict>) {
        self.explain_with(q, &NoCounters)
    }

    /// [`CompiledPolicy::explain`] against live velocity counters, without counting the call.
    pub fn explain_with(&self, q: &CallQuery, counters: &dyn VelocityCounters) -> (Decision, Vec<RuleVerdict>) {
        let direction = self.direction(q);
        let mut verdicts = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let failed = rule.check(self, q, direction, counters);
            verdicts.push(RuleVerdict {
                rule: rule.name.to_string(),
                line: rule.line,
                failed: failed.map(String::from),
            });
            if failed.is_none() {
                return (self.decision_for(i, direction), verdicts);
            }
        }
        (Decision::default_allow(direction), verdicts)
    }

    fn decision_for(&self, index: usize, direction: Direction) -> Decision {
        let rule = &self.rules[index];
        Decision {
            rule: Some(MatchedRule { index, name: rule.name.clone(), line: rule.line }),
            action: rule.action.clone(),
            direction,
        }
    }
}
