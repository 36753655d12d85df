//! The catalog preamble test files share, here and in the countersign crate's black-box
//! tests (which include this file by path), so one text serves both.

/// The catalog most tests start from: the Group `team` (a team of `members`) and a catalog
/// User for each member, then `components` (more documents, each starting with `---`).
pub fn team_catalog(team: &str, members: &[&str], components: &str) -> String {
    let mut catalog = format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: {team}\nspec:\n  type: team\n  children: []\n  members: [{}]\n",
        members.join(", ")
    );
    for member in members {
        catalog.push_str(&format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: {member}\nspec:\n  memberOf: [{team}]\n"
        ));
    }
    catalog + components
}
