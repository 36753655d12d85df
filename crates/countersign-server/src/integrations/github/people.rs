//! Who a GitHub account is: the catalog User whose `github.com/user-login` is its login, in
//! the catalog of the repository at the proposal's base (the same catalog its commit
//! authors and approvers are read from, so one person is one name everywhere).
//!
//! Strict, like the mapping of commit emails: a bot account (`type: Bot`) is an agent
//! whatever a catalog says; a login no User declares is nobody (an unmapped pull request
//! author is an agent, `agent:github.com/LOGIN`, and an unmapped reviewer gives no verdict);
//! a login several Users declare names nobody (refused, never resolved by first match); a
//! User matching the `[agents]` patterns is an agent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use countersign_decide::people::GithubUser;
use countersign_policy::Principal;
use countersign_repo::{CommitId, Repo};

use super::payload::User;

/// Who an account is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Account {
    /// A catalog User that is a person.
    Person(Principal),
    /// A catalog User matching the agent patterns, or a bot account.
    Agent(Principal),
    /// No catalog User declares the login.
    Unmapped,
    /// Several catalog Users declare the login: the names.
    Ambiguous(Vec<String>),
}

impl Account {
    /// The principal a pull request of this account is proposed as: the person or agent,
    /// else an agent named after the login (an unknown author is never a person who could
    /// be taken for someone else). `None` when the catalog is ambiguous.
    pub(crate) fn proposer(&self, user: &User) -> Option<Principal> {
        match self {
            Account::Person(p) | Account::Agent(p) => Some(p.clone()),
            Account::Unmapped => Some(unmapped(user)),
            Account::Ambiguous(_) => None,
        }
    }
}

/// The agent an account no catalog User declares is: `agent:github.com/LOGIN` (no catalog
/// name holds a `/`, so it is nobody else's).
pub(crate) fn unmapped(user: &User) -> Principal {
    Principal::Agent(format!("github.com/{}", user.login.to_ascii_lowercase()))
}

/// Who `user` is, by the catalog Users `users`.
pub(crate) fn account(users: &[GithubUser], user: &User) -> Account {
    let login = user.login.to_ascii_lowercase();
    let mut matching: Vec<&GithubUser> = users.iter().filter(|u| u.login == login).collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    matching.dedup_by(|a, b| a.name.eq_ignore_ascii_case(&b.name));
    if user.is_bot() {
        // A bot is an agent whatever a catalog says: the catalog's name for it only when
        // that User is an agent too.
        return Account::Agent(match matching.as_slice() {
            [one] if one.agent => Principal::Agent(one.name.clone()),
            _ => unmapped(user),
        });
    }
    match matching.as_slice() {
        [] => Account::Unmapped,
        [one] if one.agent => Account::Agent(Principal::Agent(one.name.clone())),
        [one] => Account::Person(Principal::Human(one.name.clone())),
        many => Account::Ambiguous(many.iter().map(|u| u.name.clone()).collect()),
    }
}

/// The catalog Users with a GitHub login of recent bases, by repository path and base commit
/// (immutable, so never stale).
#[derive(Default)]
pub(crate) struct Directory(Mutex<HashMap<Base, Arc<Vec<GithubUser>>>>);

/// A repository's path and a base commit id.
type Base = (PathBuf, String);

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Directory").field("held", &held).finish()
    }
}

impl Directory {
    /// The Users of `base` in the repository at `path`. Blocking (git).
    pub(crate) fn users(
        &self,
        path: &Path,
        base: &str,
    ) -> Result<Arc<Vec<GithubUser>>, countersign_decide::DecideError> {
        let key = (path.to_owned(), base.to_owned());
        if let Some(found) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(Arc::clone(found));
        }
        let repo = Repo::open_shared(path)?;
        let users = Arc::new(countersign_decide::people::github_users(
            &repo,
            &CommitId::from_hex(base)?,
        )?);
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Bases are few (the tips of protected branches); forget them all rather than track
        // age.
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&users));
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(login: &str, kind: &str) -> User {
        User {
            login: login.to_owned(),
            id: 1,
            kind: kind.to_owned(),
        }
    }

    fn users() -> Vec<GithubUser> {
        let u = |name: &str, login: &str, agent: bool| GithubUser {
            name: name.to_owned(),
            login: login.to_owned(),
            agent,
        };
        vec![
            u("alice", "alice-gh", false),
            u("fixbot", "fixbot-gh", true),
            u("bob", "shared", false),
            u("carol", "shared", false),
        ]
    }

    #[test]
    fn accounts_map_strictly() {
        let users = users();
        let cases = [
            (
                user("Alice-GH", "User"),
                Account::Person("human:alice".parse().unwrap()),
            ),
            (
                user("fixbot-gh", "User"),
                Account::Agent("agent:fixbot".parse().unwrap()),
            ),
            // A bot is an agent even when a catalog User claims its login as a person's.
            (
                user("alice-gh", "Bot"),
                Account::Agent("agent:github.com/alice-gh".parse().unwrap()),
            ),
            (
                user("fixbot-gh", "Bot"),
                Account::Agent("agent:fixbot".parse().unwrap()),
            ),
            (
                user("dependabot[bot]", "Bot"),
                Account::Agent("agent:github.com/dependabot[bot]".parse().unwrap()),
            ),
            (user("stranger", "User"), Account::Unmapped),
            (
                user("shared", "User"),
                Account::Ambiguous(vec!["bob".into(), "carol".into()]),
            ),
        ];
        for (u, expect) in cases {
            assert_eq!(account(&users, &u), expect, "{}", u.login);
        }
        assert_eq!(
            Account::Unmapped.proposer(&user("Stranger", "User")),
            Some("agent:github.com/stranger".parse().unwrap())
        );
        assert_eq!(
            account(&users, &user("shared", "User")).proposer(&user("shared", "User")),
            None
        );
    }
}
