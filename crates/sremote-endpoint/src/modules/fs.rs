//! Built-in module `fs`: reading and writing whole files.

use std::io::Write;

use sremote_core::protocol::Blob;

use crate::error::CallError;
use crate::module::ModuleBuilder;

pub(crate) fn register(m: &mut ModuleBuilder) {
    m.doc("Whole-file reads and writes (text as UTF-8, binary as bytes).");
    m.function("read_text", read_text)
        .params(&["path"])
        .doc("The content of file `path` as UTF-8 text.")
        .function("write_text", write_text)
        .params(&["path", "text"])
        .doc("Replace file `path` by `text`; returns the bytes written.")
        .function("read_bytes", read_bytes)
        .params(&["path"])
        .doc("The content of file `path` as bytes.")
        .function("write_bytes", write_bytes)
        .params(&["path", "data"])
        .doc("Replace file `path` by `data`; returns the bytes written.")
        .function("append_text", append_text)
        .params(&["path", "text"])
        .doc("Append `text` to file `path` (created if missing); returns the bytes written.");
}

fn read_text(path: String) -> Result<String, CallError> {
    let bytes = std::fs::read(&path).map_err(|e| CallError::os("fs.read_text", &path, &e))?;
    String::from_utf8(bytes).map_err(|e| {
        CallError::raised(format!(
            "fs.read_text({path:?}): the file is not valid UTF-8 (at byte {}); use fs.read_bytes",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn write_text(path: String, text: String) -> Result<usize, CallError> {
    std::fs::write(&path, text.as_bytes())
        .map_err(|e| CallError::os("fs.write_text", &path, &e))?;
    Ok(text.len())
}

fn read_bytes(path: String) -> Result<Blob, CallError> {
    std::fs::read(&path)
        .map(Blob)
        .map_err(|e| CallError::os("fs.read_bytes", &path, &e))
}

fn write_bytes(path: String, data: Blob) -> Result<usize, CallError> {
    std::fs::write(&path, &data.0).map_err(|e| CallError::os("fs.write_bytes", &path, &e))?;
    Ok(data.len())
}

fn append_text(path: String, text: String) -> Result<usize, CallError> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(|e| CallError::os("fs.append_text", &path, &e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| CallError::os("fs.append_text", &path, &e))?;
    Ok(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt").display().to_string();
        assert_eq!(write_text(p.clone(), "héllo".into()).unwrap(), 6);
        assert_eq!(append_text(p.clone(), "!".into()).unwrap(), 1);
        assert_eq!(read_text(p.clone()).unwrap(), "héllo!");
        assert_eq!(write_bytes(p.clone(), Blob(vec![0xff, 0])).unwrap(), 2);
        assert_eq!(read_bytes(p.clone()).unwrap(), Blob(vec![0xff, 0]));
        assert!(
            read_text(p)
                .unwrap_err()
                .message
                .contains("not valid UTF-8")
        );
    }
}
