//! Bringing GitHub's commits into the server's repository: the server decides from git
//! objects it holds, so before a pull request is judged its head is fetched
//! (`refs/pull/N/head`, which GitHub keeps for every pull request, into
//! `refs/countersign/pull/N`) and so is its protected base branch, fast-forward only, into the
//! server's own branch of that name (what "protected history" is checked against).
//!
//! With real `git fetch` (the runner already relies on git): one fetch at a time per
//! repository, under a timeout, never prompting, with the API's credentials as an
//! `Authorization` header passed through git's environment for an `https://` URL (never on
//! the command line, never in the URL). A protected branch that would not fast-forward is
//! left as it is: the server never rewrites its protected history from a forge.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;

/// How long one `git fetch` may take before it is killed.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// The most of git's stderr quoted in an error.
const STDERR_BYTES: usize = 1024;

/// Why a fetch did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// A protected branch that would not fast-forward: left as it is.
    #[error("refusing to move {branch} of the server's repository: {detail}")]
    NotFastForward { branch: String, detail: String },
    #[error("git fetch {what}: {detail}")]
    Failed { what: String, detail: String },
}

/// A branch name git accepts and that cannot be read as an option or a refspec operator:
/// protected branch names come from `countersign.toml`, pull request numbers are numbers,
/// but a name is checked before it is put in a refspec all the same.
pub(crate) fn safe_branch(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// The ref a pull request's head is kept under in the server's repository, so its commits
/// stay reachable.
pub(crate) fn pull_ref(number: u64) -> String {
    format!("refs/countersign/pull/{number}")
}

/// Fetches `refspecs` from `url` into the repository at `path`. `token`, for an `https://`
/// URL, is sent as GitHub's git credentials (`x-access-token`).
pub(crate) async fn fetch(
    path: &Path,
    url: &str,
    refspecs: &[String],
    token: Option<&str>,
) -> Result<(), FetchError> {
    let what = refspecs.join(" ");
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(path)
        .args([
            // Not `--quiet`: on failure, git's stderr says why (it is read only then).
            "fetch",
            "--no-tags",
            "--no-recurse-submodules",
            "--no-write-fetch-head",
            // A bare server repository's HEAD is `main`: fetching into it is the point.
            "--update-head-ok",
            "--",
            url,
        ])
        .args(refspecs)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(token) = token
        && url.starts_with("https://")
    {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        // git reads `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` as `-c` settings, without them
        // appearing in the process list.
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            );
    }
    let child = command.spawn().map_err(|e| FetchError::Failed {
        what: what.clone(),
        detail: format!("starting git: {e}"),
    })?;
    let output = tokio::time::timeout(FETCH_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| FetchError::Failed {
            what: what.clone(),
            detail: format!("no answer within {}s", FETCH_TIMEOUT.as_secs()),
        })?
        .map_err(|e| FetchError::Failed {
            what: what.clone(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut stderr = output.stderr;
    stderr.truncate(STDERR_BYTES);
    let detail = String::from_utf8_lossy(&stderr).trim().to_owned();
    let detail = if detail.is_empty() {
        format!("git exited with {}", output.status)
    } else {
        detail
    };
    if detail.contains("non-fast-forward") || detail.contains("[rejected]") {
        return Err(FetchError::NotFastForward {
            branch: what,
            detail,
        });
    }
    Err(FetchError::Failed { what, detail })
}

/// Fetches protected branch `branch` from `url` into the server's branch of that name,
/// fast-forward only.
pub(crate) async fn fetch_branch(
    path: &Path,
    url: &str,
    branch: &str,
    token: Option<&str>,
) -> Result<(), FetchError> {
    if !safe_branch(branch) {
        return Err(FetchError::Failed {
            what: branch.to_owned(),
            detail: "not a branch name this server fetches".to_owned(),
        });
    }
    // No `+`: git refuses to move the branch unless it fast-forwards.
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    fetch(path, url, &[refspec], token)
        .await
        .map_err(|e| match e {
            FetchError::NotFastForward { detail, .. } => FetchError::NotFastForward {
                branch: branch.to_owned(),
                detail,
            },
            other => other,
        })
}

/// Fetches pull request `number`'s head from `url` into [`pull_ref`].
pub(crate) async fn fetch_pull(
    path: &Path,
    url: &str,
    number: u64,
    token: Option<&str>,
) -> Result<(), FetchError> {
    // `+`: a pull request's head is force-pushed at will; this ref only keeps it reachable.
    let refspec = format!("+refs/pull/{number}/head:{}", pull_ref(number));
    fetch(path, url, &[refspec], token).await
}

#[cfg(test)]
mod tests {
    use super::safe_branch;

    #[test]
    fn branch_names_are_checked_before_they_reach_a_refspec() {
        for ok in ["main", "release/1.2", "hot_fix-3"] {
            assert!(safe_branch(ok), "{ok}");
        }
        for bad in [
            "",
            "-main",
            "main:evil",
            "+main",
            "a..b",
            "a b",
            "a/",
            ".hidden",
            "x.lock",
            "a@{1}",
            "a//b",
            "*",
        ] {
            assert!(!safe_branch(bad), "{bad}");
        }
    }
}
