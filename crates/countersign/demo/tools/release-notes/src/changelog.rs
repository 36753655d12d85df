/// Renders one bullet per title, grouped under a heading.
pub fn render(titles: &[String]) -> String {
    let mut out = String::from("## Changes\n\n");
    for t in titles {
        out.push_str("- ");
        out.push_str(t.trim());
        out.push('\n');
    }
    out
}
