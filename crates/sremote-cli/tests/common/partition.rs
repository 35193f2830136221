//! A hidden Slurm partition for one test (`sinfo` without `-a` does not list it, so
//! tests that discover partitions never pick it); its jobs cancelled and it deleted on
//! drop.
use std::process::Command;

use super::text;

pub struct HiddenPartition(pub String);

impl HiddenPartition {
    /// `srPREFIX<pid>` on `node`, with extra `scontrol create` settings
    /// (`MaxTime=5`, `State=DOWN`, …).
    pub fn create(prefix: &str, node: &str, settings: &[&str]) -> HiddenPartition {
        let name = format!("sr{prefix}{}", std::process::id());
        let out = Command::new("scontrol")
            .args([
                "create",
                &format!("PartitionName={name}"),
                &format!("Nodes={node}"),
            ])
            .args(settings)
            .arg("Hidden=YES")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        HiddenPartition(name)
    }
}

impl Drop for HiddenPartition {
    fn drop(&mut self) {
        let _ = Command::new("scancel").args(["-p", &self.0]).output();
        for _ in 0..50 {
            let out = Command::new("scontrol")
                .args(["delete", &format!("PartitionName={}", self.0)])
                .output();
            if out.is_ok_and(|o| o.status.success()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}
