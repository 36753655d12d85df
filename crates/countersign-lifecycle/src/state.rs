//! [`ProposalState`] and [`Verdict`]: the lifecycle's vocabulary, parsed once where a row is
//! read; an unknown value is an error, never a default.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    Open,
    /// Required validation suites have no accepted evidence for the head yet.
    AwaitingEvidence,
    AwaitingApproval,
    Authorized,
    /// A rejection stands on the current head.
    Rejected,
    /// The authorized head reached a protected branch. Final.
    Merged,
    /// Closed in favour of another proposal. Final.
    Superseded,
    /// Closed by its author or an admin. Final.
    Closed,
}

impl ProposalState {
    pub const ALL: [ProposalState; 8] = [
        ProposalState::Open,
        ProposalState::AwaitingEvidence,
        ProposalState::AwaitingApproval,
        ProposalState::Authorized,
        ProposalState::Rejected,
        ProposalState::Merged,
        ProposalState::Superseded,
        ProposalState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::Open => "open",
            ProposalState::AwaitingEvidence => "awaiting_evidence",
            ProposalState::AwaitingApproval => "awaiting_approval",
            ProposalState::Authorized => "authorized",
            ProposalState::Rejected => "rejected",
            ProposalState::Merged => "merged",
            ProposalState::Superseded => "superseded",
            ProposalState::Closed => "closed",
        }
    }

    /// Whether the state ends the proposal: no head move, verdict, evidence or close after.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ProposalState::Merged | ProposalState::Superseded | ProposalState::Closed
        )
    }

    /// Whether evidence may still change the decision: until the proposal is final. An
    /// authorized proposal is not merged yet, so evidence arriving now (a failing run, a
    /// finding) is weighed like any other and can lapse the authorization: the order in
    /// which evidence arrives never changes the outcome.
    pub fn takes_evidence(self) -> bool {
        !self.is_final()
    }
}

impl fmt::Display for ProposalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored or sent value that names nothing the lifecycle knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for ProposalState {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProposalState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "proposal state",
                value: s.to_owned(),
                expected: "open, awaiting_evidence, awaiting_approval, authorized, rejected, merged, superseded, closed",
            })
    }
}

/// A person's verdict on one head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "approve" => Ok(Verdict::Approve),
            "reject" => Ok(Verdict::Reject),
            _ => Err(UnknownValue {
                what: "verdict",
                value: s.to_owned(),
                expected: "approve, reject",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_verdicts_round_trip_and_refuse_the_unknown() {
        for state in ProposalState::ALL {
            assert_eq!(state.as_str().parse::<ProposalState>(), Ok(state));
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, state.as_str());
        }
        for verdict in [Verdict::Approve, Verdict::Reject] {
            assert_eq!(verdict.as_str().parse::<Verdict>(), Ok(verdict));
        }
        assert_eq!(
            "Authorized"
                .parse::<ProposalState>()
                .unwrap_err()
                .to_string(),
            "unknown proposal state \"Authorized\": expected one of open, awaiting_evidence, awaiting_approval, authorized, rejected, merged, superseded, closed"
        );
        assert!("approved".parse::<Verdict>().is_err());
        assert!("".parse::<Verdict>().is_err());
    }
}
