//! PDF through typst: the document as JSON, laid out by `report.typ`, with a CJK font found on
//! the machine (Debian's fonts-noto-cjk) or named by the caller. No browser, no network.

use std::path::{Path, PathBuf};

use serde::Serialize;
use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;

use crate::doc::{Document, Figure};
use crate::{Error, Lang};

/// Where Debian (fonts-noto-cjk) and other distributions put a Japanese font.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
];

const TEMPLATE: &str = include_str!("report.typ");

/// The fonts a PDF is set in: the named files, else every candidate that exists.
pub fn load_fonts(named: &[PathBuf]) -> Result<Vec<Font>, Error> {
    let paths: Vec<PathBuf> = if named.is_empty() {
        FONT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect()
    } else {
        named.to_vec()
    };
    let mut fonts = Vec::new();
    for p in &paths {
        let data = std::fs::read(p).map_err(|source| Error::Io {
            path: p.display().to_string(),
            source,
        })?;
        fonts.extend(Font::iter(Bytes::new(data)));
    }
    if fonts.is_empty() {
        let tried = if named.is_empty() {
            FONT_CANDIDATES.join(", ")
        } else {
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::NoFont(tried));
    }
    Ok(fonts)
}

#[derive(Serialize)]
struct PdfData<'a> {
    title: &'a str,
    subtitle: &'a str,
    lang: Lang,
    fonts: Vec<String>,
    none: &'static str,
    sections: Vec<PdfSection<'a>>,
}

#[derive(Serialize)]
struct PdfSection<'a> {
    heading: &'a str,
    figures: &'a [Figure],
    notes: &'a [String],
    tables: Vec<PdfTable<'a>>,
    charts: &'a [crate::doc::Chart],
}

#[derive(Serialize)]
struct PdfTable<'a> {
    title: &'a str,
    columns: &'a [String],
    rows: Vec<Vec<String>>,
}

struct ReportWorld {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
    main: FileId,
    data: Bytes,
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        &self.library
    }
    fn book(&self) -> &LazyHash<FontBook> {
        &self.book
    }
    fn main(&self) -> FileId {
        self.main
    }
    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main {
            Ok(Source::new(id, TEMPLATE.to_string()))
        } else {
            Err(FileError::NotFound(id.vpath().get_without_slash().into()))
        }
    }
    fn file(&self, id: FileId) -> FileResult<Bytes> {
        match id.vpath().get_without_slash() {
            "data.json" => Ok(self.data.clone()),
            other => Err(FileError::NotFound(Path::new(other).into())),
        }
    }
    fn font(&self, index: usize) -> Option<Font> {
        self.fonts.get(index).cloned()
    }
    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        None
    }
}

fn file_id(path: &str) -> Result<FileId, Error> {
    let vpath = VirtualPath::new(path).map_err(|e| Error::Pdf(format!("{e:?}")))?;
    Ok(FileId::new(RootedPath::new(VirtualRoot::Project, vpath)))
}

/// The document as a PDF set in `fonts`.
pub fn render(doc: &Document, fonts: Vec<Font>) -> Result<Vec<u8>, Error> {
    let book = FontBook::from_fonts(&fonts);
    let mut families: Vec<String> = Vec::new();
    for f in &fonts {
        let family = f.info().family.clone();
        if !families.contains(&family) {
            families.push(family);
        }
    }
    let data = PdfData {
        title: &doc.title,
        subtitle: &doc.subtitle,
        lang: doc.lang,
        fonts: families,
        none: doc.lang.t("none"),
        sections: doc
            .sections
            .iter()
            .map(|s| PdfSection {
                heading: &s.heading,
                figures: &s.figures,
                notes: &s.notes,
                tables: s
                    .tables
                    .iter()
                    .map(|t| PdfTable {
                        title: &t.title,
                        columns: &t.columns,
                        rows: t
                            .rows
                            .iter()
                            .map(|r| r.iter().map(|c| c.text()).collect())
                            .collect(),
                    })
                    .collect(),
                charts: &s.charts,
            })
            .collect(),
    };
    let world = ReportWorld {
        library: LazyHash::new(Library::default()),
        book: LazyHash::new(book),
        fonts,
        main: file_id("/report.typ")?,
        data: Bytes::new(serde_json::to_vec(&data)?),
    };
    let compiled: PagedDocument = typst::compile(&world).output.map_err(|errs| {
        Error::Pdf(
            errs.iter()
                .map(|e| e.message.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    typst_pdf::pdf(&compiled, &typst_pdf::PdfOptions::default()).map_err(|errs| {
        Error::Pdf(
            errs.iter()
                .map(|e| e.message.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}
