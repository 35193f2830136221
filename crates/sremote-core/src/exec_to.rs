//! Running a program with its output streamed into writers, in bounded memory: what
//! `sremote exec` does without `--json`.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::connector::{Connector, ConnectorError, ConnectorErrorKind, RemoteCommand};

/// Copy size (each of stdout and stderr holds at most this much at a time).
const CHUNK: usize = 64 << 10;

/// Run `cmd` on `connector`'s host and copy its stdout and stderr into `stdout` and
/// `stderr` as they arrive; resolves with the exit code (`None`: killed by a signal).
///
/// Memory stays bounded (64 KiB per stream) however much the program prints. The
/// program's stdin is `cmd.stdin` (then end-of-file), or end-of-file at once. The
/// command's timeout holds as for [`Connector::exec`]: the program and its children are
/// killed and the error has kind [`Timeout`](ConnectorErrorKind::Timeout).
///
/// With a connector that cannot [`spawn`](Connector::spawn) (a REST API), the program runs
/// through [`exec`](Connector::exec) and its collected output is written at the end.
///
/// A failing writer (e.g. a closed pipe on this side) stops the copy: the program is
/// killed, and the error (kind `Other`) names the stream and the local error.
pub async fn exec_to<C, O, E>(
    connector: &C,
    cmd: &RemoteCommand,
    stdout: &mut O,
    stderr: &mut E,
) -> Result<Option<i32>, ConnectorError>
where
    C: Connector + ?Sized,
    O: AsyncWrite + Unpin + Send + ?Sized,
    E: AsyncWrite + Unpin + Send + ?Sized,
{
    let host = connector.host().to_string();
    let mut process = match connector.spawn(cmd).await {
        Ok(p) => p,
        Err(e) if e.kind == ConnectorErrorKind::Unsupported => {
            let out = connector.exec(cmd).await?;
            write(stdout, &out.stdout, &host, &cmd.program, "stdout").await?;
            write(stderr, &out.stderr, &host, &cmd.program, "stderr").await?;
            return Ok(out.exit_code);
        }
        Err(e) => return Err(e),
    };
    let mut stdin = process.stdin;
    let input = cmd.stdin.clone();
    let feed = async move {
        if let Some(data) = input {
            // A program that exits without reading all of it is not an error.
            let _ = stdin.write_all(&data).await;
        }
        let _ = stdin.shutdown().await;
    };
    let (program, h) = (cmd.program.as_str(), host.as_str());
    let copy_out = copy(&mut process.stdout, stdout, h, program, "stdout");
    let copy_err = copy(&mut process.stderr, stderr, h, program, "stderr");
    let feed = async move {
        feed.await;
        Ok(())
    };
    // The first copy failure ends the others; returning then drops `wait`, which kills
    // the program.
    tokio::try_join!(feed, copy_out, copy_err)?;
    process.wait.await
}

async fn copy<R, W>(
    from: &mut R,
    to: &mut W,
    host: &str,
    program: &str,
    stream: &str,
) -> Result<(), ConnectorError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from
            .read(&mut buf)
            .await
            .map_err(|e| ConnectorError::io(host, format!("read the {stream} of {program}"), &e))?;
        if n == 0 {
            return to
                .flush()
                .await
                .map_err(|e| local_write(host, program, stream, e));
        }
        write(to, &buf[..n], host, program, stream).await?;
    }
}

async fn write<W: AsyncWrite + Unpin + ?Sized>(
    to: &mut W,
    data: &[u8],
    host: &str,
    program: &str,
    stream: &str,
) -> Result<(), ConnectorError> {
    to.write_all(data)
        .await
        .map_err(|e| local_write(host, program, stream, e))
}

fn local_write(host: &str, program: &str, stream: &str, e: std::io::Error) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::Other,
        host,
        format!("copy the {stream} of {program} here"),
    )
    .detail(format!("writing it locally failed: {e}"))
    .hint("the program was stopped; check where its output goes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalConnector;

    #[tokio::test]
    async fn output_streams_into_writers_and_the_exit_code_comes_back() {
        let c = LocalConnector::new();
        let cmd = RemoteCommand::new("sh")
            .args(["-c", "head -c 3000000 /dev/zero; echo err >&2; exit 3"]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = exec_to(&c, &cmd, &mut out, &mut err).await.unwrap();
        assert_eq!(
            (code, out.len(), err.as_slice()),
            (Some(3), 3_000_000, &b"err\n"[..])
        );

        let cmd = RemoteCommand::new("cat").stdin("fed".as_bytes().to_vec());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            exec_to(&c, &cmd, &mut out, &mut err).await.unwrap(),
            Some(0)
        );
        assert_eq!(out, b"fed");
    }

    #[tokio::test]
    async fn the_timeout_kills() {
        let c = LocalConnector::new();
        let cmd = RemoteCommand::new("sleep")
            .args(["30"])
            .timeout(std::time::Duration::from_millis(300));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let started = std::time::Instant::now();
        let e = exec_to(&c, &cmd, &mut out, &mut err).await.unwrap_err();
        assert_eq!(e.kind, ConnectorErrorKind::Timeout, "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
