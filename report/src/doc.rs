//! A document in one language, as every renderer takes it: a title, sections with key figures,
//! notes, tables and charts. Builders of each report fill it; renderers never compute.

use serde::Serialize;

/// A whole document.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Document {
    /// The document's title (e.g. 運用・保守管理業務報告書(月次)).
    pub title: String,
    /// One line under the title (namespace, period).
    pub subtitle: String,
    /// `ja` or `en`.
    pub lang: crate::Lang,
    /// The sections, in order.
    pub sections: Vec<Section>,
}

/// One section: a heading, key figures, notes, tables and charts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Section {
    /// The heading.
    pub heading: String,
    /// Label–value pairs shown first.
    pub figures: Vec<Figure>,
    /// Paragraphs.
    pub notes: Vec<String>,
    /// Tables.
    pub tables: Vec<Table>,
    /// Small charts (SVG), each with a caption.
    pub charts: Vec<Chart>,
}

/// A key figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub label: String,
    pub value: String,
}

/// A table: a title, column names and rows of cells.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Table {
    /// Shown above the table (and the sheet's name in a workbook, cut to 31 characters).
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// A cell: text or a number (numbers stay numbers in a workbook).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Text(String),
    Number(f64),
}

impl Cell {
    /// The cell as it is printed.
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Number(n) => crate::time::number(*n),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_string())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<Option<String>> for Cell {
    fn from(s: Option<String>) -> Self {
        Cell::Text(s.unwrap_or_default())
    }
}

impl From<u32> for Cell {
    fn from(n: u32) -> Self {
        Cell::Number(f64::from(n))
    }
}

impl From<f64> for Cell {
    fn from(n: f64) -> Self {
        Cell::Number(n)
    }
}

impl From<Option<f64>> for Cell {
    fn from(n: Option<f64>) -> Self {
        n.map_or(Cell::Text(String::new()), Cell::Number)
    }
}

/// Rows of a count table: each key (in `lang`, see [`crate::Lang::value`]) and its count.
pub fn count_rows(
    lang: crate::Lang,
    counts: &std::collections::BTreeMap<String, u32>,
) -> Vec<Vec<Cell>> {
    counts
        .iter()
        .map(|(k, n)| vec![lang.value(k).into(), (*n).into()])
        .collect()
}

/// A chart as SVG (no text inside: the caption carries the words).
#[derive(Clone, Debug, Serialize)]
pub struct Chart {
    pub caption: String,
    pub svg: String,
}

impl Section {
    /// A section with a heading.
    pub fn new(heading: &str) -> Section {
        Section {
            heading: heading.to_string(),
            ..Section::default()
        }
    }

    /// Adds a key figure.
    pub fn figure(&mut self, label: &str, value: impl ToString) -> &mut Section {
        self.figures.push(Figure {
            label: label.to_string(),
            value: value.to_string(),
        });
        self
    }

    /// Adds a table.
    pub fn table(&mut self, title: &str, columns: &[&str], rows: Vec<Vec<Cell>>) -> &mut Section {
        self.tables.push(Table {
            title: title.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        });
        self
    }
}
