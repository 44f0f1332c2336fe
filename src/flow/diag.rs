//! Diagnostics: every problem in a flow, catalogue or script carries its file and position,
//! so a designer can jump straight to it (`file:line:col: message`).
use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based position in a source file; line 0 means "the whole file". `file` is 0 for
/// the file being loaded, or the number of a file it includes (see [`Diags::add_file`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub file: u16,
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const FILE: Pos = Pos {
        file: 0,
        line: 0,
        col: 0,
    };
    pub fn new(line: u64, col: u64) -> Pos {
        Pos {
            file: 0,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }
    pub fn at(line: u32, col: u32) -> Pos {
        Pos { file: 0, line, col }
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
    /// Files the loaded file includes, numbered from 1 as in [`Pos::file`].
    included: Vec<PathBuf>,
    /// A part of the file could not be read (an include): whole-flow checks would only
    /// report its absence many times over.
    pub incomplete: bool,
    pub list: Vec<Diagnostic>,
}

impl Diags {
    pub fn new(file: &Path) -> Diags {
        Diags {
            file: file.to_path_buf(),
            included: Vec::new(),
            incomplete: false,
            list: Vec::new(),
        }
    }
    pub fn file(&self) -> &Path {
        &self.file
    }
    /// Numbers an included file, so that positions inside it report its own path.
    pub fn add_file(&mut self, path: &Path) -> u16 {
        self.included.push(path.to_path_buf());
        u16::try_from(self.included.len()).unwrap_or(u16::MAX)
    }
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        let file = match pos.file {
            0 => self.file.clone(),
            n => self
                .included
                .get(usize::from(n) - 1)
                .cloned()
                .unwrap_or_else(|| self.file.clone()),
        };
        self.list.push(Diagnostic {
            file,
            pos: Pos { file: 0, ..pos },
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
