//! End-to-end tests of sremote live in `tests/tests/*.rs`: the client against the real
//! endpoint on this machine, and (with their issues) against a real sshd, the real
//! `sremote-gateway` and a real single-node Slurm that the test harness starts.
