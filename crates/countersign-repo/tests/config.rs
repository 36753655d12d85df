//! countersign.toml parsing: defaults, the starter file, and precise errors.

use countersign_graph::Surface;
use countersign_repo::{CODEOWNERS_LOCATIONS, Config, STARTER_CONFIG};

/// Parses `text`, rendering the outcome as one line: `ok` plus a debug dump, or the error.
fn check(text: &str) -> String {
    match Config::parse(text) {
        Ok(config) if config == Config::default() => "ok: defaults".to_owned(),
        Ok(config) => format!("ok: {config:?}"),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(check(""), "ok: defaults");
    assert_eq!(check("[graph]\n[policy]\n"), "ok: defaults");
}

#[test]
fn starter_config_parses_to_exactly_the_defaults() {
    assert_eq!(Config::parse(STARTER_CONFIG).unwrap(), Config::default());
}

#[test]
fn defaults_match_the_documentation() {
    let config = Config::default();
    assert_eq!(
        config.graph.catalog,
        ["**/catalog-info.yaml", "**/catalog-info.yml"]
    );
    assert_eq!(
        config.graph.codeowners_candidates(),
        CODEOWNERS_LOCATIONS.to_vec()
    );
    assert_eq!(config.policy.dir, ".countersign/policy");
    assert_eq!(config.never_automate.surfaces.len(), 7);
    assert_eq!(
        config.never_automate.paths[&Surface::Irreversible],
        ["**/migrations/**"]
    );
    assert_eq!(
        config.never_automate.paths[&Surface::CiCd],
        [
            ".github/workflows/**",
            ".gitlab-ci.yml",
            ".circleci/**",
            "Jenkinsfile"
        ]
    );
    assert!(config.governance.paths.is_empty());
    assert_eq!(config.plan.depth, 1);
}

#[test]
fn explicit_values_replace_defaults() {
    let config = Config::parse(
        r#"
[graph]
catalog = ["catalog/**/*.yaml"]
codeowners = "docs/CODEOWNERS"

[never_automate]
surfaces = ["payments", "auth", "governance"]

[never_automate.paths]
payments = ["billing/**"]
ci-cd = []

[plan]
depth = 3
"#,
    )
    .unwrap();
    assert_eq!(config.graph.catalog, ["catalog/**/*.yaml"]);
    assert_eq!(config.graph.codeowners_candidates(), ["docs/CODEOWNERS"]);
    assert_eq!(
        config.never_automate.surfaces,
        [Surface::Auth, Surface::Payments, Surface::Governance]
            .into_iter()
            .collect()
    );
    // Per-surface merge: irreversible keeps its default, ci-cd is emptied explicitly.
    assert_eq!(
        config.never_automate.paths[&Surface::Irreversible],
        ["**/migrations/**"]
    );
    assert!(config.never_automate.paths[&Surface::CiCd].is_empty());
    assert_eq!(
        config.never_automate.paths[&Surface::Payments],
        ["billing/**"]
    );
    assert_eq!(config.plan.depth, 3);
}

#[test]
fn errors_name_line_column_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "[graph]\ncatalog = [\"a\"]\ncatalogue = [\"b\"]\n",
            "error: countersign.toml:3:1: field `graph.catalogue`: unknown field `catalogue`, expected `catalog` or `codeowners`",
        ),
        (
            "[grpah]\n",
            "error: countersign.toml:1:2: field `grpah`: unknown field `grpah`, expected one of `graph`, `policy`, `never_automate`, `governance`, `plan`, `agents`, `repository`, `runners`, `replay`, `limits`, `approval`, `suites`, `schedules`, `capsules`",
        ),
        (
            "[never_automate]\nsurfaces = [\"auth\", \"payment\"]\n",
            "error: countersign.toml:2:21: field `never_automate.surfaces`: unknown surface `payment`, expected one of: auth, authz, payments, regulated-data, irreversible, ci-cd, governance, build",
        ),
        (
            "[never_automate.paths]\nbilling = [\"x/**\"]\n",
            "error: countersign.toml:2:1: field `never_automate.paths.billing`: unknown surface `billing`, expected one of: auth, authz, payments, regulated-data, irreversible, ci-cd, governance, build",
        ),
        (
            "[never_automate]\nsurfaces = [\"auth\"]\n",
            "error: countersign.toml:2:13: field `never_automate.surfaces`: `governance` cannot be removed: an agent must never be able to edit the rules that govern it",
        ),
        (
            "[never_automate]\nsurfaces = []\n",
            "error: countersign.toml:2:1: field `never_automate.surfaces`: `governance` cannot be removed: an agent must never be able to edit the rules that govern it",
        ),
        (
            "[plan]\ndepth = \"two\"\n",
            "error: countersign.toml:2:9: field `plan.depth`: invalid type: string \"two\", expected u32",
        ),
        (
            "[plan]\ndepth = -1\n",
            "error: countersign.toml:2:9: field `plan.depth`: invalid value: integer `-1`, expected u32",
        ),
        (
            "[governance]\npaths = [\n  \"ok/**\",\n  \"bad/[\",\n]\n",
            "error: countersign.toml:4:3: field `governance.paths`: invalid glob `bad/[`: unclosed character class; missing ']'",
        ),
        (
            "[policy]\ndir = \"../elsewhere\"\n",
            "error: countersign.toml:2:7: field `policy.dir`: `../elsewhere` is not a repository-relative path (use `/` separators, no leading `/`, no `..`)",
        ),
        (
            "[replay]\nhuman_share_max = 150\n",
            "error: countersign.toml:2:19: field `replay.human_share_max`: a share in percent, 0 to 100",
        ),
        (
            "[limits]\nyaml_depth = 5000\n",
            "error: countersign.toml:2:14: field `limits.yaml_depth`: a limit is a whole number from 1 to 1024, got 5000",
        ),
        (
            "[limits]\nentities = 0\n",
            "error: countersign.toml:2:12: field `limits.entities`: a limit is a whole number from 1 to 18446744073709551615, got 0",
        ),
        (
            "[limits]\nglobs_per_entity = 1\nentitis = 3\n",
            "error: countersign.toml:3:1: field `limits.entitis`: unknown field `entitis`, expected one of `file_bytes`, `catalog_bytes`, `entities`, `yaml_depth`, `yaml_alias_bytes`, `globs_per_entity`, `globs`, `glob_bytes`, `runners`",
        ),
        (
            "[repository]\nname = \"r\"\n[limits]\nrunners = 1\n[[runners]]\nname = \"a\"\npublic_key = \"0000000000000000000000000000000000000000000000000000000000000000\"\nsuites = [\"s\"]\n[[runners]]\nname = \"b\"\npublic_key = \"1111111111111111111111111111111111111111111111111111111111111111\"\nsuites = [\"s\"]\n",
            "error: countersign.toml:10:8: field `runners`: more than 1 [[runners]]: over the limit `runners` = 1 (raise it under [limits] in countersign.toml if the input is legitimate)",
        ),
        (
            "[graph]\ncatalog = [\"a\"\n",
            "error: countersign.toml:2:15: field `graph.catalog`: unclosed array, expected `]`",
        ),
    ];
    let mut failures = Vec::new();
    for (input, expected) in cases {
        let actual = check(input);
        if actual != *expected {
            failures.push(format!(
                "input:\n{input}\nexpected: {expected}\nactual:   {actual}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn agent_patterns_treat_brackets_literally() {
    let agents = Config::default().agents;
    for name in [
        "dependabot[bot]",
        "github-actions[bot]",
        "Renovate Bot",
        "dependabot",
    ] {
        assert!(agents.is_agent(name), "{name} should be an agent");
    }
    for name in ["alice", "b", "bot", "my-bot", "[bot]x"] {
        assert!(!agents.is_agent(name), "{name} should not be an agent");
    }
}

/// Every TOML example in docs/config.md parses, and the starter block there is the defaults.
#[test]
fn documentation_examples_parse() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md"))
        .unwrap();
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 7, "found {} toml blocks", blocks.len());
    for block in &blocks {
        if let Err(e) = Config::parse(block) {
            panic!("docs/config.md example does not parse: {e}\n{block}");
        }
    }
    assert_eq!(
        Config::parse(blocks.last().unwrap()).unwrap(),
        Config::default()
    );
}

#[test]
fn surface_spellings_round_trip() {
    for surface in Config::default().never_automate.surfaces {
        let name = countersign_repo::config::surface_name(surface);
        assert_eq!(
            countersign_repo::config::parse_surface(name),
            Some(surface),
            "{name}"
        );
    }
}

const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

#[test]
fn runners_and_repository_parse() {
    let text = format!(
        "[repository]\nname = \"github.com/acme/shop\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{}\"\nsuites = [\"unit\", \"e2e\"]\n",
        KEY.to_uppercase()
    );
    let config = Config::parse(&text).unwrap();
    assert_eq!(
        config.repository.name.as_deref(),
        Some("github.com/acme/shop")
    );
    assert_eq!(config.runners.len(), 1);
    let runner = &config.runners[0];
    assert_eq!(runner.name, "ci");
    assert_eq!(runner.public_key, KEY, "keys are normalized to lowercase");
    assert_eq!(
        runner.suites.iter().map(String::as_str).collect::<Vec<_>>(),
        ["e2e", "unit"]
    );
}

/// `[repository] protected` takes branch short names; a full ref or a glob is refused with
/// its line and field, since a pattern nobody meant would protect nothing.
#[test]
fn protected_branches_are_short_names() {
    let config = Config::parse("[repository]\nprotected = [\"main\", \"release/1.x\"]\n").unwrap();
    assert_eq!(
        config.repository.protected,
        Some(vec!["main".to_owned(), "release/1.x".to_owned()])
    );
    assert_eq!(Config::default().repository.protected, None);
    for bad in ["refs/heads/main", "release/*", "", "a b", "-x", "a..b"] {
        let text = format!("[repository]\nprotected = [\"main\", \"{bad}\"]\n");
        let error = Config::parse(&text).unwrap_err().to_string();
        assert!(
            error.contains("repository.protected") && error.contains("is not a branch name"),
            "{bad:?}: {error}"
        );
    }
}

#[test]
fn runner_errors_name_line_column_and_field() {
    let runner = |body: &str| format!("[repository]\nname = \"acme/shop\"\n[[runners]]\n{body}");
    let cases: Vec<(String, String)> = vec![
        (
            format!("[[runners]]\nname = \"ci\"\npublic_key = \"{KEY}\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:2:8: field `runners`: runners are declared but `[repository] name` is not: evidence must name the repository it is about".to_owned(),
        ),
        (
            runner("name = \"ci\"\npublic_key = \"abc\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:5:14: field `runners.public_key`: runner `ci`: public_key must be the 64 hex digits of a raw ed25519 key (as `countersign runner keygen` prints), got 3 characters".to_owned(),
        ),
        (
            runner(&format!("name = \"ci\"\npublic_key = \"{KEY}\"\nsuites = []\n")),
            "error: countersign.toml:6:10: field `runners.suites`: runner `ci` may attest no suite; list at least one".to_owned(),
        ),
        (
            runner(&format!("name = \"c i\"\npublic_key = \"{KEY}\"\nsuites = [\"unit\"]\n")),
            "error: countersign.toml:4:8: field `runners.name`: `c i` is not a runner name (letters, digits, `-`, `_`, `.`)".to_owned(),
        ),
        (
            runner(&format!("name = \"ci\"\npublic_key = \"{KEY}\"\nsuites = [\"unit\"]\n[[runners]]\nname = \"ci2\"\npublic_key = \"{KEY}\"\nsuites = [\"e2e\"]\n")),
            "error: countersign.toml:9:14: field `runners.public_key`: runner `ci2` has the same public key as runner `ci`".to_owned(),
        ),
        (
            runner("name = \"ci\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:3:1: field `runners`: missing field `public_key`".to_owned(),
        ),
        (
            "[repository]\nname = \"\"\n".to_owned(),
            "error: countersign.toml:2:8: field `repository.name`: `` is not a repository name (non-empty, no whitespace, e.g. `github.com/acme/shop`)".to_owned(),
        ),
    ];
    let mut failures = Vec::new();
    for (input, expected) in &cases {
        let actual = check(input);
        if actual != *expected {
            failures.push(format!(
                "input:\n{input}\nexpected: {expected}\nactual:   {actual}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_replay_share_is_read_and_defaults_to_none() {
    assert_eq!(Config::default().replay.human_share_max, None);
    let config = Config::parse("[replay]\nhuman_share_max = 40\n").unwrap();
    assert_eq!(config.replay.human_share_max, Some(40));
}

/// `[[runners]]` is checked in linear time: 20,000 runners parse, and duplicate keys are
/// still found (the check used to compare every runner with every other).
#[test]
fn many_runners_are_linear_and_bounded() {
    let mut text = String::from("[repository]\nname = \"r\"\n[limits]\nrunners = 20000\n");
    for i in 0..20_000u32 {
        text.push_str(&format!(
            "[[runners]]\nname = \"r{i}\"\npublic_key = \"{i:064x}\"\nsuites = [\"s\"]\n"
        ));
    }
    assert_eq!(Config::parse(&text).unwrap().runners.len(), 20_000);
    text.push_str(&format!(
        "[[runners]]\nname = \"dup\"\npublic_key = \"{:064x}\"\nsuites = [\"s\"]\n",
        7
    ));
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(err.contains("over the limit `runners` = 20000"), "{err}");
    let default_limit = Config::parse(&text.replace("runners = 20000", "runners = 30000"))
        .unwrap_err()
        .to_string();
    assert!(
        default_limit.contains("runner `dup` has the same public key as runner `r7`"),
        "{default_limit}"
    );
}

#[test]
fn agent_extra_is_read_and_bounded() {
    let config = Config::parse("[approval]\nagent_extra = 1\n").unwrap();
    assert_eq!(config.approval.agent_extra, 1);
    assert_eq!(Config::default().approval.agent_extra, 0);
    assert_eq!(
        check("[approval]\nagent_extra = 4\n"),
        "error: countersign.toml:2:15: field `approval.agent_extra`: 0 to 3: how many more humans than its tier needs an agent's change needs"
    );
}

/// `[suites.NAME]`: an argv, a workdir, a bounded timeout, reports by kind, environments
/// (default `default`) and the globs of the files that define the suite.
#[test]
fn suites_parse_with_their_defaults() {
    let config = Config::parse(
        r#"
[suites.unit]
command = ["cargo", "nextest", "run"]
workdir = "services/api"
timeout = "1h30m"
reports = { junit = ["target/junit.xml"], sarif = ["./scan.sarif"] }
environments = ["staging", "ci"]
paths = ["services/api/tests/**"]

[suites.e2e]
command = ["sh", "-c", "make e2e"]
"#,
    )
    .unwrap();
    let unit = &config.suites["unit"];
    assert_eq!(unit.command, ["cargo", "nextest", "run"]);
    assert_eq!(unit.workdir, "services/api");
    assert_eq!(unit.timeout, std::time::Duration::from_secs(5400));
    assert_eq!(unit.reports.junit, ["target/junit.xml"]);
    assert_eq!(unit.reports.sarif, ["scan.sarif"]);
    assert!(unit.reports.vex.is_empty());
    assert_eq!(
        unit.environments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["ci", "staging"]
    );
    assert_eq!(unit.paths, ["services/api/tests/**"]);
    let e2e = &config.suites["e2e"];
    assert_eq!(e2e.workdir, ".");
    assert_eq!(e2e.timeout, std::time::Duration::from_secs(600));
    assert!(e2e.reports.is_empty());
    assert_eq!(
        e2e.environments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["default"]
    );
    assert!(Config::default().suites.is_empty());
}

#[test]
fn suite_errors_name_line_column_and_field() {
    let cases: Vec<(&str, &str)> = vec![
        (
            "[suites.unit]\nworkdir = \".\"\n",
            "error: countersign.toml:1:1: field `suites.unit`: missing field `command`",
        ),
        (
            "[suites.unit]\ncommand = []\n",
            "error: countersign.toml:2:11: field `suites.unit.command`: the command is an argv list with a program first, e.g. [\"make\", \"test\"] or [\"sh\", \"-c\", \"...\"]",
        ),
        (
            "[suites.unit]\ncommand = \"make test\"\n",
            "error: countersign.toml:2:11: field `suites.unit.command`: invalid type: string \"make test\", expected a sequence",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\nworkdir = \"../elsewhere\"\n",
            "error: countersign.toml:3:11: field `suites.unit.workdir`: `../elsewhere` is not a repository-relative path (use `/` separators, no leading `/`, no `..`)",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\nworkdir = \"/tmp\"\n",
            "error: countersign.toml:3:11: field `suites.unit.workdir`: `/tmp` is not a repository-relative path (use `/` separators, no leading `/`, no `..`)",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\ntimeout = \"10\"\n",
            "error: countersign.toml:3:11: field `suites.unit.timeout`: `10` is not a duration (whole numbers with a unit s, m or h: `90s`, `10m`, `1h30m`)",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\ntimeout = \"25h\"\n",
            "error: countersign.toml:3:11: field `suites.unit.timeout`: `25h` is out of range: from 1s to 24h",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\ntimeout = \"0s\"\n",
            "error: countersign.toml:3:11: field `suites.unit.timeout`: `0s` is out of range: from 1s to 24h",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\nreports = { junit = [\"../../etc/passwd\"] }\n",
            "error: countersign.toml:3:22: field `suites.unit.reports.junit`: `../../etc/passwd` is not a repository-relative file path (use `/` separators, no leading `/`, no `..`, no glob)",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\nreports = { sarif = [\"out/*.sarif\"] }\n",
            "error: countersign.toml:3:22: field `suites.unit.reports.sarif`: `out/*.sarif` is not a repository-relative file path (use `/` separators, no leading `/`, no `..`, no glob)",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\nreports = { coverage = [\"c.xml\"] }\n",
            "error: countersign.toml:3:13: field `suites.unit.reports`: unknown field `coverage`, expected one of `junit`, `sarif`, `vex`",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\nenvironments = []\n",
            "error: countersign.toml:3:16: field `suites.unit.environments`: suite `unit` may run in no environment; list at least one or leave the key out (`default`)",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\nenvironments = [\"eu west\"]\n",
            "error: countersign.toml:3:17: field `suites.unit.environments`: `eu west` is not an environment name (letters, digits, `-`, `_`, `.`)",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\npaths = [\"tests/[\"]\n",
            "error: countersign.toml:3:10: field `suites.unit.paths`: invalid glob `tests/[`: unclosed character class; missing ']'",
        ),
        (
            "[suites.\"a b\"]\ncommand = [\"make\"]\n",
            "error: countersign.toml:1:9: field `suites`: `a b` is not a suite name (letters, digits, `-`, `_`, `.`, at most 128, not starting with `.`)",
        ),
        (
            "[suites.unit]\ncommand = [\"make\"]\nshell = true\n",
            "error: countersign.toml:3:1: field `suites.unit.shell`: unknown field `shell`, expected one of `command`, `workdir`, `timeout`, `reports`, `environments`, `paths`",
        ),
    ];
    let mut failures = Vec::new();
    for (input, expected) in &cases {
        let actual = check(input);
        if actual != *expected {
            failures.push(format!(
                "input:\n{input}\nexpected: {expected}\nactual:   {actual}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn durations_take_units_in_order() {
    use countersign_repo::config::parse_duration;
    use std::time::Duration;
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("2h5s"), Some(Duration::from_secs(7205)));
    for bad in [
        "",
        "10",
        "m",
        "1m1h",
        "1m1m",
        "1.5h",
        "-1s",
        "1d",
        "99999999999s",
        " 1s",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
}

/// `[schedules.NAME]`: a five-field cron expression read in UTC unless a zone is named, a
/// branch, suites the same file defines and an optional environment; due times are
/// computed from the parsed expression.
#[test]
fn schedules_parse_and_compute_due_times() {
    use std::time::{Duration, UNIX_EPOCH};
    let config = Config::parse(
        r#"
[suites.unit]
command = ["make", "test"]
environments = ["ci", "staging"]

[schedules.nightly]
cron = "0 3 * * *"
branch = "main"
suites = ["unit", "unit"]
environment = "ci"

[schedules.paris]
cron = "30 8 * * 1-5"
branch = "release/1.x"
suites = ["unit"]
timezone = "Europe/Paris"
"#,
    )
    .unwrap();
    let nightly = &config.schedules["nightly"];
    assert_eq!(nightly.branch, "main");
    assert_eq!(nightly.suites, ["unit"]);
    assert_eq!(nightly.environment.as_deref(), Some("ci"));
    assert_eq!(nightly.timezone, "UTC");
    // 2026-01-05T09:00:00Z, a Monday.
    let now = UNIX_EPOCH + Duration::from_secs(1_767_603_600);
    let at = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(at(nightly.due_at_or_before(now).unwrap()), 1_767_582_000); // 03:00Z
    assert_eq!(at(nightly.due_after(now).unwrap()), 1_767_668_400); // next day 03:00Z
    // Exactly at a due time, that time is due (and the next is a day on).
    let exact = UNIX_EPOCH + Duration::from_secs(1_767_582_000);
    assert_eq!(at(nightly.due_at_or_before(exact).unwrap()), 1_767_582_000);
    assert_eq!(at(nightly.due_after(exact).unwrap()), 1_767_668_400);
    let paris = &config.schedules["paris"];
    assert_eq!(paris.environment, None);
    // 08:30 in Paris (UTC+1 in January) is 07:30Z.
    assert_eq!(at(paris.due_at_or_before(now).unwrap()), 1_767_598_200);
    assert!(Config::default().schedules.is_empty());
}

#[test]
fn schedule_errors_name_line_column_and_field() {
    let suite = "[suites.unit]\ncommand = [\"make\"]\n";
    let with = |schedule: &str| format!("{suite}[schedules.nightly]\n{schedule}");
    let cases: Vec<(String, &str)> = vec![
        (
            with("cron = \"0 3 * *\"\nbranch = \"main\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:4:8: field `schedules.nightly.cron`: `0 3 * *` is not a five-field cron expression (minute hour day-of-month month day-of-week, e.g. `0 3 * * *`): Invalid pattern: Pattern must have 5 fields when seconds are disallowed.",
        ),
        (
            with("cron = \"0 0 3 * * *\"\nbranch = \"main\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:4:8: field `schedules.nightly.cron`: `0 0 3 * * *` is not a five-field cron expression (minute hour day-of-month month day-of-week, e.g. `0 3 * * *`): Invalid pattern: Pattern must have 5 fields when seconds are disallowed.",
        ),
        (
            with("cron = \"61 3 * * *\"\nbranch = \"main\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:4:8: field `schedules.nightly.cron`: `61 3 * * *` is not a five-field cron expression (minute hour day-of-month month day-of-week, e.g. `0 3 * * *`): Component error: Number out of bounds.",
        ),
        (
            with("cron = \"@daily\"\nbranch = \"main\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:4:8: field `schedules.nightly.cron`: `@daily` is not a five-field cron expression (minute hour day-of-month month day-of-week, e.g. `0 3 * * *`): nicknames such as `@daily` are not accepted: write the five fields",
        ),
        (
            with("cron = \"0 3 * * *\"\nbranch = \"refs/heads/main\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:5:10: field `schedules.nightly.branch`: `refs/heads/main` is not a branch name (a short name such as `main` or `release/1.x`, no glob)",
        ),
        (
            with("cron = \"0 3 * * *\"\nbranch = \"main\"\nsuites = []\n"),
            "error: countersign.toml:6:10: field `schedules.nightly.suites`: schedule `nightly` runs no suite; list at least one",
        ),
        (
            with("cron = \"0 3 * * *\"\nbranch = \"main\"\nsuites = [\"e2e\"]\n"),
            "error: countersign.toml:6:11: field `schedules.nightly.suites`: suite `e2e` has no [suites.e2e] entry in this file: a schedule runs only suites the fleet can run",
        ),
        (
            with(
                "cron = \"0 3 * * *\"\nbranch = \"main\"\nsuites = [\"unit\"]\nenvironment = \"prod\"\n",
            ),
            "error: countersign.toml:7:15: field `schedules.nightly.environment`: suite `unit` does not run in environment `prod` (its environments: default)",
        ),
        (
            with(
                "cron = \"0 3 * * *\"\nbranch = \"main\"\nsuites = [\"unit\"]\ntimezone = \"Mars/Olympus\"\n",
            ),
            "error: countersign.toml:7:12: field `schedules.nightly.timezone`: `Mars/Olympus` is not a time zone this machine knows (an IANA name such as `UTC` or `Europe/Paris`)",
        ),
        (
            with("cron = \"0 3 * * *\"\nsuites = [\"unit\"]\n"),
            "error: countersign.toml:3:1: field `schedules.nightly`: missing field `branch`",
        ),
        (
            with(
                "cron = \"0 3 * * *\"\nbranch = \"main\"\nsuites = [\"unit\"]\nproposal = \"p-1\"\n",
            ),
            "error: countersign.toml:7:1: field `schedules.nightly.proposal`: unknown field `proposal`, expected one of `cron`, `branch`, `suites`, `environment`, `timezone`",
        ),
    ];
    let mut failures = Vec::new();
    for (input, expected) in &cases {
        let actual = check(input);
        if actual != *expected {
            failures.push(format!(
                "input:\n{input}\nexpected: {expected}\nactual:   {actual}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An expression that never falls due (the 30th of February) costs one bounded search, not
/// a hang, every time it is asked.
#[test]
fn a_never_due_schedule_is_cheap() {
    let config = Config::parse(
        "[suites.unit]\ncommand = [\"make\"]\n[schedules.never]\ncron = \"0 0 30 2 *\"\nbranch = \"main\"\nsuites = [\"unit\"]\n",
    );
    let started = std::time::Instant::now();
    if let Ok(config) = &config {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_603_600);
        let never = &config.schedules["never"];
        assert_eq!(never.due_at_or_before(now), None);
        assert_eq!(never.due_after(now), None);
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// `[[capsules.signers]]`: parsed with what each may delegate; every mistake names its line
/// and field.
#[test]
fn capsule_signers_are_validated() {
    let key = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
    let good = format!(
        "[repository]\nname = \"github.com/acme/shop\"\n\n[[capsules.signers]]\nname = \"org\"\npublic_key = \"{}\"\nsuites = [\"eu-int\"]\nenvironments = [\"eu\"]\n",
        key.to_uppercase()
    );
    let config = Config::parse(&good).unwrap();
    assert_eq!(config.capsule_signers.len(), 1);
    assert_eq!(config.capsule_signers[0].public_key, key);
    assert!(config.capsule_signers[0].suites.contains("eu-int"));
    for (text, field) in [
        (
            good.replace("environments = [\"eu\"]", "environments = []"),
            "capsules.signers.environments",
        ),
        (good.replace("suites = [\"eu-int\"]\n", ""), "capsules"),
        (
            good.replace(&key.to_uppercase(), "abc"),
            "capsules.signers.public_key",
        ),
        (
            good.replace("name = \"github.com/acme/shop\"\n", ""),
            "capsules.signers",
        ),
        (
            format!(
                "{good}\n[[capsules.signers]]\nname = \"org2\"\npublic_key = \"{key}\"\nsuites = [\"x\"]\nenvironments = [\"eu\"]\n"
            ),
            "capsules.signers.public_key",
        ),
        (
            good.replace("suites = [\"eu-int\"]", "suites = [\"eu int\"]"),
            "capsules.signers.suites",
        ),
    ] {
        let error = Config::parse(&text).unwrap_err().to_string();
        assert!(error.starts_with("countersign.toml:"), "{error}");
        assert!(
            error.contains(&format!("field `{field}")),
            "{field}: {error}"
        );
    }
}
