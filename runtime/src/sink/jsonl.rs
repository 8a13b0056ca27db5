//! JSON-lines sinks: standard output (JSON or a line for a person), a file,
//! or nowhere.

use super::{Record, Sink, SinkError};
use crate::config::OutputFormat;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes each record as a line on standard output.
pub struct StdoutSink {
    format: OutputFormat,
}

impl StdoutSink {
    pub fn new(format: OutputFormat) -> Self {
        StdoutSink { format }
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, record: &Record) -> Result<(), SinkError> {
        let line = match self.format {
            OutputFormat::Json => record.to_json().to_string(),
            OutputFormat::Text => record.to_text(),
        };
        // One locked write per line, so lines of different sinks never interleave.
        writeln!(std::io::stdout().lock(), "{line}")
            .map_err(|source| SinkError::Io { sink: "stdout".into(), source })
    }
}

/// Appends each record as a JSON line to a file.
pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl FileSink {
    pub fn open(path: &Path, kind: &str) -> Result<Self, SinkError> {
        let io = |source| SinkError::Io { sink: format!("{kind} file {}", path.display()), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok(FileSink { path: path.to_path_buf(), out: BufWriter::new(file) })
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io { sink: format!("file {}", self.path.display()), source }
    }
}

impl Sink for FileSink {
    fn write(&mut self, record: &Record) -> Result<(), SinkError> {
        let line = record.to_json().to_string();
        writeln!(self.out, "{line}").map_err(|e| self.io(e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io(e))
    }
}

/// Discards everything.
pub struct NullSink;

impl Sink for NullSink {
    fn write(&mut self, _record: &Record) -> Result<(), SinkError> {
        Ok(())
    }
}
