//! Runs of the fleet against both backends: exactly one runner leases an item (two stores,
//! as two server processes, leasing concurrently), an expired lease is taken over by the
//! server's clock, only the holder of the current attempt acts on a run, and cancelling.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::Db;
use countersign_store::{
    BaseVersion, CapsuleAsk, Finish, LeaseAsk, NewRun, Refusal, RunFilter, RunFor, RunOutcome,
    RunState, Store, TestCounts,
};

const LEASE_MS: u64 = 60_000;

fn work(n: usize, suite: &str, env: &str, runners: &[&str]) -> NewRun {
    NewRun {
        id: format!("r-{n:06}"),
        repo: "shop".into(),
        repository: "github.com/acme/shop".into(),
        suite: suite.into(),
        environment: env.into(),
        commit: "c".repeat(40),
        target: RunFor::Branch("main".into()),
        definition: "{}".into(),
        runners: runners.iter().map(|r| (*r).to_owned()).collect(),
        capsule_signers: Vec::new(),
        queued_at_ms: 1_000 + i64::try_from(n).unwrap(),
        cause: Some("schedule:nightly".into()),
        base_version: None,
    }
}

async fn enqueue(store: &Store, runs: &[NewRun]) {
    let mut tx = store.begin().await.unwrap();
    tx.enqueue_runs(runs).await.unwrap();
    tx.commit().await.unwrap();
}

async fn lease(store: &Store, runner: &str, envs: &[&str], max: u32, now: i64) -> Vec<String> {
    let envs: Vec<String> = envs.iter().map(|e| (*e).to_owned()).collect();
    let mut tx = store.begin().await.unwrap();
    let principal = format!("runner:{runner}");
    let runs = tx
        .lease_runs(&LeaseAsk {
            runner,
            capsule: None,
            principal: &principal,
            repository: "github.com/acme/shop",
            environments: &envs,
            max,
            now_ms: now,
            lease_ms: LEASE_MS,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    runs.into_iter().map(|r| r.id).collect()
}

/// 300 items, two stores (two server processes) each with two runners leasing at once, in
/// small batches: every item is leased exactly once.
async fn concurrent_leases_never_share_an_item(db: &Db) {
    let a = db.store().await;
    let b = db.store().await;
    let items: Vec<NewRun> = (0..300)
        .map(|n| work(n, "unit", "default", &["ci-1", "ci-2", "ci-3", "ci-4"]))
        .collect();
    enqueue(&a, &items).await;
    let mut tasks = Vec::new();
    for (store, runner) in [(&a, "ci-1"), (&a, "ci-2"), (&b, "ci-3"), (&b, "ci-4")] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = lease(&store, runner, &["default"], 3, 10_000).await;
                if got.is_empty() {
                    break;
                }
                mine.extend(got);
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut per_runner = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        per_runner.push(mine.len());
        for id in mine {
            assert!(seen.insert(id.clone()), "{id} was leased twice");
        }
    }
    assert_eq!(seen.len(), 300, "every item leased once: {per_runner:?}");
    let running = a
        .runs(&RunFilter {
            state: Some(RunState::Running),
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 300);
    assert!(running.iter().all(|r| r.attempt == 1));
    a.close().await;
    b.close().await;
}

/// A runner only sees items of its environments that it may attest; an expired lease is
/// taken by another runner when the server's clock passes it, and the first holder can then
/// neither heartbeat nor finish; the new holder finishes it.
async fn leases_expire_and_only_the_holder_acts(db: &Db) {
    let store = db.store().await;
    enqueue(
        &store,
        &[
            work(1, "unit", "default", &["ci-1", "ci-2"]),
            work(2, "unit", "staging", &["ci-1", "ci-2"]),
            work(3, "payments", "default", &["payments-only"]),
        ],
    )
    .await;
    // ci-1 may not attest `payments`, and serves only `default`.
    assert_eq!(
        lease(&store, "ci-1", &["default"], 10, 0).await,
        ["r-000001"]
    );
    assert!(lease(&store, "ci-2", &["default"], 10, 1).await.is_empty());
    // A runner principal that is not the holder.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.heartbeat_run("r-000001", "runner:ci-2", 1, 5, LEASE_MS)
            .await
            .unwrap()
            .unwrap_err(),
        Refusal::NotHolder
    );
    // The holder extends its lease to 30_000 + LEASE_MS.
    let run = tx
        .heartbeat_run("r-000001", "runner:ci-1", 1, 30_000, LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.lease_until_ms, Some(30_000 + 60_000));
    assert_eq!(
        tx.heartbeat_run("nope", "runner:ci-1", 1, 5, LEASE_MS)
            .await
            .unwrap()
            .unwrap_err(),
        Refusal::NotFound
    );
    tx.commit().await.unwrap();
    // Not expired yet at 89_999; expired at 90_000.
    assert!(
        lease(&store, "ci-2", &["default"], 10, 89_999)
            .await
            .is_empty()
    );
    assert_eq!(
        lease(&store, "ci-2", &["default"], 10, 90_000).await,
        ["r-000001"]
    );
    let mut tx = store.begin().await.unwrap();
    let finish = Finish {
        outcome: RunOutcome::Passed,
        tests: Some(TestCounts {
            passed: 3,
            failed: 0,
            skipped: 1,
        }),
        duration_ms: Some(1234),
        envelopes: vec!["a".repeat(64)],
    };
    // The first holder's attempt is over.
    assert_eq!(
        tx.finish_run("r-000001", "runner:ci-1", 1, &finish, 91_000)
            .await
            .unwrap()
            .unwrap_err(),
        Refusal::NotHolder
    );
    // Even naming the current attempt, it is not ci-1's.
    assert_eq!(
        tx.finish_run("r-000001", "runner:ci-1", 2, &finish, 91_000)
            .await
            .unwrap()
            .unwrap_err(),
        Refusal::NotHolder
    );
    let done = tx
        .finish_run("r-000001", "runner:ci-2", 2, &finish, 91_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, RunState::Finished);
    assert_eq!(done.outcome, Some(RunOutcome::Passed));
    assert_eq!(done.tests, Some(finish.tests.unwrap()));
    assert_eq!(done.envelopes, finish.envelopes);
    assert_eq!(done.runner.as_deref(), Some("runner:ci-2"));
    // Finished is final.
    assert_eq!(
        tx.finish_run("r-000001", "runner:ci-2", 2, &finish, 92_000)
            .await
            .unwrap()
            .unwrap_err(),
        Refusal::Finished(RunOutcome::Passed)
    );
    tx.commit().await.unwrap();
    // A finished run is never leased again.
    assert!(
        lease(&store, "ci-2", &["default"], 10, 10_000_000)
            .await
            .is_empty()
    );
    // `payments-only` gets its item; a returned item goes back to the queue.
    assert_eq!(
        lease(&store, "payments-only", &["default", "staging"], 10, 0).await,
        ["r-000003"]
    );
    let mut tx = store.begin().await.unwrap();
    let back = tx
        .return_run("r-000003", "runner:payments-only", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.state, RunState::Queued);
    tx.commit().await.unwrap();
    assert_eq!(
        lease(&store, "payments-only", &["default"], 10, 0).await,
        ["r-000003"]
    );
    let run = store.run("r-000003").await.unwrap().unwrap();
    assert_eq!(run.attempt, 2);
    store.close().await;
}

/// Listing filters and pages newest first; a corrupt state is an error, not a default.
async fn listing_filters(db: &Db) {
    let store = db.store().await;
    enqueue(
        &store,
        &[
            work(1, "unit", "default", &["ci"]),
            work(2, "unit", "staging", &["ci"]),
            work(3, "e2e", "default", &["ci"]),
        ],
    )
    .await;
    let ids =
        |runs: Vec<countersign_store::Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = RunFilter {
        limit: 10,
        ..RunFilter::default()
    };
    assert_eq!(
        ids(store.runs(&all).await.unwrap()),
        ["r-000003", "r-000002", "r-000001"]
    );
    let unit = RunFilter {
        suite: Some("unit".into()),
        ..all.clone()
    };
    assert_eq!(
        ids(store.runs(&unit).await.unwrap()),
        ["r-000002", "r-000001"]
    );
    let staging = RunFilter {
        environment: Some("staging".into()),
        ..all.clone()
    };
    assert_eq!(ids(store.runs(&staging).await.unwrap()), ["r-000002"]);
    let since = RunFilter {
        since_ms: Some(1_002),
        ..all.clone()
    };
    assert_eq!(
        ids(store.runs(&since).await.unwrap()),
        ["r-000003", "r-000002"]
    );
    let page = RunFilter {
        before: Some((1_003, "r-000003".into())),
        limit: 1,
        ..all.clone()
    };
    assert_eq!(ids(store.runs(&page).await.unwrap()), ["r-000002"]);
    let queued = RunFilter {
        state: Some(RunState::Queued),
        ..all.clone()
    };
    assert_eq!(store.runs(&queued).await.unwrap().len(), 3);
    // Filters combine (each written only when set: the queries the planner sees differ).
    let both = RunFilter {
        state: Some(RunState::Queued),
        suite: Some("unit".into()),
        since_ms: Some(1_002),
        ..all.clone()
    };
    assert_eq!(ids(store.runs(&both).await.unwrap()), ["r-000002"]);
    let none = RunFilter {
        proposal: Some("p-none".into()),
        ..all.clone()
    };
    assert!(store.runs(&none).await.unwrap().is_empty());

    // The dashboard's tally: per suite, state and outcome, from a time on.
    assert_eq!(
        lease(&store, "ci", &["default"], 1, 5_000).await,
        ["r-000001"]
    );
    let mut tx = store.begin().await.unwrap();
    let passed = Finish {
        outcome: RunOutcome::Passed,
        tests: None,
        duration_ms: None,
        envelopes: Vec::new(),
    };
    tx.finish_run("r-000001", "runner:ci", 1, &passed, 6_000)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let tally = |since| {
        let store = store.clone();
        async move {
            let mut rows: Vec<_> = store
                .run_tally(since)
                .await
                .unwrap()
                .into_iter()
                .map(|t| (t.suite, t.state, t.outcome, t.count))
                .collect();
            rows.sort();
            rows
        }
    };
    assert_eq!(
        tally(1_000).await,
        [
            ("e2e".to_owned(), RunState::Queued, None, 1),
            ("unit".to_owned(), RunState::Queued, None, 1),
            (
                "unit".to_owned(),
                RunState::Finished,
                Some(RunOutcome::Passed),
                1
            ),
        ]
    );
    assert_eq!(
        tally(1_002).await,
        [
            ("e2e".to_owned(), RunState::Queued, None, 1),
            ("unit".to_owned(), RunState::Queued, None, 1),
        ]
    );
    assert!(tally(1_004).await.is_empty());
    // The schema refuses an unknown outcome outright.
    db.refused("UPDATE runs SET state = 'finished', outcome = 'skipped' WHERE id = 'r-000001'")
        .await;
    store.close().await;
}

#[test]
fn states_and_outcomes_parse_strictly() {
    for outcome in RunOutcome::ALL {
        assert_eq!(outcome.as_str().parse::<RunOutcome>().unwrap(), outcome);
    }
    for state in RunState::ALL {
        assert_eq!(state.as_str().parse::<RunState>().unwrap(), state);
    }
    assert!("timed out".parse::<RunOutcome>().is_err());
    assert!("Passed".parse::<RunOutcome>().is_err());
    assert!("leased".parse::<RunState>().is_err());
}

/// One due time of one schedule, taken by 20 transactions at once on two stores (two server
/// processes): exactly one takes it; another due time is another row.
async fn a_due_time_is_taken_once(db: &Db) {
    let a = db.store().await;
    let b = db.store().await;
    let fire = |due: i64| countersign_store::ScheduleFire {
        repo: "shop".into(),
        schedule: "nightly".into(),
        due_at_ms: due,
        branch: "main".into(),
        commit: "c".repeat(40),
        fired_at_ms: due + 5,
        runs: 1,
    };
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let fire = fire(60_000);
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let took = tx.fire_schedule(&fire).await.unwrap();
            if took {
                tx.enqueue_runs(&[work(i, "unit", "default", &["ci"])])
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            took
        }));
    }
    let mut taken = 0;
    for task in tasks {
        taken += usize::from(task.await.unwrap());
    }
    assert_eq!(taken, 1, "one due time, taken once");
    let all = RunFilter {
        limit: 100,
        ..RunFilter::default()
    };
    assert_eq!(a.runs(&all).await.unwrap().len(), 1, "queued once");
    let mut tx = b.begin().await.unwrap();
    assert!(tx.fire_schedule(&fire(120_000)).await.unwrap());
    tx.commit().await.unwrap();
    let latest = a.latest_schedule_fires("shop").await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].due_at_ms, 120_000);
    assert!(a.latest_schedule_fires("other").await.unwrap().is_empty());
}

/// Findings: the first observation of an identity opens `F-1`, the next counts on it, another
/// identity is `F-2`; a verified finding is not live, so its identity seen again opens `F-3`.
async fn findings_open_count_and_settle(db: &Db) {
    use countersign_lifecycle::{FindingKind, FindingState, Severity};
    use countersign_store::{Observation, Observed};
    let store = db.store().await;
    let seen = |test: &str, commit: &str, now: i64| Observation {
        repo: "shop".into(),
        repository: "github.com/acme/shop".into(),
        kind: FindingKind::TestFailure,
        suite: "unit".into(),
        test: test.into(),
        component: "component:default/payments".into(),
        severity: Severity::Critical,
        branch: "main".into(),
        commit: commit.into(),
        evidence: serde_json::json!({ "test": test, "commit": commit }),
        owners: vec!["group:default/team-pay".into()],
        now_ms: now,
    };
    let observe = |s: Observation| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let observed = tx.observe_finding(&s).await.unwrap();
            tx.commit().await.unwrap();
            observed
        }
    };
    let Observed::Opened(first) = observe(seen("t::charge", "c1", 1)).await else {
        panic!("the first observation opens")
    };
    assert_eq!((first.id.as_str(), first.number), ("F-1", 1));
    assert_eq!(first.state, FindingState::Open);
    let Observed::Again(again) = observe(seen("t::charge", "c2", 2)).await else {
        panic!("the second counts")
    };
    assert_eq!(again.id, "F-1");
    assert_eq!(
        (
            again.first_seen.as_str(),
            again.last_seen.as_str(),
            again.observations
        ),
        ("c1", "c2", 2)
    );
    assert_eq!(again.evidence["commit"], "c2");
    let Observed::Opened(other) = observe(seen("t::refund", "c2", 3)).await else {
        panic!("another test is another finding")
    };
    assert_eq!(other.id, "F-2");
    let mut tx = store.begin().await.unwrap();
    tx.settle_finding(
        "F-1",
        FindingState::Verified,
        &serde_json::json!({"passed": true}),
        4,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let verified = store.finding("F-1").await.unwrap().unwrap();
    assert_eq!(verified.state, FindingState::Verified);
    assert_eq!(verified.verification.unwrap()["passed"], true);
    assert_eq!(
        verified.last_seen, "c2",
        "verification is not an observation"
    );
    let Observed::Opened(recurred) = observe(seen("t::charge", "c4", 5)).await else {
        panic!("a verified finding is not live")
    };
    assert_eq!(recurred.id, "F-3");
    let listed = store
        .findings(&countersign_store::FindingFilter {
            state: Some(FindingState::Open),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["F-3", "F-2"]);
    // The schema refuses a second live finding of one identity and an unknown state.
    db.refused(
        "INSERT INTO findings (id, number, repo, repository, identity, kind, suite, test, component, severity, state, branch, first_seen, last_seen, observations, evidence, owners, opened_at, updated_at) \
         SELECT 'F-9', 9, repo, repository, identity, kind, suite, test, component, severity, 'reopened', branch, first_seen, last_seen, 1, evidence, owners, 0, 0 FROM findings WHERE id = 'F-3'",
    )
    .await;
    db.refused("UPDATE findings SET state = 'closed' WHERE id = 'F-2'")
        .await;
}

/// A base-version run keeps its suite source and the files restored from it through the
/// queue, a lease and a read; an ordinary run has none.
async fn base_version_runs_keep_their_suite_source(db: &Db) {
    let store = db.store().await;
    let mut base = work(1, "unit", "default", &["ci-1"]);
    base.base_version = Some(BaseVersion {
        source: "b".repeat(40),
        files: vec!["lib/tests/limit.sh".into(), "lib/tests/new.sh".into()],
    });
    enqueue(
        &store,
        &[base.clone(), work(2, "unit", "default", &["ci-1"])],
    )
    .await;
    assert_eq!(
        lease(&store, "ci-1", &["default"], 2, 10_000).await,
        ["r-000001", "r-000002"]
    );
    let read = store.run("r-000001").await.unwrap().unwrap();
    assert_eq!(read.base_version, base.base_version);
    assert_eq!(
        store.run("r-000002").await.unwrap().unwrap().base_version,
        None
    );
    store.close().await;
}

/// A merge to verify, noted twice and taken by 20 transactions at once on two stores (two
/// server processes, several announcements of one merge): exactly one takes it and queues
/// its runs; it is no longer waiting once taken; a merge never noted is never taken.
async fn a_merge_is_verified_once(db: &Db) {
    let a = db.store().await;
    let b = db.store().await;
    let commit = "d".repeat(40);
    for store in [&a, &b] {
        let mut tx = store.begin().await.unwrap();
        tx.await_verification("p-1", "shop", &commit).await.unwrap();
        tx.await_verification("p-2", "shop", &commit).await.unwrap();
        tx.commit().await.unwrap();
    }
    let waiting = a.awaited_verifications("shop").await.unwrap();
    let names: Vec<&str> = waiting.iter().map(|w| w.proposal.as_str()).collect();
    assert_eq!(names, ["p-2", "p-1"], "newest first, each once");
    assert_eq!(waiting[0].commit, commit);
    assert!(a.awaited_verifications("other").await.unwrap().is_empty());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let took = tx
                .take_verification("p-1", 1_000 + i64::try_from(i).unwrap())
                .await
                .unwrap();
            if took {
                tx.enqueue_runs(&[work(i, "unit", "default", &["ci"])])
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            took
        }));
    }
    let mut taken = 0;
    for task in tasks {
        taken += usize::from(task.await.unwrap());
    }
    assert_eq!(taken, 1, "one merge, verified once");
    let all = RunFilter {
        limit: 100,
        ..RunFilter::default()
    };
    assert_eq!(a.runs(&all).await.unwrap().len(), 1, "queued once");
    let waiting = b.awaited_verifications("shop").await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].proposal, "p-2");
    let mut tx = b.begin().await.unwrap();
    assert!(
        !tx.take_verification("p-9", 5).await.unwrap(),
        "never noted"
    );
    // Noted again after it was taken: still taken.
    tx.await_verification("p-1", "shop", &commit).await.unwrap();
    assert!(!tx.take_verification("p-1", 6).await.unwrap());
    tx.commit().await.unwrap();
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::Db::sqlite().await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::postgres().await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

/// A capsule opens the rows its signer was named on, of its suites, in its environment, and
/// nothing else; rows a `[[runners]]` name opens stay that runner's, capsule or not.
async fn a_capsule_leases_only_what_its_signer_was_delegated(db: &Db) {
    let store = db.store().await;
    let delegated = |n, suite: &str, env: &str, runners: &[&str], signers: &[&str]| NewRun {
        capsule_signers: signers.iter().map(|s| (*s).to_owned()).collect(),
        ..work(n, suite, env, runners)
    };
    let (org, late) = ("a".repeat(64), "b".repeat(64));
    enqueue(
        &store,
        &[
            delegated(1, "eu-int", "enclave", &[], &[&org]),
            delegated(2, "eu-b", "enclave", &[], &[&org]),
            delegated(3, "eu-int", "elsewhere", &[], &[&org]),
            delegated(4, "eu-int", "enclave", &[], &[&late]),
            delegated(5, "unit", "enclave", &["ci"], &[]),
            delegated(6, "eu-int", "enclave", &["ci"], &[&org]),
        ],
    )
    .await;
    let envs = vec!["enclave".to_owned()];
    let covered = vec!["eu-int".to_owned()];
    let lease_under = |runner: &'static str, signer: String, suites: Vec<String>| {
        let store = store.clone();
        let envs = envs.clone();
        async move {
            let principal = format!("runner:{runner}");
            let mut tx = store.begin().await.unwrap();
            let runs = tx
                .lease_runs(&LeaseAsk {
                    runner,
                    capsule: Some(CapsuleAsk {
                        signer: &signer,
                        suites: &suites,
                        environment: "enclave",
                    }),
                    principal: &principal,
                    repository: "github.com/acme/shop",
                    environments: &envs,
                    max: 16,
                    now_ms: 0,
                    lease_ms: LEASE_MS,
                })
                .await
                .unwrap();
            tx.commit().await.unwrap();
            runs.into_iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    // No suites: nothing, not even an SQL error.
    assert!(
        lease_under("edge", org.clone(), Vec::new())
            .await
            .is_empty()
    );
    // Without a capsule, the edge (no `[[runners]]` name on any row) gets nothing.
    assert!(lease(&store, "edge", &["enclave"], 16, 0).await.is_empty());
    // org's capsule for eu-int in the enclave: rows 1 and 6; not eu-b (2), not another
    // environment (3), not late's (4), not the runner's own (5).
    assert_eq!(
        lease_under("edge", org.clone(), covered.clone()).await,
        ["r-000001", "r-000006"]
    );
    // A listed runner with a capsule leases what either opens.
    assert_eq!(
        lease_under("ci", late.clone(), covered.clone()).await,
        ["r-000004", "r-000005"]
    );
    store.close().await;
}

/// The read a poll makes before leasing agrees with the lease: nothing for a runner that may
/// lease nothing (others' items, other environments, live leases), something exactly when
/// a lease would take it (queued, or its lease expired by the caller's clock).
async fn a_poll_reads_before_it_leases(db: &Db) {
    let store = db.store().await;
    let envs = vec!["default".to_owned()];
    let ask = |runner: &'static str, now_ms: i64| LeaseAsk {
        runner,
        capsule: None,
        principal: "runner:x",
        repository: "github.com/acme/shop",
        environments: &envs,
        max: 1,
        now_ms,
        lease_ms: LEASE_MS,
    };
    assert!(!store.any_leasable(&ask("ci-1", 0)).await.unwrap(), "empty");
    enqueue(
        &store,
        &[
            work(1, "unit", "default", &["ci-1"]),
            work(2, "unit", "staging", &["ci-2"]),
        ],
    )
    .await;
    assert!(store.any_leasable(&ask("ci-1", 0)).await.unwrap());
    assert!(
        !store.any_leasable(&ask("ci-2", 0)).await.unwrap(),
        "staging only"
    );
    assert!(
        !store.any_leasable(&ask("other", 0)).await.unwrap(),
        "not listed"
    );
    assert_eq!(
        lease(&store, "ci-1", &["default"], 1, 0).await,
        ["r-000001"]
    );
    assert!(
        !store.any_leasable(&ask("ci-1", 1)).await.unwrap(),
        "leased"
    );
    let expired = i64::try_from(LEASE_MS).unwrap();
    assert!(
        store.any_leasable(&ask("ci-1", expired)).await.unwrap(),
        "expired"
    );
    assert_eq!(
        lease(&store, "ci-1", &["default"], 1, expired).await,
        ["r-000001"]
    );
    store.close().await;
}

on_both_backends!(
    a_poll_reads_before_it_leases,
    a_capsule_leases_only_what_its_signer_was_delegated,
    concurrent_leases_never_share_an_item,
    leases_expire_and_only_the_holder_acts,
    listing_filters,
    a_due_time_is_taken_once,
    findings_open_count_and_settle,
    base_version_runs_keep_their_suite_source,
    a_merge_is_verified_once,
);
