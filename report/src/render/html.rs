//! HTML: one self-contained page, charts inline as SVG.

use crate::doc::Document;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:'Noto Sans CJK JP',sans-serif;margin:2em;font-size:14px}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #aaa;padding:2px 6px}\
th{background:#eee}.charts{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;font-size:11px}";

/// The document as an HTML page.
pub fn render(doc: &Document) -> String {
    let lang = if doc.lang == crate::Lang::Ja {
        "ja"
    } else {
        "en"
    };
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1><p>{s}</p>\n",
        t = esc(&doc.title),
        s = esc(&doc.subtitle)
    );
    for (n, s) in doc.sections.iter().enumerate() {
        out.push_str(&format!("<h2>{}. {}</h2>\n", n + 1, esc(&s.heading)));
        if !s.figures.is_empty() {
            out.push_str("<table>");
            for f in &s.figures {
                out.push_str(&format!(
                    "<tr><th>{}</th><td>{}</td></tr>",
                    esc(&f.label),
                    esc(&f.value)
                ));
            }
            out.push_str("</table>\n");
        }
        for note in &s.notes {
            out.push_str(&format!("<p>{}</p>\n", esc(note)));
        }
        for t in &s.tables {
            out.push_str(&format!("<h3>{}</h3>", esc(&t.title)));
            if t.rows.is_empty() {
                out.push_str(&format!("<p>{}</p>\n", esc(doc.lang.t("none"))));
                continue;
            }
            out.push_str("<table><tr>");
            for c in &t.columns {
                out.push_str(&format!("<th>{}</th>", esc(c)));
            }
            out.push_str("</tr>");
            for r in &t.rows {
                out.push_str("<tr>");
                for c in r {
                    out.push_str(&format!("<td>{}</td>", esc(&c.text())));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>\n");
        }
        if !s.charts.is_empty() {
            out.push_str("<div class=\"charts\">");
            for c in &s.charts {
                // The SVG is made by crate::charts from numbers only.
                out.push_str(&format!(
                    "<figure>{}<figcaption>{}</figcaption></figure>",
                    c.svg,
                    esc(&c.caption)
                ));
            }
            out.push_str("</div>\n");
        }
    }
    out.push_str("</body></html>\n");
    out
}
