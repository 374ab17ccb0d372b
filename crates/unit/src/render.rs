//! The model rendered as unit-file text: one `Display` per section, keys in a fixed order.

use std::fmt::{self, Display, Formatter};
use std::time::Duration;

use super::model::*;

/// A systemd time span: `35s`, `1500ms`.
pub struct Span(pub Duration);

impl Display for Span {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_millis() == 0 { write!(f, "{}s", d.as_secs()) } else { write!(f, "{}ms", d.as_millis()) }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn key(f: &mut Formatter<'_>, key: &str, value: impl Display) -> fmt::Result {
    writeln!(f, "{key}={value}")
}

fn list(f: &mut Formatter<'_>, name: &str, values: &[String]) -> fmt::Result {
    if values.is_empty() { Ok(()) } else { key(f, name, values.join(" ")) }
}

fn flag(f: &mut Formatter<'_>, name: &str, on: bool) -> fmt::Result {
    if on { key(f, name, "yes") } else { Ok(()) }
}

fn opt<T: Display>(f: &mut Formatter<'_>, name: &str, value: &Option<T>) -> fmt::Result {
    match value {
        Some(v) => key(f, name, v),
        None => Ok(()),
    }
}

impl Display for File {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.artifact {
            Artifact::Unit(unit) => unit.fmt(f),
        }
    }
}

impl Display for UnitFile {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for line in &self.header {
            if line.is_empty() { writeln!(f, "#")? } else { writeln!(f, "# {line}")? }
        }
        if !self.header.is_empty() {
            writeln!(f)?;
        }
        self.unit.fmt(f)?;
        writeln!(f)?;
        match &self.body {
            Body::Service(service) => service.fmt(f)?,
            Body::Socket(socket) => socket.fmt(f)?,
            Body::Oneshot(oneshot) => oneshot.fmt(f)?,
            Body::Timer(timer) => timer.fmt(f)?,
        }
        if let Some(install) = &self.install {
            writeln!(f)?;
            install.fmt(f)?;
        }
        Ok(())
    }
}

impl Display for UnitSection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Unit]")?;
        key(f, "Description", &self.description)?;
        list(f, "Documentation", &self.documentation)?;
        opt(f, "SourcePath", &self.source_path)?;
        list(f, "Requires", &self.requires)?;
        list(f, "Wants", &self.wants)?;
        list(f, "PartOf", &self.part_of)?;
        list(f, "After", &self.after)?;
        list(f, "RequiresMountsFor", &self.requires_mounts_for)?;
        opt(f, "StartLimitIntervalSec", &self.start_limit_interval.map(Span))?;
        opt(f, "StartLimitBurst", &self.start_limit_burst)
    }
}

impl Display for ServiceType {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceType::Notify => "notify",
            ServiceType::NotifyReload => "notify-reload",
        })
    }
}

impl Display for NotifyAccess {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotifyAccess::Main => "main",
        })
    }
}

impl Display for Restart {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restart::OnFailure => "on-failure",
        })
    }
}

impl Display for KillMode {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KillMode::ControlGroup => "control-group",
        })
    }
}

impl Display for Signal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Usr1 => "SIGUSR1",
            Signal::Winch => "SIGWINCH",
        })
    }
}

impl Display for Command {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.privileged {
            f.write_str("+")?;
        }
        f.write_str(&self.program.replace('$', "$$"))?;
        for arg in &self.args {
            write!(f, " {}", arg.replace('$', "$$"))?;
        }
        Ok(())
    }
}

impl Display for ServiceSection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Service]")?;
        key(f, "Type", self.service_type)?;
        key(f, "NotifyAccess", self.notify_access)?;
        opt(f, "ReloadSignal", &self.reload_signal)?;
        list(f, "Sockets", &self.sockets)?;
        for command in &self.exec_start_pre {
            key(f, "ExecStartPre", command)?;
        }
        key(f, "ExecStart", &self.exec_start)?;
        for command in &self.exec_reload {
            key(f, "ExecReload", command)?;
        }
        key(f, "KillMode", self.kill_mode)?;
        key(f, "KillSignal", self.kill_signal)?;
        key(f, "TimeoutStopSec", Span(self.timeout_stop))?;
        key(f, "Restart", self.restart)?;
        key(f, "RestartSec", Span(self.restart_sec))?;
        opt(f, "WatchdogSec", &self.watchdog.map(Span))?;
        if let Some(store) = &self.fd_store {
            key(f, "FileDescriptorStoreMax", store.max)?;
            key(
                f,
                "FileDescriptorStorePreserve",
                match store.preserve {
                    FdStorePreserve::Yes => "yes",
                },
            )?;
        }
        self.account.fmt(f)?;
        key(f, "RuntimeDirectory", &self.runtime_directory)?;
        opt(f, "LogsDirectory", &self.logs_directory)?;
        key(f, "SyslogIdentifier", &self.syslog_identifier)?;
        key(f, "LimitNOFILE", self.limit_nofile)?;
        key(f, "UMask", format_args!("{:04o}", self.umask))?;
        if !self.credentials.is_empty() {
            writeln!(f)?;
            writeln!(f, "# TLS files as credentials: read as root at start, so a key may stay root-only;")?;
            writeln!(f, "# the privileged ExecReload= hands renewed files over at reload.")?;
            for credential in &self.credentials {
                key(f, "LoadCredential", format_args!("{}:{}", credential.id, credential.path))?;
                if credential.empty_fallback {
                    key(
                        f,
                        "SetCredential",
                        format_args!("{}:{}", credential.id, graced_config::ACME_NOT_ISSUED),
                    )?;
                }
            }
        }
        writeln!(f)?;
        writeln!(f, "# Sandboxing: a socket-activated server needs no network, devices or privileges.")?;
        self.sandbox.fmt(f)
    }
}

impl Display for Account {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Account::Static { user, group } => {
                key(f, "User", user)?;
                opt(f, "Group", group)
            }
            Account::Dynamic { group } => {
                key(f, "DynamicUser", "yes")?;
                opt(f, "Group", group)
            }
        }
    }
}

impl Display for OneshotSection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Service]")?;
        key(f, "Type", "oneshot")?;
        key(f, "ExecStart", &self.exec_start)?;
        for command in &self.exec_stop_post {
            key(f, "ExecStopPost", command)?;
        }
        key(f, "TimeoutStartSec", Span(self.timeout_start))?;
        self.account.fmt(f)?;
        key(f, "StateDirectory", &self.state_directory)?;
        key(f, "RuntimeDirectory", &self.runtime_directory)?;
        key(f, "RuntimeDirectoryMode", format_args!("{:04o}", self.runtime_directory_mode))?;
        key(f, "SyslogIdentifier", &self.syslog_identifier)?;
        key(f, "UMask", format_args!("{:04o}", self.umask))?;
        writeln!(f)?;
        writeln!(f, "# Sandboxing: the network to reach the CA, its own directories, nothing else.")?;
        self.sandbox.fmt(f)
    }
}

impl Display for TimerSection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Timer]")?;
        key(f, "OnCalendar", &self.on_calendar)?;
        key(f, "OnBootSec", Span(self.on_boot))?;
        key(f, "RandomizedDelaySec", Span(self.randomized_delay))?;
        opt(f, "Persistent", &self.persistent.then_some("yes"))
    }
}

impl Display for AddressFamily {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressFamily::Unix => "AF_UNIX",
            AddressFamily::Inet => "AF_INET",
            AddressFamily::Inet6 => "AF_INET6",
        })
    }
}

impl Display for Sandbox {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        list(f, "BindPaths", &self.bind_paths)?;
        list(f, "BindReadOnlyPaths", &self.bind_read_only_paths)?;
        key(f, "CapabilityBoundingSet", self.capability_bounding_set.join(" "))?;
        opt(
            f,
            "DevicePolicy",
            &self.device_policy.map(|p| match p {
                DevicePolicy::Closed => "closed",
            }),
        )?;
        if self.ip_address_deny_any {
            key(f, "IPAddressDeny", "any")?;
        }
        opt(
            f,
            "KeyringMode",
            &self.keyring_mode.map(|m| match m {
                KeyringMode::Private => "private",
            }),
        )?;
        flag(f, "LockPersonality", self.lock_personality)?;
        flag(f, "MemoryDenyWriteExecute", self.memory_deny_write_execute)?;
        flag(f, "NoNewPrivileges", self.no_new_privileges)?;
        flag(f, "PrivateDevices", self.private_devices)?;
        flag(f, "PrivateIPC", self.private_ipc)?;
        flag(f, "PrivateMounts", self.private_mounts)?;
        flag(f, "PrivateNetwork", self.private_network)?;
        flag(f, "PrivateTmp", self.private_tmp)?;
        flag(f, "PrivateUsers", self.private_users)?;
        opt(
            f,
            "ProcSubset",
            &self.proc_subset.map(|p| match p {
                ProcSubset::Pid => "pid",
            }),
        )?;
        flag(f, "ProtectClock", self.protect_clock)?;
        flag(f, "ProtectControlGroups", self.protect_control_groups)?;
        opt(
            f,
            "ProtectHome",
            &self.protect_home.map(|h| match h {
                ProtectHome::Yes => "yes",
                ProtectHome::Tmpfs => "tmpfs",
            }),
        )?;
        flag(f, "ProtectHostname", self.protect_hostname)?;
        flag(f, "ProtectKernelLogs", self.protect_kernel_logs)?;
        flag(f, "ProtectKernelModules", self.protect_kernel_modules)?;
        flag(f, "ProtectKernelTunables", self.protect_kernel_tunables)?;
        opt(
            f,
            "ProtectProc",
            &self.protect_proc.map(|p| match p {
                ProtectProc::Invisible => "invisible",
            }),
        )?;
        opt(
            f,
            "ProtectSystem",
            &self.protect_system.map(|p| match p {
                ProtectSystem::Strict => "strict",
            }),
        )?;
        list(f, "ReadWritePaths", &self.read_write_paths)?;
        flag(f, "RemoveIPC", self.remove_ipc)?;
        if !self.restrict_address_families.is_empty() {
            let families: Vec<String> =
                self.restrict_address_families.iter().map(ToString::to_string).collect();
            key(f, "RestrictAddressFamilies", families.join(" "))?;
        }
        flag(f, "RestrictNamespaces", self.restrict_namespaces)?;
        flag(f, "RestrictRealtime", self.restrict_realtime)?;
        flag(f, "RestrictSUIDSGID", self.restrict_suid_sgid)?;
        if self.system_call_architectures_native {
            key(f, "SystemCallArchitectures", "native")?;
        }
        opt(f, "SystemCallErrorNumber", &self.system_call_error_number)?;
        for filter in &self.system_call_filter {
            key(f, "SystemCallFilter", filter)?;
        }
        Ok(())
    }
}

impl Display for SocketSection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Socket]")?;
        key(f, "ListenStream", &self.listen_stream)?;
        key(f, "FileDescriptorName", &self.file_descriptor_name)?;
        opt(f, "Service", &self.service)?;
        key(f, "Backlog", self.backlog)?;
        opt(
            f,
            "BindIPv6Only",
            &self.bind_ipv6_only.map(|b| match b {
                BindIpv6Only::Both => "both",
                BindIpv6Only::Ipv6Only => "ipv6-only",
            }),
        )?;
        flag(f, "FreeBind", self.free_bind)?;
        opt(f, "NoDelay", &self.no_delay.map(yes_no))?;
        opt(f, "SocketMode", &self.socket_mode.map(|m| format!("{m:04o}")))?;
        flag(f, "RemoveOnStop", self.remove_on_stop)
    }
}

impl Display for InstallSection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Install]")?;
        list(f, "WantedBy", &self.wanted_by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_render_as_systemd_time() {
        assert_eq!(Span(Duration::from_secs(35)).to_string(), "35s");
        assert_eq!(Span(Duration::from_millis(5500)).to_string(), "5500ms");
        assert_eq!(Span(Duration::ZERO).to_string(), "0s");
    }

    #[test]
    fn commands_escape_dollar_signs() {
        let command = Command {
            privileged: false,
            program: "/usr/sbin/graced".into(),
            args: vec!["-f".into(), "/etc/a$b".into()],
        };
        assert_eq!(command.to_string(), "/usr/sbin/graced -f /etc/a$$b");
        let command = Command { privileged: true, ..command };
        assert_eq!(command.to_string(), "+/usr/sbin/graced -f /etc/a$$b");
    }
}
