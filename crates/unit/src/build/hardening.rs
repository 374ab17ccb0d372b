//! The sandbox every service gets: what the server may not do, and the paths it may use.

use super::paths::Paths;
use crate::model::*;
use crate::versions::PRIVATE_IPC_SINCE;

pub(super) fn sandbox(systemd: u32, paths: &Paths) -> Sandbox {
    Sandbox {
        bind_paths: paths.binds.clone(),
        bind_read_only_paths: paths.read_only_binds.clone(),
        capability_bounding_set: Vec::new(),
        device_policy: Some(DevicePolicy::Closed),
        // Does not touch accepted connections: they belong to the listening socket, which
        // PID 1 created (filter clients on the .socket unit instead).
        ip_address_deny_any: true,
        keyring_mode: Some(KeyringMode::Private),
        lock_personality: true,
        memory_deny_write_execute: true,
        no_new_privileges: true,
        private_devices: true,
        private_ipc: systemd >= PRIVATE_IPC_SINCE,
        private_mounts: true,
        // The listening sockets come from PID 1's network namespace; the server needs no other.
        private_network: true,
        private_tmp: true,
        private_users: true,
        proc_subset: Some(ProcSubset::Pid),
        protect_clock: true,
        protect_control_groups: true,
        protect_home: Some(paths.protect_home),
        protect_hostname: true,
        protect_kernel_logs: true,
        protect_kernel_modules: true,
        protect_kernel_tunables: true,
        protect_proc: Some(ProtectProc::Invisible),
        protect_system: Some(ProtectSystem::Strict),
        read_write_paths: paths.read_write.clone(),
        remove_ipc: true,
        restrict_address_families: paths.families.clone(),
        restrict_namespaces: true,
        restrict_realtime: true,
        restrict_suid_sgid: true,
        system_call_architectures_native: true,
        system_call_error_number: Some("EPERM"),
        system_call_filter: vec!["@system-service", "~@privileged @resources"],
    }
}
