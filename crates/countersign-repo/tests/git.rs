//! Reading repositories through gix: revisions, snapshots, diffs, metadata, and the
//! precise errors for bad input. Repositories are built with `RepoWriter`; no `git` binary.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use countersign_graph::FileSource;
use countersign_repo::{
    ChangeKind, ChangedPath, CommitId, Content, Repo, RepoError, RepoWriter, WorkTree,
    changed_paths,
};

const ALICE: &str = "Alice <alice@example.com>";
const T0: i64 = 1_700_000_000;

/// A repository with three commits on main: c1 adds two files, c2 edits one, c3 adds a third.
fn three_commits() -> (tempfile::TempDir, RepoWriter, [CommitId; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    let c1 = writer
        .commit(
            [
                ("README.md", Some("hello\n")),
                ("src/lib.rs", Some("pub fn a() {}\n")),
            ],
            "first",
            ALICE,
            T0,
        )
        .unwrap();
    let c2 = writer
        .commit(
            [("README.md", Some("hello, world\n"))],
            "second",
            ALICE,
            T0 + 60,
        )
        .unwrap();
    let c3 = writer
        .commit(
            [("docs/guide.md", Some("# Guide\n"))],
            "third\n\nwith a body",
            ALICE,
            T0 + 120,
        )
        .unwrap();
    (dir, writer, [c1, c2, c3])
}

fn diff_of(
    edits: Vec<(&str, Content)>,
    setup: Vec<(&str, Content)>,
) -> Result<Vec<ChangedPath>, RepoError> {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    let base = writer.commit_entries(setup, "base", ALICE, T0).unwrap();
    let head = writer.commit_entries(edits, "head", ALICE, T0 + 1).unwrap();
    Repo::open(dir.path()).unwrap().diff(&base, &head)
}

fn file(text: &str) -> Content {
    Content::File(text.as_bytes().to_vec())
}

/// Enough distinct lines that a small edit keeps the similarity above git's 50%.
fn long_text() -> String {
    (0..40)
        .map(|i| format!("line {i} of a file that moves\n"))
        .collect()
}

#[test]
fn resolves_branches_ancestors_short_ids_and_tags() {
    let (dir, _writer, [c1, c2, c3]) = three_commits();
    let repo = Repo::open(dir.path()).unwrap();
    assert_eq!(repo.resolve("HEAD").unwrap(), c3);
    assert_eq!(repo.resolve("main").unwrap(), c3);
    assert_eq!(repo.resolve("refs/heads/main").unwrap(), c3);
    assert_eq!(repo.resolve("HEAD~1").unwrap(), c2);
    assert_eq!(repo.resolve("main~2").unwrap(), c1);
    assert_eq!(repo.resolve("HEAD^").unwrap(), c2);
    assert_eq!(repo.resolve(c1.short()).unwrap(), c1);
    assert_eq!(repo.resolve(c2.as_str()).unwrap(), c2);
    assert_eq!(c1.short().len(), 7);
    assert_eq!(CommitId::from_hex(c1.as_str()).unwrap(), c1);
    assert!(CommitId::from_hex("xyz").is_err());

    // A lightweight tag, written with gix directly since RepoWriter only writes main.
    let raw = gix::open(dir.path()).unwrap();
    raw.tag_reference(
        "v1",
        gix::ObjectId::from_hex(c2.as_str().as_bytes()).unwrap(),
        gix::refs::transaction::PreviousValue::Any,
    )
    .unwrap();
    drop(raw);
    let repo = Repo::open(dir.path()).unwrap();
    assert_eq!(repo.resolve("v1").unwrap(), c2);
}

#[test]
fn missing_revisions_are_named() {
    let (dir, _writer, [c1, ..]) = three_commits();
    let repo = Repo::open(dir.path()).unwrap();
    let cases = [
        (
            "no-such-branch",
            "revision `no-such-branch` does not exist: no branch, tag or commit is named `no-such-branch`",
        ),
        (
            "abcd12",
            "revision `abcd12` does not exist: no commit id starts with `abcd12`",
        ),
        (
            "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
            "revision `deadbeefdeadbeefdeadbeefdeadbeefdeadbeef` does not exist: no commit id starts with `deadbeefdeadbeefdeadbeefdeadbeefdeadbeef`",
        ),
        ("", "revision `` does not exist: the revision is empty"),
        (
            "HEAD~3",
            "revision `HEAD~3` does not exist: `HEAD` exists but `HEAD~3` goes beyond its history",
        ),
        (
            "main~10",
            "revision `main~10` does not exist: `main` exists but `main~10` goes beyond its history",
        ),
    ];
    for (rev, expected) in cases {
        match repo.resolve(rev) {
            Err(e @ RepoError::RevNotFound { .. }) => {
                let text = e.to_string();
                assert!(text.starts_with(expected), "{rev}: {text}");
            }
            other => panic!("{rev}: expected RevNotFound, got {other:?}"),
        }
    }
    // A tree is not a commit.
    let tree = format!("{c1}^{{tree}}");
    assert!(
        matches!(repo.resolve(&tree), Err(RepoError::NotACommit { ref kind, .. }) if kind == "tree"),
        "{:?}",
        repo.resolve(&tree)
    );
}

#[test]
fn not_a_repository_and_empty_repository() {
    let dir = tempfile::tempdir().unwrap();
    let err = Repo::open(dir.path()).unwrap_err();
    assert!(matches!(err, RepoError::NotARepository { .. }), "{err:?}");
    assert!(err.to_string().contains("not a git repository"), "{err}");

    let missing = dir.path().join("nope");
    assert!(matches!(
        Repo::open(&missing),
        Err(RepoError::NotARepository { .. })
    ));

    RepoWriter::init(dir.path()).unwrap();
    let repo = Repo::open(dir.path()).unwrap();
    let err = repo.resolve("HEAD").unwrap_err();
    assert!(matches!(err, RepoError::EmptyRepository { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("has no commits yet, so revision `HEAD` names nothing"),
        "{err}"
    );
}

/// Makes a shallow clone's shape by hand: a commit whose parent object is absent, listed
/// in `.git/shallow` as git does after `clone --depth 1`.
fn shallow_repo() -> (tempfile::TempDir, CommitId) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    let base = writer
        .commit([("a.txt", Some("a\n"))], "base", ALICE, T0)
        .unwrap();
    let repo = gix::open(dir.path()).unwrap();
    let base_oid = gix::ObjectId::from_hex(base.as_str().as_bytes()).unwrap();
    let tree = repo
        .find_commit(base_oid)
        .unwrap()
        .tree_id()
        .unwrap()
        .detach();
    let absent_parent =
        gix::ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap();
    let signature = gix::actor::Signature {
        name: "Alice".into(),
        email: "alice@example.com".into(),
        time: gix::date::Time {
            seconds: T0 + 10,
            offset: 0,
        },
    };
    let mut buf = Default::default();
    let signature = signature.to_ref(&mut buf);
    let commit = repo
        .new_commit_as(signature, signature, "tip", tree, [absent_parent])
        .unwrap()
        .id;
    std::fs::write(
        dir.path().join(".git/refs/heads/main"),
        format!("{commit}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join(".git/shallow"), format!("{commit}\n")).unwrap();
    (dir, CommitId::from_hex(&commit.to_string()).unwrap())
}

#[test]
fn shallow_clone_history_errors_say_so() {
    let (dir, tip) = shallow_repo();
    let repo = Repo::open(dir.path()).unwrap();
    assert!(repo.is_shallow());
    assert_eq!(repo.resolve("HEAD").unwrap(), tip);
    for rev in [
        "HEAD~1",
        "main^",
        "1111111111111111111111111111111111111111",
    ] {
        let err = repo.resolve(rev).unwrap_err();
        assert!(
            matches!(err, RepoError::ShallowHistory { .. }),
            "{rev}: {err:?}"
        );
        let text = err.to_string();
        // The fix (`git fetch --deepen`) is the binary's to say: a server's caller cannot
        // run it, and the library's messages name no command line.
        assert!(
            text.contains("shallow clone") && !text.contains("--"),
            "{text}"
        );
        assert!(!err.is_input(), "the clone's history, not the revision");
    }
    // A typo is still a typo in a shallow clone.
    assert!(matches!(
        repo.resolve("mian"),
        Err(RepoError::RevNotFound { .. })
    ));
    assert!(matches!(
        repo.first_parent_history("HEAD", 5),
        Err(RepoError::ShallowHistory { .. })
    ));
    assert_eq!(repo.first_parent_history("HEAD", 1).unwrap(), [tip]);
}

#[test]
fn first_parent_history_newest_first() {
    let (dir, _writer, [c1, c2, c3]) = three_commits();
    let repo = Repo::open(dir.path()).unwrap();
    assert_eq!(
        repo.first_parent_history("HEAD", 2).unwrap(),
        [c3.clone(), c2.clone()]
    );
    assert_eq!(
        repo.first_parent_history("HEAD", 10).unwrap(),
        [c3, c2.clone(), c1.clone()]
    );
    assert_eq!(repo.first_parent_history("HEAD~1", 10).unwrap(), [c2, c1]);
    assert!(repo.first_parent_history("HEAD", 0).unwrap().is_empty());
}

#[test]
fn commit_info_reads_author_and_summary() {
    let (dir, _writer, [c1, c2, c3]) = three_commits();
    let repo = Repo::open(dir.path()).unwrap();
    let info = repo.commit_info(&c3).unwrap();
    assert_eq!(info.author.name, "Alice");
    assert_eq!(info.author.email, "alice@example.com");
    assert_eq!(info.author.time, T0 + 120);
    assert_eq!(info.committer, info.author);
    assert_eq!(info.summary, "third");
    assert_eq!(info.parents, [c2]);
    assert!(repo.commit_info(&c1).unwrap().parents.is_empty());
}

#[test]
fn diff_kinds() {
    let long = long_text();
    let setup = || {
        vec![
            ("keep.txt", file("same\n")),
            ("edit.txt", file("before\n")),
            ("gone.txt", file("bye\n")),
            ("old/place.rs", file(&long)),
            ("script.sh", file("echo hi\n")),
        ]
    };
    let changes = diff_of(
        vec![
            ("edit.txt", file("after\n")),
            ("gone.txt", Content::Absent),
            ("new.txt", file("brand new\n")),
            ("old/place.rs", Content::Absent),
            ("new/place.rs", file(&format!("{long}one more line\n"))),
            ("script.sh", Content::Executable(b"echo hi\n".to_vec())),
        ],
        setup(),
    )
    .unwrap();
    let expected = vec![
        ChangedPath {
            path: "edit.txt".into(),
            kind: ChangeKind::Modified,
        },
        ChangedPath {
            path: "gone.txt".into(),
            kind: ChangeKind::Deleted,
        },
        ChangedPath {
            path: "new.txt".into(),
            kind: ChangeKind::Added,
        },
        ChangedPath {
            path: "new/place.rs".into(),
            kind: ChangeKind::Renamed {
                from: "old/place.rs".into(),
            },
        },
        ChangedPath {
            path: "script.sh".into(),
            kind: ChangeKind::Modified,
        },
    ];
    assert_eq!(changes, expected);
    assert_eq!(
        changed_paths(&changes),
        [
            "edit.txt",
            "gone.txt",
            "new.txt",
            "new/place.rs",
            "old/place.rs",
            "script.sh"
        ]
    );
}

/// A handle from `open_shared` keeps its rename-detection cache between diffs; every diff
/// must still be what a fresh handle computes.
#[test]
fn a_shared_handle_diffs_like_a_fresh_one() {
    let long = long_text();
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    let c1 = writer
        .commit_entries(
            vec![
                ("a/one.rs", file(&long)),
                ("b/two.rs", file(&long.repeat(2))),
            ],
            "base",
            ALICE,
            T0,
        )
        .unwrap();
    let c2 = writer
        .commit_entries(
            vec![
                ("a/one.rs", Content::Absent),
                ("c/one.rs", file(&format!("{long}more\n"))),
            ],
            "move one",
            ALICE,
            T0 + 1,
        )
        .unwrap();
    let c3 = writer
        .commit_entries(
            vec![
                ("b/two.rs", Content::Absent),
                ("d/two.rs", file(&long.repeat(2))),
            ],
            "move two",
            ALICE,
            T0 + 2,
        )
        .unwrap();
    let shared = Repo::open_shared(dir.path()).unwrap();
    let pairs = [(&c1, &c2), (&c2, &c3), (&c1, &c3), (&c1, &c2)];
    for (base, head) in pairs {
        let fresh = Repo::open(dir.path()).unwrap().diff(base, head).unwrap();
        assert_eq!(shared.diff(base, head).unwrap(), fresh, "{base}..{head}");
        assert!(
            fresh
                .iter()
                .all(|c| matches!(c.kind, ChangeKind::Renamed { .. })),
            "{fresh:?}"
        );
    }
    // Another handle of this thread on the same path shares them.
    let again = Repo::open_shared(dir.path()).unwrap();
    assert_eq!(
        again.diff(&c1, &c3).unwrap(),
        Repo::open(dir.path()).unwrap().diff(&c1, &c3).unwrap()
    );
}

#[test]
fn mode_only_change_counts() {
    let changes = diff_of(
        vec![("run.sh", Content::Executable(b"x\n".to_vec()))],
        vec![("run.sh", file("x\n"))],
    )
    .unwrap();
    assert_eq!(
        changes,
        [ChangedPath {
            path: "run.sh".into(),
            kind: ChangeKind::Modified
        }]
    );
}

#[test]
fn file_replaced_by_directory_reports_files_only() {
    let changes = diff_of(
        vec![("a", Content::Absent), ("a/b.txt", file("b\n"))],
        vec![("a", file("a\n"))],
    )
    .unwrap();
    assert_eq!(
        changes,
        [
            ChangedPath {
                path: "a".into(),
                kind: ChangeKind::Deleted
            },
            ChangedPath {
                path: "a/b.txt".into(),
                kind: ChangeKind::Added
            },
        ]
    );
}

#[test]
fn empty_diff_is_its_own_error() {
    let (dir, mut writer, [.., c3]) = three_commits();
    // A commit that rewrites a file with identical bytes changes nothing.
    let c4 = writer
        .commit(
            [("README.md", Some("hello, world\n"))],
            "noop",
            ALICE,
            T0 + 500,
        )
        .unwrap();
    let repo = Repo::open(dir.path()).unwrap();
    let err = repo.diff(&c3, &c4).unwrap_err();
    assert!(matches!(err, RepoError::EmptyDiff { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("empty diff: no file differs between {c3} and {c4}, there is nothing to decide")
    );
    assert!(matches!(
        repo.diff(&c3, &c3),
        Err(RepoError::EmptyDiff { .. })
    ));
}

#[test]
fn non_utf8_paths_fail_the_diff_and_are_skipped_by_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    let base = writer
        .commit([("ok.txt", Some("ok\n"))], "base", ALICE, T0)
        .unwrap();
    let head = writer
        .commit_entries(
            [(b"caf\xe9.txt".as_slice(), file("latin-1 name\n"))],
            "head",
            ALICE,
            T0 + 1,
        )
        .unwrap();
    let repo = Repo::open(dir.path()).unwrap();
    let err = repo.diff(&base, &head).unwrap_err();
    assert!(matches!(err, RepoError::NonUtf8Path { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "path \"caf\u{fffd}.txt\" in the diff {}..{} is not valid UTF-8; countersign maps paths as UTF-8 text",
            base.short(),
            head.short()
        )
    );
    let tree = repo.commit_tree(&head).unwrap();
    assert_eq!(tree.paths(), ["ok.txt"]);
    assert_eq!(tree.non_utf8_paths(), ["caf\u{fffd}.txt"]);
}

#[test]
fn commit_tree_lists_and_reads_files() {
    let (dir, _writer, [c1, c2, c3]) = three_commits();
    let repo = Repo::open(dir.path()).unwrap();
    let tree = repo.commit_tree(&c3).unwrap();
    assert_eq!(tree.commit(), &c3);
    assert_eq!(tree.paths(), ["README.md", "docs/guide.md", "src/lib.rs"]);
    assert_eq!(
        tree.read("README.md", 1 << 20).unwrap().unwrap(),
        b"hello, world\n"
    );
    assert_eq!(
        tree.read("src/lib.rs", 1 << 20).unwrap().unwrap(),
        b"pub fn a() {}\n"
    );
    assert_eq!(tree.read("missing.md", 1 << 20).unwrap(), None);
    assert_eq!(
        tree.read("docs", 1 << 20).unwrap(),
        None,
        "directories are not files"
    );

    let old = repo.commit_tree(&c1).unwrap();
    assert_eq!(old.read("README.md", 1 << 20).unwrap().unwrap(), b"hello\n");
    assert_eq!(
        repo.diff(&c1, &c2).unwrap(),
        [ChangedPath {
            path: "README.md".into(),
            kind: ChangeKind::Modified
        }]
    );
}

#[test]
fn commit_tree_sorts_by_bytes_not_git_tree_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    // Git orders the tree `a.txt`, `a/`, `a0`; byte order puts `a/b` before `a0` and after `a.txt`.
    let c = writer
        .commit(
            [
                ("a/b", Some("1")),
                ("a.txt", Some("2")),
                ("a0", Some("3")),
                ("sub/link", None),
            ],
            "m",
            ALICE,
            T0,
        )
        .unwrap();
    let tree = Repo::open(dir.path()).unwrap().commit_tree(&c).unwrap();
    assert_eq!(tree.paths(), ["a.txt", "a/b", "a0"]);
}

#[test]
fn worktree_written_from_a_commit_is_readable() {
    let (dir, mut writer, [c1, c2, c3]) = three_commits();
    writer.write_worktree(&c3).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("docs/guide.md")).unwrap(),
        "# Guide\n"
    );
    // Going back removes files the older commit does not have, and their empty directories.
    writer.write_worktree(&c1).unwrap();
    assert!(!dir.path().join("docs").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("README.md")).unwrap(),
        "hello\n"
    );
    writer.write_worktree(&c2).unwrap();

    // The work tree is what is on disk: untracked files count unless ignored, and a read
    // of one is remembered so a command can say it used it.
    std::fs::write(dir.path().join("untracked.txt"), "x").unwrap();
    std::fs::write(dir.path().join(".gitignore"), "ignored.txt\nbuild/\n").unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "x").unwrap();
    std::fs::create_dir_all(dir.path().join("build")).unwrap();
    std::fs::write(dir.path().join("build/out.txt"), "x").unwrap();
    let work = WorkTree::open(dir.path()).unwrap();
    assert_eq!(
        work.paths(),
        [".gitignore", "README.md", "src/lib.rs", "untracked.txt"]
    );
    assert_eq!(work.untracked(), [".gitignore", "untracked.txt"]);
    assert_eq!(
        work.read("README.md", 1 << 20).unwrap().unwrap(),
        b"hello, world\n"
    );
    assert!(work.untracked_read().is_empty());
    assert_eq!(work.read("untracked.txt", 1 << 20).unwrap().unwrap(), b"x");
    assert_eq!(work.untracked_read(), ["untracked.txt"]);
    assert_eq!(work.read("ignored.txt", 1 << 20).unwrap(), None);
    assert_eq!(work.read("build/out.txt", 1 << 20).unwrap(), None);
    assert_eq!(work.read("../escape", 1 << 20).unwrap(), None);
}

#[test]
fn worktree_of_a_plain_directory_lists_everything_but_build_outputs() {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in [
        ("catalog-info.yaml", "kind: Component"),
        ("svc/a.rs", "a"),
        ("target/debug/x", "skip"),
        ("web/node_modules/m/index.js", "skip"),
        ("web/index.js", "keep"),
    ] {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    let work = WorkTree::open(dir.path()).unwrap();
    assert_eq!(
        work.paths(),
        ["catalog-info.yaml", "svc/a.rs", "web/index.js"]
    );
    assert_eq!(work.read("svc/a.rs", 1 << 20).unwrap().unwrap(), b"a");
    assert!(work.non_utf8_paths().is_empty());
}

#[test]
fn invalid_author_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    for author in ["Alice", "<a@b>", "Alice <>", "Alice a@b>"] {
        let err = writer
            .commit([("a", Some("a"))], "m", author, T0)
            .unwrap_err();
        assert!(
            matches!(err, RepoError::InvalidSignature { .. }),
            "{author}: {err:?}"
        );
    }
}

/// `base..head` is every commit reachable from the head and not from the base, each with its
/// author and committer as written (here: one commit applied by a service account).
#[test]
fn commits_between_names_authors_and_committers() {
    let (dir, mut writer, [c1, c2, c3]) = three_commits();
    let applied = writer
        .commit_on_as(
            "refs/heads/topic",
            &c3,
            [("src/lib.rs", Some("pub fn b() {}\n"))],
            "applied",
            "Bob <bob@example.com>",
            "CI <ci@example.com>",
            T0 + 180,
        )
        .unwrap();
    let repo = Repo::open(dir.path()).unwrap();
    let ids = |base: &CommitId, head: &CommitId| -> Vec<CommitId> {
        let commits = repo.commits_between(base, head).unwrap();
        commits.into_iter().map(|c| c.id).collect()
    };
    assert_eq!(
        ids(&c1, &applied),
        [applied.clone(), c3.clone(), c2.clone()]
    );
    assert!(ids(&c3, &c3).is_empty());
    assert!(ids(&c3, &c1).is_empty());
    let info = &repo.commits_between(&c3, &applied).unwrap()[0];
    assert_eq!(
        (info.author.email.as_str(), info.committer.email.as_str()),
        ("bob@example.com", "ci@example.com")
    );
}

/// The content of a diff names both sides of each file and does not depend on commit ids:
/// the same edit committed twice (another message, time and committer) is the same content.
#[test]
fn diff_content_is_the_same_for_the_same_change() {
    let (dir, mut writer, [_, _, c3]) = three_commits();
    let edit = [
        ("README.md", Some("changed\n")),
        ("docs/guide.md", None),
        ("new.txt", Some("new\n")),
    ];
    let one = writer
        .commit_on("refs/heads/a", &c3, edit, "one", ALICE, T0 + 200)
        .unwrap();
    let two = writer
        .commit_on_as(
            "refs/heads/b",
            &c3,
            edit,
            "two",
            ALICE,
            "CI <ci@example.com>",
            T0 + 300,
        )
        .unwrap();
    let other = writer
        .commit_on(
            "refs/heads/c",
            &c3,
            [("README.md", Some("else\n"))],
            "three",
            ALICE,
            T0 + 400,
        )
        .unwrap();
    assert_ne!(one, two);
    let repo = Repo::open(dir.path()).unwrap();
    let content = repo.diff_content(&c3, &one).unwrap();
    assert_eq!(content, repo.diff_content(&c3, &two).unwrap());
    assert_ne!(content, repo.diff_content(&c3, &other).unwrap());
    let summary: Vec<(&str, Option<&str>, Option<&str>)> = content
        .iter()
        .map(|c| {
            (
                c.path.as_str(),
                c.old.as_ref().map(|s| s.mode.as_str()),
                c.new.as_ref().map(|s| s.mode.as_str()),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("README.md", Some("100644"), Some("100644")),
            ("docs/guide.md", Some("100644"), None),
            ("new.txt", None, Some("100644")),
        ]
    );
    assert_ne!(content[0].old, content[0].new);
}

/// A repository whose rule files are symlinks out of it: `CODEOWNERS -> /etc/passwd`,
/// `catalog-info.yaml -> /dev/zero`, plus a regular file.
fn hostile_links() -> (tempfile::TempDir, RepoWriter, CommitId) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    let c = writer
        .commit_entries(
            [
                ("CODEOWNERS", Content::Symlink("/etc/passwd".into())),
                ("catalog-info.yaml", Content::Symlink("/dev/zero".into())),
                (
                    "svc/catalog-info.yaml",
                    Content::File(b"kind: x\n".to_vec()),
                ),
            ],
            "links",
            ALICE,
            T0,
        )
        .unwrap();
    (dir, writer, c)
}

fn read_error(source: &dyn FileSource, path: &str, max: u64) -> String {
    match source.read(path, max) {
        Ok(bytes) => format!("read {:?}", bytes.map(|b| b.len())),
        Err(e) => e.to_string(),
    }
}

#[test]
fn symlinked_rule_files_are_refused_at_a_revision_and_in_the_work_tree() {
    let (dir, mut writer, c) = hostile_links();
    let tree = Repo::open(dir.path()).unwrap().commit_tree(&c).unwrap();
    writer.write_worktree(&c).unwrap();
    let work = WorkTree::open(dir.path()).unwrap();
    for source in [&tree as &dyn FileSource, &work] {
        assert_eq!(
            read_error(source, "CODEOWNERS", 1 << 20),
            "CODEOWNERS is a symlink (to `/etc/passwd`); rule files must be regular files"
        );
        assert_eq!(
            read_error(source, "catalog-info.yaml", 1 << 20),
            "catalog-info.yaml is a symlink (to `/dev/zero`); rule files must be regular files"
        );
        assert_eq!(
            read_error(source, "svc/catalog-info.yaml", 1 << 20),
            "read Some(8)"
        );
        assert_eq!(
            read_error(source, "svc/catalog-info.yaml", 7),
            "svc/catalog-info.yaml: larger than 7 bytes, the limit `file_bytes` (raise it under [limits] in countersign.toml if the input is legitimate)"
        );
    }
}

#[test]
fn a_work_tree_never_follows_a_link_on_disk() {
    let (dir, mut writer, c) = hostile_links();
    writer.write_worktree(&c).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("catalog-info.yaml"), "secret").unwrap();
    // The index says `svc/catalog-info.yaml` is a file, but on disk `svc` became a link
    // out of the repository: the read is refused, not followed.
    std::fs::remove_dir_all(dir.path().join("svc")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("svc")).unwrap();
    let work = WorkTree::open(dir.path()).unwrap();
    let err = read_error(&work, "svc/catalog-info.yaml", 1 << 20);
    assert!(
        err.starts_with("cannot read svc/catalog-info.yaml: directory `svc` is a symlink (to `"),
        "{err}"
    );
    // Same for the file itself replaced by a link.
    std::fs::remove_file(dir.path().join("svc")).unwrap();
    std::fs::create_dir(dir.path().join("svc")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("catalog-info.yaml"),
        dir.path().join("svc/catalog-info.yaml"),
    )
    .unwrap();
    let err = read_error(&work, "svc/catalog-info.yaml", 1 << 20);
    assert!(err.contains("is a symlink (to `"), "{err}");
}

#[test]
fn a_plain_directory_lists_links_and_refuses_to_read_them() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("catalog-info.yaml")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("big.yaml"), vec![b'a'; 100]).unwrap();
    let work = WorkTree::open(dir.path()).unwrap();
    assert_eq!(work.paths(), ["big.yaml", "catalog-info.yaml", "etc"]);
    assert_eq!(
        read_error(&work, "catalog-info.yaml", 1 << 20),
        "catalog-info.yaml is a symlink (to `/dev/zero`); rule files must be regular files"
    );
    assert_eq!(
        read_error(&work, "etc", 1 << 20),
        "etc is a symlink (to `/etc`); rule files must be regular files"
    );
    assert!(read_error(&work, "big.yaml", 99).contains("larger than 99 bytes"));
}

/// The facts the protected-branch rule stands on: which branches exist and where, and
/// ancestry (a commit is its own ancestor; a sibling and a descendant are not ancestors).
#[test]
fn branches_and_ancestry() {
    let (dir, mut writer, [c1, c2, c3]) = three_commits();
    let side = writer
        .commit_on(
            "refs/heads/side",
            &c1,
            [("side.md", Some("side\n"))],
            "side",
            ALICE,
            T0 + 180,
        )
        .unwrap();
    let repo = Repo::open(dir.path()).unwrap();
    assert_eq!(
        repo.branches().unwrap(),
        vec![
            ("main".to_owned(), c3.clone()),
            ("side".to_owned(), side.clone())
        ]
    );
    assert_eq!(repo.branch_tip("side").unwrap(), Some(side.clone()));
    assert_eq!(repo.branch_tip("master").unwrap(), None);
    for (ancestor, descendant, expected) in [
        (&c1, &c3, true),
        (&c3, &c3, true),
        (&c3, &c1, false),
        (&c1, &side, true),
        (&c2, &side, false),
        (&side, &c3, false),
    ] {
        assert_eq!(
            repo.is_ancestor(ancestor, descendant).unwrap(),
            expected,
            "{ancestor} ancestor of {descendant}"
        );
    }
    let absent = CommitId::from_hex(&"1".repeat(40)).unwrap();
    assert!(repo.is_ancestor(&absent, &c3).unwrap_err().is_input());
}

/// `fast_forward` moves a branch only forward (as `git merge --ff-only`), and `open`
/// carries on writing a repository `init` made.
#[test]
fn a_branch_fast_forwards_only_to_a_descendant() {
    let (dir, writer, [first, second, _]) = three_commits();
    drop(writer);
    let mut writer = RepoWriter::open(dir.path()).unwrap();
    let branch = "refs/heads/stable";
    let topic = writer
        .commit_on(
            branch,
            &first,
            [("a.txt", Some("stable\n"))],
            "on stable",
            ALICE,
            10,
        )
        .unwrap();
    let fix = writer
        .commit_on(
            "refs/heads/fix",
            &topic,
            [("a.txt", Some("fixed\n"))],
            "fix",
            ALICE,
            20,
        )
        .unwrap();
    // Not a descendant of stable's tip: refused, and stable stays.
    let refused = writer.fast_forward(branch, &second).unwrap_err();
    assert!(
        refused.to_string().contains("does not descend"),
        "{refused}"
    );
    let repo = Repo::open(dir.path()).unwrap();
    assert_eq!(repo.resolve("stable").unwrap(), topic);
    writer.fast_forward(branch, &fix).unwrap();
    let repo = Repo::open(dir.path()).unwrap();
    assert_eq!(repo.resolve("stable").unwrap(), fix);
    // A branch that does not exist is not created.
    assert!(writer.fast_forward("refs/heads/nothing", &fix).is_err());
}
