//! Diagnostics: every problem in a flow, catalogue or script carries its file and position,
//! so a designer can jump straight to it (`file:line:col: message`).
use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based position in a source file; 0 means "the whole file".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const FILE: Pos = Pos { line: 0, col: 0 };
    pub fn new(line: u64, col: u64) -> Pos {
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.pos.line,
                self.pos.col.max(1),
                self.message
            )
        }
    }
}

/// Collects diagnostics for one file; loaders keep going after an error so that the
/// designer sees every problem at once, not one per run.
#[derive(Debug, Default)]
pub struct Diags {
    file: PathBuf,
    pub list: Vec<Diagnostic>,
}

impl Diags {
    pub fn new(file: &Path) -> Diags {
        Diags {
            file: file.to_path_buf(),
            list: Vec::new(),
        }
    }
    pub fn file(&self) -> &Path {
        &self.file
    }
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.list.push(Diagnostic {
            file: self.file.clone(),
            pos,
            message: message.into(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.list.sort();
        self.list.dedup();
        self.list
    }
}

/// Several diagnostics as one error value.
#[derive(Debug)]
pub struct Errors(pub Vec<Diagnostic>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}
