//! Who authored a change: a person, an agent, a CI runner or the system itself.
//!
//! Parsing only; what an author may do is decided by policies and invariants.

use std::fmt;
use std::str::FromStr;

/// A named principal, written `kind:name` (`human:alice`, `agent:fixbot`, `runner:ci`,
/// `system:countersign`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    Human(String),
    Agent(String),
    Runner(String),
    System(String),
}

/// What kind of principal: the part of `kind:name` before the colon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalKind {
    Human,
    Agent,
    Runner,
    System,
}

impl PrincipalKind {
    /// As written before the colon, and as Cedar sees it in `author_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Human => "human",
            PrincipalKind::Agent => "agent",
            PrincipalKind::Runner => "runner",
            PrincipalKind::System => "system",
        }
    }
}

impl Principal {
    /// The kind as written before the colon, and as Cedar sees it in `author_kind`.
    pub fn kind(&self) -> &'static str {
        self.kind_of().as_str()
    }

    pub fn kind_of(&self) -> PrincipalKind {
        match self {
            Principal::Human(_) => PrincipalKind::Human,
            Principal::Agent(_) => PrincipalKind::Agent,
            Principal::Runner(_) => PrincipalKind::Runner,
            Principal::System(_) => PrincipalKind::System,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Principal::Human(name)
            | Principal::Agent(name)
            | Principal::Runner(name)
            | Principal::System(name) => name,
        }
    }

    pub fn is_human(&self) -> bool {
        matches!(self, Principal::Human(_))
    }

    /// The principal of a catalog User, `human:NAME`: how the people who may approve are
    /// written everywhere (the CLI's explanations and reports, the server's records and
    /// API), and how an approver's token or sign-in names them.
    pub fn of_user(user: &countersign_graph::EntityRef) -> Principal {
        Principal::Human(user.name.clone())
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

/// A string that is not `kind:name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid principal {input:?}: {problem}")]
pub struct PrincipalError {
    pub input: String,
    pub problem: String,
}

impl FromStr for Principal {
    type Err = PrincipalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |problem: String| PrincipalError {
            input: s.to_owned(),
            problem,
        };
        let Some((kind, name)) = s.split_once(':') else {
            return Err(fail(
                "expected kind:name, e.g. human:alice, agent:fixbot, runner:ci or system:countersign"
                    .to_owned(),
            ));
        };
        if name.is_empty() {
            return Err(fail("the name after the colon is empty".to_owned()));
        }
        // Names end up in explanations, audit records and Cedar entity ids: whitespace and
        // control characters there would make two principals look alike.
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail(
                "the name contains whitespace or a control character".to_owned(),
            ));
        }
        let name = name.to_owned();
        match kind {
            "human" => Ok(Principal::Human(name)),
            "agent" => Ok(Principal::Agent(name)),
            "runner" => Ok(Principal::Runner(name)),
            "system" => Ok(Principal::System(name)),
            other => Err(fail(format!(
                "unknown kind {other:?}: expected human, agent, runner or system"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_rejects_the_rest() {
        let cases = [
            ("human:alice", Ok("human:alice")),
            ("agent:fixbot", Ok("agent:fixbot")),
            ("runner:ci", Ok("runner:ci")),
            ("system:x", Ok("system:x")),
            (
                "alice",
                Err(
                    "invalid principal \"alice\": expected kind:name, e.g. human:alice, agent:fixbot, runner:ci or system:countersign",
                ),
            ),
            (
                "robot:r2",
                Err(
                    "invalid principal \"robot:r2\": unknown kind \"robot\": expected human, agent, runner or system",
                ),
            ),
            (
                "human:",
                Err("invalid principal \"human:\": the name after the colon is empty"),
            ),
            (
                "human:a b",
                Err(
                    "invalid principal \"human:a b\": the name contains whitespace or a control character",
                ),
            ),
        ];
        for (input, expect) in cases {
            let got = input
                .parse::<Principal>()
                .map(|p| p.to_string())
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                expect.map(str::to_owned).map_err(str::to_owned),
                "{input}"
            );
        }
    }
}
