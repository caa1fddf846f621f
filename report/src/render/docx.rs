//! Word (.docx): headings, the key figures as a two-column table, notes and tables.

use docx_rs::{Docx, Paragraph, Run, Table, TableCell, TableRow};

use crate::Error;
use crate::doc::Document;

fn cell(text: &str, bold: bool) -> TableCell {
    let mut run = Run::new().add_text(text);
    if bold {
        run = run.bold();
    }
    TableCell::new().add_paragraph(Paragraph::new().add_run(run))
}

fn heading(text: &str, size: usize) -> Paragraph {
    Paragraph::new().add_run(Run::new().add_text(text).bold().size(size))
}

/// The document as a .docx file.
pub fn render(doc: &Document) -> Result<Vec<u8>, Error> {
    let mut d = Docx::new()
        .add_paragraph(heading(&doc.title, 32))
        .add_paragraph(Paragraph::new().add_run(Run::new().add_text(&doc.subtitle)));
    for (n, s) in doc.sections.iter().enumerate() {
        d = d.add_paragraph(heading(&format!("{}. {}", n + 1, s.heading), 26));
        if !s.figures.is_empty() {
            let rows = s
                .figures
                .iter()
                .map(|f| TableRow::new(vec![cell(&f.label, true), cell(&f.value, false)]))
                .collect();
            d = d.add_table(Table::new(rows));
        }
        for note in &s.notes {
            d = d.add_paragraph(Paragraph::new().add_run(Run::new().add_text(note)));
        }
        for t in &s.tables {
            d = d.add_paragraph(heading(&t.title, 22));
            if t.rows.is_empty() {
                d = d.add_paragraph(
                    Paragraph::new().add_run(Run::new().add_text(doc.lang.t("none"))),
                );
                continue;
            }
            let mut rows = vec![TableRow::new(
                t.columns.iter().map(|c| cell(c, true)).collect(),
            )];
            rows.extend(
                t.rows
                    .iter()
                    .map(|r| TableRow::new(r.iter().map(|c| cell(&c.text(), false)).collect())),
            );
            d = d.add_table(Table::new(rows));
        }
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    d.build()
        .pack(&mut buf)
        .map_err(|e| Error::Docx(e.to_string()))?;
    Ok(buf.into_inner())
}
