//! Reaching the host of a recorded job again, whoever submitted it (the CLI, the library,
//! Python) and with whatever options (`--ssh-config`, `--config`, an ssh alias with a
//! port and user, a NEWT URL): the job store keeps a [`Reach`] spec with each job.

use std::sync::Arc;

use sremote_core::{Connector, Reach};
use sremote_hosts::connect;
use sremote_jobs::{Job, JobError, JobRecord, JobsExt};

use crate::config::HostSpec;
use crate::hosts::{self, Client, HostOptions};

/// What to record about reaching `spec` through `client` (see
/// [`sremote_hosts::connect::reach_of`]): the hosts-config file this run read when the
/// host came from it.
pub(crate) fn reach(spec: &HostSpec, client: &Client, opts: &HostOptions) -> Reach {
    let config = opts.config().ok();
    let file = config.as_ref().and_then(|c| c.path.clone());
    connect::reach_of(spec, client.connector().as_ref(), file.as_deref())
}

/// The host of `rec` as a resolved spec: from its reach spec (the hosts-config entry of
/// `--config`, when given now, else of the recorded file; else the recorded connection,
/// with `--ssh-config` winning over the recorded file when given now), else — a job
/// recorded before reach specs — its destination or connector name, an old library's
/// `user@alias:port` read as `ssh://user@alias:port`.
pub(crate) fn spec_of(rec: &JobRecord, opts: &HostOptions) -> Result<HostSpec, JobError> {
    let Some(reach) = &rec.reach else {
        let target = rec
            .destination
            .clone()
            .unwrap_or_else(|| legacy_destination(&rec.host));
        return Ok(opts.resolve_one(&target, "this job")?);
    };
    let now = match opts.config_path {
        Some(_) => Some(opts.config()?),
        None => None,
    };
    let mut spec = connect::spec_for_reach(reach, now.as_deref());
    if !spec.configured && opts.ssh_config.is_some() {
        spec.ssh_config = opts.ssh_config.clone();
    }
    Ok(spec)
}

/// An ssh connector's name `user@host:port` as a destination ssh understands.
fn legacy_destination(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((front, port))
            if front.contains('@')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("ssh://{front}:{port}")
        }
        _ => host.to_string(),
    }
}

/// Reach the host of a recorded job.
pub(crate) async fn open(
    id: &str,
    opts: &HostOptions,
) -> Result<Job<Arc<dyn Connector>>, JobError> {
    let store = crate::jobs::store()?;
    let rec = store.get(id)?;
    let spec = spec_of(&rec, opts)?;
    let client = hosts::connect_spec(&spec, opts).await?.client();
    client.job(id, Some(&store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_connector_names_become_destinations() {
        assert_eq!(
            legacy_destination("root@bench:2301"),
            "ssh://root@bench:2301"
        );
        assert_eq!(legacy_destination("local"), "local");
        assert_eq!(legacy_destination("bench"), "bench");
        assert_eq!(
            legacy_destination("newt+https://u@gw/api:x"),
            "newt+https://u@gw/api:x"
        );
    }
}
