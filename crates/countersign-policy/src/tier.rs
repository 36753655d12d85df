//! The approval tier: the route a change takes, from most automated to most restrictive.
//!
//! This module only names tiers; which tier a change takes is `decide`'s business.

use std::fmt;
use std::str::FromStr;

/// An approval tier. Ordered from the most automated to the most restrictive, so `max`
/// means "the stricter of".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// The system merges the change and records the decision.
    AutoMerge,
    /// The system merges the change and alerts the owning team.
    NotifyAndProceed,
    /// One named human from the owning team authorizes the change.
    SingleApprover,
    /// Two distinct humans authorize the change. The floor: always available.
    ChangeControl,
}

impl Tier {
    /// Every tier, most automated first.
    pub const ALL: [Tier; 4] = [
        Tier::AutoMerge,
        Tier::NotifyAndProceed,
        Tier::SingleApprover,
        Tier::ChangeControl,
    ];

    /// The tier's name, which is also its Cedar action id.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::AutoMerge => "auto_merge",
            Tier::NotifyAndProceed => "notify_and_proceed",
            Tier::SingleApprover => "single_approver",
            Tier::ChangeControl => "change_control",
        }
    }

    /// Whether the system authorizes the change without a human.
    pub fn is_automated(self) -> bool {
        matches!(self, Tier::AutoMerge | Tier::NotifyAndProceed)
    }

    /// How many distinct humans must authorize a change at this tier.
    pub fn required_approvals(self) -> u32 {
        match self {
            Tier::AutoMerge | Tier::NotifyAndProceed => 0,
            Tier::SingleApprover => 1,
            Tier::ChangeControl => 2,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Tier::AutoMerge => 0,
            Tier::NotifyAndProceed => 1,
            Tier::SingleApprover => 2,
            Tier::ChangeControl => 3,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no tier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown tier {input:?}: expected auto_merge, notify_and_proceed, single_approver or change_control"
)]
pub struct TierError {
    pub input: String,
}

impl FromStr for Tier {
    type Err = TierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == s)
            .ok_or_else(|| TierError {
                input: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_strictness() {
        for tier in Tier::ALL {
            assert_eq!(tier.as_str().parse::<Tier>(), Ok(tier));
        }
        assert!(Tier::AutoMerge < Tier::NotifyAndProceed);
        assert!(Tier::NotifyAndProceed < Tier::SingleApprover);
        assert!(Tier::SingleApprover < Tier::ChangeControl);
        assert_eq!(
            "AutoMerge".parse::<Tier>().unwrap_err().to_string(),
            "unknown tier \"AutoMerge\": expected auto_merge, notify_and_proceed, single_approver or change_control"
        );
        assert!(Tier::NotifyAndProceed.is_automated());
        assert!(!Tier::SingleApprover.is_automated());
    }
}
