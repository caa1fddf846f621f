//! The documents the union receives (procurement spec 2.8): the monthly operations report (⑦),
//! incident reports (⑤, ⑥), the configuration ledger export and the operating statistics of
//! 4.1(4).
//!
//! Every report is built in two steps: a pure function turns the records (and the statistics
//! read from Prometheus) into a typed report, which is what `--format json` prints; the typed
//! report is then laid out as a [`doc::Document`] in one language ([`i18n`]) and one renderer per
//! format writes that document. So a Japanese and an English report are the same code, and the
//! figures in the PDF are the figures in the JSON.

pub mod charts;
pub mod doc;
pub mod i18n;
pub mod incident;
pub mod ledger;
pub mod monthly;
pub mod render;
pub mod stats;
mod time;

pub use doc::Document;
pub use i18n::Lang;

/// Why a report could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The month is not `YYYY-MM`, or a time is out of range.
    #[error("{0}")]
    Period(String),
    /// The OperationCalendar cannot be used.
    #[error("OperationCalendar: {0}")]
    Calendar(#[from] unyo_crds::workcalendar::CalendarError),
    /// typst could not lay out the PDF.
    #[error("PDF: {0}")]
    Pdf(String),
    /// No font with Japanese glyphs was found.
    #[error(
        "no font for the PDF: none of {0} exists; install fonts-noto-cjk or name a font file with --font"
    )]
    NoFont(String),
    /// The Excel writer failed.
    #[error("Excel: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// The Word writer failed.
    #[error("Word: {0}")]
    Docx(String),
    /// The CSV writer failed.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    /// JSON could not be written.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}
