//! What the endpoint says about itself: version, protocol, target, executable.

use std::io::Read;

use serde_json::{Value, json};
use sremote_core::protocol::{PROTOCOL_VERSION, VERSION};

/// `{"version", "protocol", "target": "<os>-<arch>", "exe"}` plus `"sha256"` of the
/// executable when asked (`null` if it cannot be read).
pub(crate) fn version_info(with_sha256: bool) -> Value {
    let exe = std::env::current_exe().ok();
    let mut info = json!({
        "version": VERSION,
        "protocol": PROTOCOL_VERSION,
        "target": format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        "exe": exe.as_ref().map(|p| p.display().to_string()),
    });
    if with_sha256 {
        info["sha256"] = exe
            .and_then(|p| sha256_file(&p).ok())
            .map_or(Value::Null, Value::String);
    }
    info
}

/// Lower-case hex SHA-256 of a file's contents, read in 64 KiB pieces.
pub(crate) fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_info_shape() {
        let v = super::version_info(true);
        assert_eq!(v["protocol"], 1);
        assert_eq!(v["sha256"].as_str().map(str::len), Some(64));
    }
}
