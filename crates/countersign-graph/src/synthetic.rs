//! A deterministic synthetic catalog for benchmarks and scale tests.
//!
//! Shape: one Component per directory `services/c<i>/catalog-info.yaml`, grouped into
//! systems of 100 ("clusters") owned by one of `n/50 + 1` teams. Each component depends on
//! `edges_per_node` others: mostly later components of its own cluster (a layered DAG, as
//! real services are), and one in ten on a shared platform cluster, the first 100 nodes.
//! So a change to a platform node has a wide blast radius and most changes a narrow one.
//! Pure: the seed fixes everything; no clock, no randomness from outside.
//!
//! [`chain`] is the adversarial shape instead: one long dependency chain (or cycle), the
//! worst case for a blast radius walk and for rendering its paths.

use crate::source::MemorySource;

/// A tiny xorshift generator: enough for spreading edges, and dependency-free.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// Path of the descriptor of synthetic component `i`.
pub fn component_file(i: usize) -> String {
    format!("services/c{i}/catalog-info.yaml")
}

/// A catalog of `n_nodes` components (plus their teams) with `edges_per_node` dependsOn
/// edges each, as `catalog-info.yaml` files and one source file per component.
pub fn catalog(n_nodes: usize, edges_per_node: usize, seed: u64) -> MemorySource {
    let mut rng = XorShift(seed | 1);
    let teams = n_nodes / 50 + 1;
    let mut files: Vec<(String, String)> = Vec::with_capacity(n_nodes * 2 + 1);
    let mut groups = String::new();
    for t in 0..teams {
        groups.push_str(&format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-{t}\nspec:\n  type: team\n  children: []\n"
        ));
    }
    files.push(("teams/catalog-info.yaml".into(), groups));
    let platform = 100.min(n_nodes);
    for i in 0..n_nodes {
        let cluster_start = i / 100 * 100;
        let cluster_end = (cluster_start + 100).min(n_nodes);
        let mut deps = std::collections::BTreeSet::new();
        for _ in 0..edges_per_node {
            let later = cluster_end.saturating_sub(i + 1);
            let target = if rng.below(10) == 0 && i >= platform {
                rng.below(platform)
            } else if later > 0 {
                i + 1 + rng.below(later)
            } else {
                continue;
            };
            deps.insert(target);
        }
        let criticality = ["low", "moderate", "high", "critical"][rng.below(4)];
        let mut doc = format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: c{i}\n  annotations:\n    countersign.dev/criticality: {criticality}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-{}\n  dependsOn:\n",
            i % teams
        );
        if deps.is_empty() {
            doc = doc.replace("  dependsOn:\n", "  dependsOn: []\n");
        }
        for d in deps {
            doc.push_str(&format!("    - component:c{d}\n"));
        }
        files.push((component_file(i), doc));
        files.push((
            format!("services/c{i}/src/main.rs"),
            "fn main() {}\n".into(),
        ));
    }
    MemorySource::new(files)
}

/// `n` components where `c<i+1>` depends on `c<i>` (so a change to `c0` reaches all of
/// them, `c<n-1>` at distance `n - 1`), one descriptor each at
/// `services/c<i>/catalog-info.yaml` (so each owns its directory); with `cycle`, `c0` also
/// depends on `c<n-1>`.
pub fn chain(n: usize, cycle: bool) -> MemorySource {
    let mut files: Vec<(String, String)> = Vec::with_capacity(n + 1);
    for i in 0..n {
        let mut doc = format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: c{i}\nspec:\n  type: service\n  owner: team\n"
        );
        if i > 0 {
            doc.push_str(&format!("  dependsOn: [component:c{}]\n", i - 1));
        } else if cycle && n > 1 {
            doc.push_str(&format!("  dependsOn: [component:c{}]\n", n - 1));
        }
        files.push((component_file(i), doc));
    }
    files.push((
        "teams/catalog-info.yaml".into(),
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team\nspec:\n  type: team\n".into(),
    ));
    MemorySource::new(files)
}
