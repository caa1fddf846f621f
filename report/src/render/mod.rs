//! One renderer per format; each takes a [`Document`](crate::Document) and computes nothing.

pub mod docx;
pub mod html;
pub mod markdown;
pub mod pdf;
pub mod xlsx;

use crate::Error;
use crate::doc::Document;

/// A format a document can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Pdf,
    Xlsx,
    Docx,
    Csv,
}

impl Format {
    /// The format of a `--format` value.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "markdown" | "md" => Format::Markdown,
            "html" => Format::Html,
            "pdf" => Format::Pdf,
            "xlsx" => Format::Xlsx,
            "docx" => Format::Docx,
            "csv" => Format::Csv,
            _ => return None,
        })
    }
}

/// Writes `doc` in `format`; `fonts` are the font files for a PDF (empty: found on the machine).
pub fn render(
    doc: &Document,
    format: Format,
    fonts: &[std::path::PathBuf],
) -> Result<Vec<u8>, Error> {
    match format {
        Format::Markdown => Ok(markdown::render(doc).into_bytes()),
        Format::Html => Ok(html::render(doc).into_bytes()),
        Format::Pdf => pdf::render(doc, pdf::load_fonts(fonts)?),
        Format::Xlsx => xlsx::render(doc),
        Format::Docx => docx::render(doc),
        Format::Csv => csv(doc),
    }
}

/// CSV: every table of the document one after another, each with its title on a line of its own
/// and its header row, separated by an empty line (the ledger's servers come first).
pub fn csv(doc: &Document) -> Result<Vec<u8>, Error> {
    let mut w = ::csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    for (i, table) in doc.sections.iter().flat_map(|s| &s.tables).enumerate() {
        if i > 0 {
            w.write_record([""])?;
        }
        w.write_record([&table.title])?;
        w.write_record(&table.columns)?;
        for row in &table.rows {
            w.write_record(row.iter().map(|c| c.text()))?;
        }
    }
    w.into_inner().map_err(|e| Error::Io {
        path: "csv".into(),
        source: e.into_error(),
    })
}
