//! Excel: a sheet of the key figures, then one sheet per table, numbers as numbers.

use rust_xlsxwriter::{Format, Workbook, Worksheet};

use crate::Error;
use crate::doc::{Cell, Document};

/// Excel's limit on a sheet name, and the characters it refuses in one.
const SHEET_NAME_MAX: usize = 31;
const SHEET_NAME_BAD: &[char] = &['[', ']', ':', '*', '?', '/', '\\'];

fn sheet_name(title: &str, taken: &mut Vec<String>) -> String {
    let clean: String = title
        .chars()
        .map(|c| if SHEET_NAME_BAD.contains(&c) { '_' } else { c })
        .collect();
    let base: String = clean.chars().take(SHEET_NAME_MAX - 3).collect();
    let mut name = base.clone();
    let mut n = 2;
    while taken.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
        name = format!("{base}({n})");
        n += 1;
    }
    taken.push(name.clone());
    name
}

fn write_cell(ws: &mut Worksheet, row: u32, col: u16, c: &Cell) -> Result<(), Error> {
    match c {
        Cell::Number(n) => ws.write_number(row, col, *n)?,
        Cell::Text(s) => ws.write_string(row, col, s)?,
    };
    Ok(())
}

/// The document as an .xlsx workbook.
pub fn render(doc: &Document) -> Result<Vec<u8>, Error> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let mut taken = Vec::new();
    let figures: Vec<_> = doc
        .sections
        .iter()
        .flat_map(|s| s.figures.iter().map(move |f| (&s.heading, f)))
        .collect();
    if !figures.is_empty() {
        let ws = wb.add_worksheet();
        ws.set_name(sheet_name(doc.lang.t("summary"), &mut taken))?;
        ws.write_string_with_format(0, 0, &doc.title, &bold)?;
        ws.write_string(1, 0, &doc.subtitle)?;
        for (i, (heading, f)) in figures.iter().enumerate() {
            let r = u32::try_from(i).unwrap_or(u32::MAX - 3).saturating_add(3);
            ws.write_string(r, 0, heading.as_str())?;
            ws.write_string_with_format(r, 1, &f.label, &bold)?;
            ws.write_string(r, 2, &f.value)?;
        }
        ws.autofit();
    }
    for t in doc.sections.iter().flat_map(|s| &s.tables) {
        let ws = wb.add_worksheet();
        ws.set_name(sheet_name(&t.title, &mut taken))?;
        for (c, name) in t.columns.iter().enumerate() {
            ws.write_string_with_format(0, u16::try_from(c).unwrap_or(u16::MAX), name, &bold)?;
        }
        for (r, row) in t.rows.iter().enumerate() {
            let r = u32::try_from(r).unwrap_or(u32::MAX - 1).saturating_add(1);
            for (c, cell) in row.iter().enumerate() {
                write_cell(ws, r, u16::try_from(c).unwrap_or(u16::MAX), cell)?;
            }
        }
        ws.set_freeze_panes(1, 0)?;
        ws.autofit();
    }
    Ok(wb.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sheet_names_are_cut_cleaned_and_unique() {
        let mut taken = Vec::new();
        assert_eq!(super::sheet_name("a/b:c", &mut taken), "a_b_c");
        assert_eq!(
            super::sheet_name("A/B:C", &mut taken),
            "A/B:C".replace(['/', ':'], "_") + "(2)"
        );
        let long = "あ".repeat(40);
        assert_eq!(super::sheet_name(&long, &mut taken).chars().count(), 28);
    }
}
