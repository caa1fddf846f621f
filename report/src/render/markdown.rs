//! Markdown (for people reading in a terminal or a pull request).

use crate::doc::Document;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// The document as Markdown.
pub fn render(doc: &Document) -> String {
    let mut out = format!("# {}\n\n{}\n", esc(&doc.title), esc(&doc.subtitle));
    for (n, s) in doc.sections.iter().enumerate() {
        out.push_str(&format!("\n## {}. {}\n\n", n + 1, esc(&s.heading)));
        for f in &s.figures {
            out.push_str(&format!("- **{}**: {}\n", esc(&f.label), esc(&f.value)));
        }
        for note in &s.notes {
            out.push_str(&format!("\n{}\n", esc(note)));
        }
        for t in &s.tables {
            out.push_str(&format!("\n**{}**\n\n", esc(&t.title)));
            if t.rows.is_empty() {
                out.push_str(&format!("({})\n", doc.lang.t("none")));
                continue;
            }
            let cols: Vec<String> = t.columns.iter().map(|c| esc(c)).collect();
            out.push_str(&format!(
                "| {} |\n|{}\n",
                cols.join(" | "),
                "---|".repeat(cols.len())
            ));
            for r in &t.rows {
                let cells: Vec<String> = r.iter().map(|c| esc(&c.text())).collect();
                out.push_str(&format!("| {} |\n", cells.join(" | ")));
            }
        }
    }
    out
}
