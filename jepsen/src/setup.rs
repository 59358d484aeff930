//! Host preparation for namespace mode: checks that the network tools the harness drives are
//! installed (`ip` and `tc` from iproute2, `nft` from nftables, `iptables`) and, when running
//! as root on Debian, installs the missing packages with apt-get. Otherwise it says exactly
//! what is missing and how to install it.
//!
//! It only installs packages; it does not change any network setting.

use std::path::Path;
use std::process::Command;

/// The programs the harness uses and the Debian package providing each.
pub const TOOLS: [(&str, &str); 4] = [
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("nft", "nftables"),
    ("iptables", "iptables"),
];

/// Errors preparing the host.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Tools are missing and cannot be installed here.
    #[error(
        "missing {programs} ({reason}); install the Debian packages: apt-get install {packages}"
    )]
    Missing {
        programs: String,
        packages: String,
        reason: String,
    },
    /// apt-get ran and failed.
    #[error("apt-get install {packages} failed: {detail}")]
    Install { packages: String, detail: String },
}

/// Whether `program` is an executable file on `PATH` (or in /usr/sbin, /sbin, where root
/// tools live even when `PATH` lacks them).
pub fn has_program(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(Into::into))
        .any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The programs of [`TOOLS`] that are missing, with their packages.
pub fn missing() -> Vec<(&'static str, &'static str)> {
    TOOLS
        .iter()
        .copied()
        .filter(|(prog, _)| !has_program(prog))
        .collect()
}

/// Ensures every tool is present, installing missing packages with apt-get when root and
/// apt-get exists. Returns the packages installed (empty if nothing was missing).
pub fn ensure_tools() -> Result<Vec<String>, SetupError> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let programs = missing.iter().map(|m| m.0).collect::<Vec<_>>().join(", ");
    let mut packages: Vec<String> = missing.iter().map(|m| m.1.to_owned()).collect();
    packages.dedup();
    let list = packages.join(" ");
    let reason = if !is_root() {
        Some("not root, cannot install")
    } else if !has_program("apt-get") {
        Some("no apt-get on this system")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(SetupError::Missing {
            programs,
            packages: list,
            reason: reason.into(),
        });
    }
    tracing::info!(packages = %list, "installing missing network tools");
    let out = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| SetupError::Install {
            packages: list.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(SetupError::Install {
            packages: list,
            detail: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    let still = missing_after();
    if !still.is_empty() {
        return Err(SetupError::Install {
            packages: list,
            detail: format!("still missing after install: {still}"),
        });
    }
    Ok(packages)
}

fn missing_after() -> String {
    missing().iter().map(|m| m.0).collect::<Vec<_>>().join(", ")
}
