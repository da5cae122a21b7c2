//! Which emulator boots the hypervisor, and why.
//!
//! A VT-x hypervisor needs a CPU that offers VMX. There are two ways to get one
//! on a development machine:
//!
//! - **QEMU with KVM**, when the host is an Intel CPU (`vmx` in
//!   `/proc/cpuinfo`) and KVM allows nested virtualization
//!   (`/sys/module/kvm_intel/parameters/nested` is `Y` or `1`): KVM then gives
//!   the QEMU guest a virtual VMX. Fast.
//! - **Bochs**, which emulates VMX itself (EPT, VPID, unrestricted guest, ...)
//!   on any host. Slow, but it works everywhere, which makes it the CI machine.
//!
//! QEMU's TCG (its pure emulator) does not emulate VMX at all, so "QEMU without
//! KVM" can only show how the hypervisor reports a missing VT-x.
//!
//! The automatic choice is the pure function [`decide_auto`] of the two texts
//! it reads, so it can be tested without the files.

use std::fmt;

use crate::error::RunError;
use crate::options::EmulatorChoice;

/// Where the host tells whether KVM allows nested VMX.
pub const KVM_INTEL_NESTED_PATH: &str = "/sys/module/kvm_intel/parameters/nested";

/// An emulator configuration the runner knows how to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// Bochs with an Ice Lake CPU model (VMX, EPT, unrestricted guest).
    Bochs,
    /// QEMU with TCG: no VMX in the guest.
    QemuTcg,
    /// QEMU with KVM and `-cpu host`: VMX through KVM's nested virtualization.
    QemuKvm,
}

impl Machine {
    /// A short name for messages: `Bochs`, `QEMU (TCG)`, `QEMU with KVM`.
    pub fn display_name(self) -> &'static str {
        match self {
            Machine::Bochs => "Bochs",
            Machine::QemuTcg => "QEMU (TCG)",
            Machine::QemuKvm => "QEMU with KVM",
        }
    }

    /// A file-name-friendly name: `bochs`, `qemu-tcg`, `qemu-kvm`.
    pub fn slug(self) -> &'static str {
        match self {
            Machine::Bochs => "bochs",
            Machine::QemuTcg => "qemu-tcg",
            Machine::QemuKvm => "qemu-kvm",
        }
    }

    /// Whether this machine is one of the QEMU flavours.
    pub fn is_qemu(self) -> bool {
        matches!(self, Machine::QemuTcg | Machine::QemuKvm)
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// The emulator to use and the reason, as printed before booting:
/// `runner: emulator Bochs (host CPU has no vmx flag; ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorDecision {
    /// The machine to start.
    pub machine: Machine,
    /// Why, in words.
    pub reason: String,
}

impl fmt::Display for EmulatorDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "emulator {} ({})", self.machine, self.reason)
    }
}

/// What the host offers for running a VT-x hypervisor under KVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvmSupport {
    /// The CPU flags have no `vmx` (e.g. an AMD host, or a VM without nested VMX).
    NoVmxFlag,
    /// `vmx` is there but the `kvm_intel` module is not loaded (no `nested` parameter).
    KvmIntelNotLoaded,
    /// `vmx` is there but `kvm_intel` has nested virtualization switched off.
    NestedDisabled,
    /// `vmx` is there and `kvm_intel` allows nested virtualization.
    Nested,
}

impl KvmSupport {
    /// Reads the answer from the text of `/proc/cpuinfo` and of
    /// [`KVM_INTEL_NESTED_PATH`] (`None` when that file does not exist).
    pub fn from_host_texts(cpuinfo: &str, kvm_intel_nested: Option<&str>) -> Self {
        if !cpuinfo_has_flag(cpuinfo, "vmx") {
            return KvmSupport::NoVmxFlag;
        }
        match kvm_intel_nested.map(str::trim) {
            None => KvmSupport::KvmIntelNotLoaded,
            Some("Y") | Some("y") | Some("1") => KvmSupport::Nested,
            Some(_) => KvmSupport::NestedDisabled,
        }
    }

    /// Reads `/proc/cpuinfo` and [`KVM_INTEL_NESTED_PATH`] of this host.
    /// An unreadable `/proc/cpuinfo` counts as "no vmx flag".
    pub fn probe_host() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let nested = std::fs::read_to_string(KVM_INTEL_NESTED_PATH).ok();
        Self::from_host_texts(&cpuinfo, nested.as_deref())
    }

    /// Why KVM can or cannot run the hypervisor, in words.
    pub fn explanation(self) -> &'static str {
        match self {
            KvmSupport::NoVmxFlag => "host CPU has no vmx flag; QEMU's TCG cannot emulate VT-x",
            KvmSupport::KvmIntelNotLoaded => {
                "host CPU has the vmx flag but the kvm_intel module is not loaded; \
                 QEMU's TCG cannot emulate VT-x"
            }
            KvmSupport::NestedDisabled => {
                "host CPU has the vmx flag but kvm_intel's nested virtualization is off \
                 (/sys/module/kvm_intel/parameters/nested); QEMU's TCG cannot emulate VT-x"
            }
            KvmSupport::Nested => "host CPU has the vmx flag and kvm_intel allows nested virtualization",
        }
    }
}

/// Whether any `flags` line of a `/proc/cpuinfo` text lists `flag` as a whole word.
pub fn cpuinfo_has_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim() == "flags")
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == flag))
}

/// The `auto` choice: QEMU with KVM iff the host CPU shows `vmx` and KVM allows
/// nested virtualization; Bochs otherwise.
///
/// `cpuinfo` is the text of `/proc/cpuinfo`; `kvm_intel_nested` the text of
/// [`KVM_INTEL_NESTED_PATH`], `None` when the file does not exist.
pub fn decide_auto(cpuinfo: &str, kvm_intel_nested: Option<&str>) -> EmulatorDecision {
    auto_decision(KvmSupport::from_host_texts(cpuinfo, kvm_intel_nested))
}

/// The `auto` choice for a host whose KVM support is already known.
fn auto_decision(kvm: KvmSupport) -> EmulatorDecision {
    let machine = if kvm == KvmSupport::Nested { Machine::QemuKvm } else { Machine::Bochs };
    EmulatorDecision { machine, reason: kvm.explanation().to_string() }
}

/// Turns the user's choice into a machine, checking what the host and the boot
/// mode allow. `kvm` is the host's answer (see [`KvmSupport::probe_host`]).
///
/// Errors: `--uefi` with Bochs ([`RunError::UefiNeedsQemu`]), `qemu-kvm` on a
/// host that cannot ([`RunError::KvmUnavailable`]).
pub fn resolve(choice: EmulatorChoice, uefi: bool, kvm: KvmSupport) -> Result<EmulatorDecision, RunError> {
    let decision = match choice {
        EmulatorChoice::Auto => auto_decision(kvm),
        EmulatorChoice::Bochs => {
            EmulatorDecision { machine: Machine::Bochs, reason: "chosen with --emulator bochs".to_string() }
        }
        EmulatorChoice::Qemu => EmulatorDecision {
            machine: Machine::QemuTcg,
            reason: "chosen with --emulator qemu; TCG offers no VT-x, so expect the hypervisor to say so".to_string(),
        },
        EmulatorChoice::QemuKvm => {
            if kvm != KvmSupport::Nested {
                return Err(RunError::KvmUnavailable { reason: kvm.explanation().to_string() });
            }
            EmulatorDecision {
                machine: Machine::QemuKvm,
                reason: format!("chosen with --emulator qemu-kvm; {}", kvm.explanation()),
            }
        }
    };
    if uefi && decision.machine == Machine::Bochs {
        return Err(RunError::UefiNeedsQemu { bochs_reason: decision.reason });
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD_CPUINFO: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\n\
        flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov svm_lock\n\
        bugs\t\t: sysret_ss_attrs\n";
    const INTEL_CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\n\
        flags\t\t: fpu vme de pse tsc msr vmx smx est tm2\n\
        vmx flags\t: vnmi preemption_timer invvpid ept_x_only\n";

    #[test]
    fn amd_host_gets_bochs_with_the_reason() {
        let decision = decide_auto(AMD_CPUINFO, None);
        assert_eq!(decision.machine, Machine::Bochs);
        assert_eq!(decision.to_string(), "emulator Bochs (host CPU has no vmx flag; QEMU's TCG cannot emulate VT-x)");
    }

    #[test]
    fn flag_must_be_a_whole_word_of_a_flags_line() {
        // `svm_lock` is not `svm`; the `vmx flags` line is not the `flags` line.
        assert!(!cpuinfo_has_flag(AMD_CPUINFO, "svm"));
        let only_vmx_flags_line = "vmx flags\t: vmx ept\nflags\t: fpu\n";
        assert!(!cpuinfo_has_flag(only_vmx_flags_line, "vmx"));
        assert!(cpuinfo_has_flag(INTEL_CPUINFO, "vmx"));
    }

    #[test]
    fn intel_host_with_nested_kvm_gets_qemu_kvm() {
        for nested in ["Y\n", "1\n", "Y"] {
            assert_eq!(decide_auto(INTEL_CPUINFO, Some(nested)).machine, Machine::QemuKvm, "{nested:?}");
        }
    }

    #[test]
    fn intel_host_without_nested_kvm_gets_bochs() {
        let off = decide_auto(INTEL_CPUINFO, Some("N\n"));
        assert_eq!(off.machine, Machine::Bochs);
        assert!(off.reason.contains("nested virtualization is off"), "{}", off.reason);
        let zero = decide_auto(INTEL_CPUINFO, Some("0\n"));
        assert_eq!(zero.machine, Machine::Bochs);
        let unloaded = decide_auto(INTEL_CPUINFO, None);
        assert_eq!(unloaded.machine, Machine::Bochs);
        assert!(unloaded.reason.contains("not loaded"), "{}", unloaded.reason);
    }

    #[test]
    fn empty_cpuinfo_means_no_vmx() {
        assert_eq!(decide_auto("", Some("Y")).machine, Machine::Bochs);
    }

    #[test]
    fn uefi_with_bochs_is_an_error() {
        let explicit = resolve(EmulatorChoice::Bochs, true, KvmSupport::Nested);
        assert!(matches!(explicit, Err(RunError::UefiNeedsQemu { .. })));
        let auto = resolve(EmulatorChoice::Auto, true, KvmSupport::NoVmxFlag);
        assert!(matches!(auto, Err(RunError::UefiNeedsQemu { .. })));
        let auto_kvm = resolve(EmulatorChoice::Auto, true, KvmSupport::Nested).map(|d| d.machine);
        assert_eq!(auto_kvm.ok(), Some(Machine::QemuKvm));
    }

    #[test]
    fn explicit_qemu_is_tcg_even_on_a_kvm_host() {
        let decision = resolve(EmulatorChoice::Qemu, false, KvmSupport::Nested).map(|d| d.machine);
        assert_eq!(decision.ok(), Some(Machine::QemuTcg));
    }

    #[test]
    fn explicit_qemu_kvm_needs_nested_kvm() {
        let refused = resolve(EmulatorChoice::QemuKvm, false, KvmSupport::NoVmxFlag);
        assert!(matches!(refused, Err(RunError::KvmUnavailable { .. })));
        let granted = resolve(EmulatorChoice::QemuKvm, true, KvmSupport::Nested).map(|d| d.machine);
        assert_eq!(granted.ok(), Some(Machine::QemuKvm));
    }
}
