//! The capability explorer: every VMX capability MSR, raw and decoded bit by
//! bit (`cargo run -- --caps`).
//!
//! [`crate::caps::VmxCapabilities`]' `Display` is a summary of what this
//! hypervisor cares about; the explorer instead shows *everything* the
//! processor reports (SDM Vol. 3C, Appendix A "VMX Capability Reporting
//! Facility"), so that a reader can compare it with the SDM line by line:
//!
//! 1. every MSR's number, name and raw value (or why it was not read);
//! 2. for each of the five control words (SDM Vol. 3C, Appendix A.3
//!    "VM-Execution Controls", A.4 "VM-Exit Controls", A.5 "VM-Entry
//!    Controls") every bit: `bit N  <SDM name or "reserved">  fixed-0 |
//!    fixed-1 | flexible`;
//! 3. the EPT and VPID capabilities, one per line (Appendix A.10 "VPID and
//!    EPT Capabilities");
//! 4. the fields of IA32_VMX_MISC (Appendix A.6 "Miscellaneous Data");
//! 5. the CR0 and CR4 bits VMX operation fixes (Appendix A.7 "VMX-Fixed Bits
//!    in CR0", A.8 "VMX-Fixed Bits in CR4").
//!
//! The output goes to any [`core::fmt::Write`], needs no allocation, and
//! keeps every line shorter than 100 characters (the kernel prints each one
//! behind a log prefix).

use core::fmt::{self, Write};

use crate::caps::{self, AllowedBits, BitSetting, EptVpidCap, FixedBits, RawVmxMsrs, VmxBasic, VmxCapabilities};
use crate::controls::{name_of, ControlSet};

/// Where a capability MSR's value is found in [`RawVmxMsrs`], or why it is not.
enum MsrValue {
    /// Read: this is its value.
    Read(u64),
    /// Not read, for the given reason.
    NotRead(&'static str),
}

/// Writes the whole explorer report for `raw` to `out`, one line per item,
/// each line ending in `'\n'`.
pub fn write_explorer(raw: &RawVmxMsrs, out: &mut impl Write) -> fmt::Result {
    let caps = VmxCapabilities::decode(raw);
    write_msrs(raw, &caps, out)?;
    write_basic(caps.basic, out)?;
    for set in ControlSet::ALL {
        write_control_set(raw, &caps, set, out)?;
    }
    write_ept_vpid(&caps, out)?;
    write_misc(&caps, out)?;
    write_fixed(out, "CR0", caps::IA32_VMX_CR0_FIXED0, caps.cr0, CR0_NAMES)?;
    write_fixed(out, "CR4", caps::IA32_VMX_CR4_FIXED0, caps.cr4, CR4_NAMES)?;
    writeln!(out, "== end of capability report ==")
}

/// Writes a section heading.
fn heading(out: &mut impl Write, title: fmt::Arguments<'_>) -> fmt::Result {
    writeln!(out, "== {title} ==")
}

// ---------------------------------------------------------------------------
// 1. The MSRs themselves
// ---------------------------------------------------------------------------

/// The MSR table: every MSR of Appendix A, in number order.
fn write_msrs(raw: &RawVmxMsrs, caps: &VmxCapabilities, out: &mut impl Write) -> fmt::Result {
    use MsrValue::{NotRead, Read};
    let true_controls = caps.basic.true_controls();
    // With bit 55 of IA32_VMX_BASIC the kernel reads the TRUE MSRs (0x48D-0x490)
    // in place of 0x481-0x484 and keeps their values in the same fields.
    let split = |value: u64| -> (MsrValue, MsrValue) {
        if true_controls {
            (NotRead("not read: the TRUE MSR replaces it"), Read(value))
        } else {
            (Read(value), NotRead("absent: IA32_VMX_BASIC bit 55 is 0"))
        }
    };
    let (pin, true_pin) = split(raw.pinbased);
    let (proc, true_proc) = split(raw.procbased);
    let (exit, true_exit) = split(raw.exit);
    let (entry, true_entry) = split(raw.entry);
    let procbased2 = if caps.has_secondary_controls() {
        Read(raw.procbased2)
    } else {
        NotRead("absent: \"activate secondary controls\" is fixed 0")
    };
    let ept_vpid = if caps.has_ept() || caps.has_vpid() {
        Read(raw.ept_vpid_cap)
    } else {
        NotRead("absent: neither \"enable EPT\" nor \"enable VPID\" may be 1")
    };
    let unused = "not read: this hypervisor does not use it";
    let table: [(u32, &str, MsrValue); 19] = [
        (caps::IA32_FEATURE_CONTROL, "IA32_FEATURE_CONTROL", Read(raw.feature_control)),
        (caps::IA32_VMX_BASIC, "IA32_VMX_BASIC", Read(raw.basic)),
        (caps::IA32_VMX_PINBASED_CTLS, "IA32_VMX_PINBASED_CTLS", pin),
        (caps::IA32_VMX_PROCBASED_CTLS, "IA32_VMX_PROCBASED_CTLS", proc),
        (caps::IA32_VMX_EXIT_CTLS, "IA32_VMX_EXIT_CTLS", exit),
        (caps::IA32_VMX_ENTRY_CTLS, "IA32_VMX_ENTRY_CTLS", entry),
        (caps::IA32_VMX_MISC, "IA32_VMX_MISC", Read(raw.misc)),
        (caps::IA32_VMX_CR0_FIXED0, "IA32_VMX_CR0_FIXED0", Read(raw.cr0_fixed0)),
        (caps::IA32_VMX_CR0_FIXED1, "IA32_VMX_CR0_FIXED1", Read(raw.cr0_fixed1)),
        (caps::IA32_VMX_CR4_FIXED0, "IA32_VMX_CR4_FIXED0", Read(raw.cr4_fixed0)),
        (caps::IA32_VMX_CR4_FIXED1, "IA32_VMX_CR4_FIXED1", Read(raw.cr4_fixed1)),
        (caps::IA32_VMX_VMCS_ENUM, "IA32_VMX_VMCS_ENUM", NotRead(unused)),
        (caps::IA32_VMX_PROCBASED_CTLS2, "IA32_VMX_PROCBASED_CTLS2", procbased2),
        (caps::IA32_VMX_EPT_VPID_CAP, "IA32_VMX_EPT_VPID_CAP", ept_vpid),
        (caps::IA32_VMX_TRUE_PINBASED_CTLS, "IA32_VMX_TRUE_PINBASED_CTLS", true_pin),
        (caps::IA32_VMX_TRUE_PROCBASED_CTLS, "IA32_VMX_TRUE_PROCBASED_CTLS", true_proc),
        (caps::IA32_VMX_TRUE_EXIT_CTLS, "IA32_VMX_TRUE_EXIT_CTLS", true_exit),
        (caps::IA32_VMX_TRUE_ENTRY_CTLS, "IA32_VMX_TRUE_ENTRY_CTLS", true_entry),
        (caps::IA32_VMX_VMFUNC, "IA32_VMX_VMFUNC", NotRead(unused)),
    ];
    heading(out, format_args!("capability MSRs (SDM Vol. 3C, Appendix A)"))?;
    for (number, name, value) in table {
        match value {
            Read(value) => writeln!(out, "MSR {number:#05x}  {name:<29} {value:#018x}")?,
            NotRead(why) => writeln!(out, "MSR {number:#05x}  {name:<29} {why}")?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// IA32_VMX_BASIC
// ---------------------------------------------------------------------------

/// The fields of IA32_VMX_BASIC (SDM Vol. 3C, Appendix A.1 "Basic VMX Information").
fn write_basic(basic: VmxBasic, out: &mut impl Write) -> fmt::Result {
    heading(out, format_args!("IA32_VMX_BASIC (SDM Vol. 3C, A.1 \"Basic VMX Information\")"))?;
    writeln!(out, "VMCS revision identifier (bits 30:0)       {:#x}", basic.revision_id())?;
    writeln!(out, "VMXON/VMCS region size (bits 44:32)        {} bytes", basic.vmcs_region_size())?;
    writeln!(out, "addresses limited to 32 bits (bit 48)      {}", yes_no(basic.addresses_limited_to_32_bits()))?;
    writeln!(out, "dual-monitor SMM treatment (bit 49)        {}", yes_no(basic.dual_monitor_smm()))?;
    match basic.memory_type() {
        Some(t) => writeln!(out, "VMCS memory type (bits 53:50)              {} ({})", t.short_name(), t.number())?,
        None => writeln!(out, "VMCS memory type (bits 53:50)              reserved ({})", basic.memory_type_number())?,
    }
    writeln!(out, "INS/OUTS instruction information (bit 54)  {}", yes_no(basic.ins_outs_info()))?;
    writeln!(out, "TRUE control MSRs exist (bit 55)           {}", yes_no(basic.true_controls()))?;
    writeln!(out, "any exception error code on entry (bit 56) {}", yes_no(basic.relaxed_error_code_injection()))
}

// ---------------------------------------------------------------------------
// 2. The control words, bit by bit
// ---------------------------------------------------------------------------

/// The SDM section describing the controls of `set` and the one describing
/// its capability MSR.
const fn sections(set: ControlSet) -> (&'static str, &'static str) {
    match set {
        ControlSet::PinBased => ("25.6.1", "A.3.1"),
        ControlSet::PrimaryProcessorBased => ("25.6.2", "A.3.2"),
        ControlSet::SecondaryProcessorBased => ("25.6.2", "A.3.3"),
        ControlSet::VmExit => ("25.7.1", "A.4"),
        ControlSet::VmEntry => ("25.8.1", "A.5"),
    }
}

/// The name of a capability MSR of a control set.
const fn msr_name(msr: u32) -> &'static str {
    match msr {
        caps::IA32_VMX_PINBASED_CTLS => "IA32_VMX_PINBASED_CTLS",
        caps::IA32_VMX_PROCBASED_CTLS => "IA32_VMX_PROCBASED_CTLS",
        caps::IA32_VMX_EXIT_CTLS => "IA32_VMX_EXIT_CTLS",
        caps::IA32_VMX_ENTRY_CTLS => "IA32_VMX_ENTRY_CTLS",
        caps::IA32_VMX_PROCBASED_CTLS2 => "IA32_VMX_PROCBASED_CTLS2",
        caps::IA32_VMX_TRUE_PINBASED_CTLS => "IA32_VMX_TRUE_PINBASED_CTLS",
        caps::IA32_VMX_TRUE_PROCBASED_CTLS => "IA32_VMX_TRUE_PROCBASED_CTLS",
        caps::IA32_VMX_TRUE_EXIT_CTLS => "IA32_VMX_TRUE_EXIT_CTLS",
        caps::IA32_VMX_TRUE_ENTRY_CTLS => "IA32_VMX_TRUE_ENTRY_CTLS",
        _ => "unknown MSR",
    }
}

/// How a [`BitSetting`] is printed.
const fn setting_name(setting: BitSetting) -> &'static str {
    match setting {
        BitSetting::Fixed0 => "fixed-0",
        BitSetting::Fixed1 => "fixed-1",
        BitSetting::Flexible => "flexible",
        BitSetting::Contradictory => "contradictory (bad MSR value)",
    }
}

/// One control word: which MSR reported it, then all 32 bits.
fn write_control_set(raw: &RawVmxMsrs, caps: &VmxCapabilities, set: ControlSet, out: &mut impl Write) -> fmt::Result {
    let (controls_section, msr_section) = sections(set);
    heading(out, format_args!("{} (SDM Vol. 3C, {controls_section})", set.name()))?;
    if set == ControlSet::SecondaryProcessorBased && !caps.has_secondary_controls() {
        return writeln!(out, "not available: \"activate secondary controls\" is fixed 0");
    }
    let msr = set.capability_msr(caps.basic.true_controls());
    let value = match set {
        ControlSet::PinBased => raw.pinbased,
        ControlSet::PrimaryProcessorBased => raw.procbased,
        ControlSet::SecondaryProcessorBased => raw.procbased2,
        ControlSet::VmExit => raw.exit,
        ControlSet::VmEntry => raw.entry,
    };
    writeln!(out, "read from MSR {msr:#05x} {} = {value:#018x} (SDM A.2, {msr_section})", msr_name(msr))?;
    let allowed = AllowedBits::from_msr(value);
    writeln!(out, "allowed-0 (must be 1) {:#010x}  allowed-1 (may be 1) {:#010x}", allowed.allowed0, allowed.allowed1)?;
    for bit in 0..32 {
        let name = name_of(set, bit).unwrap_or("reserved");
        writeln!(out, "bit {bit:>2}  {name:<40}  {}", setting_name(allowed.classify(bit)))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. EPT and VPID
// ---------------------------------------------------------------------------

/// An [`EptVpidCap`] accessor: whether one capability is present.
type EptVpidTest = fn(EptVpidCap) -> bool;

/// The capabilities of IA32_VMX_EPT_VPID_CAP with their bit numbers and
/// accessors (SDM Vol. 3C, Appendix A.10 "VPID and EPT Capabilities").
const EPT_VPID_BITS: [(u32, &str, EptVpidTest); 18] = [
    (0, "EPT: execute-only translations", EptVpidCap::execute_only),
    (6, "EPT: page-walk length 4", EptVpidCap::page_walk_length_4),
    (7, "EPT: page-walk length 5", EptVpidCap::page_walk_length_5),
    (8, "EPT: uncacheable (UC) paging structures", EptVpidCap::memory_type_uc),
    (14, "EPT: write-back (WB) paging structures", EptVpidCap::memory_type_wb),
    (16, "EPT: 2-MiB pages (PDE)", EptVpidCap::pages_2mib),
    (17, "EPT: 1-GiB pages (PDPTE)", EptVpidCap::pages_1gib),
    (20, "EPT: INVEPT instruction", EptVpidCap::invept),
    (21, "EPT: accessed and dirty flags", EptVpidCap::accessed_dirty_flags),
    (22, "EPT: advanced EPT-violation exit information", EptVpidCap::advanced_violation_info),
    (23, "EPT: supervisor shadow-stack control", EptVpidCap::supervisor_shadow_stack),
    (25, "EPT: single-context INVEPT", EptVpidCap::invept_single_context),
    (26, "EPT: all-context INVEPT", EptVpidCap::invept_all_context),
    (32, "VPID: INVVPID instruction", EptVpidCap::invvpid),
    (40, "VPID: individual-address INVVPID", EptVpidCap::invvpid_individual_address),
    (41, "VPID: single-context INVVPID", EptVpidCap::invvpid_single_context),
    (42, "VPID: all-context INVVPID", EptVpidCap::invvpid_all_context),
    (43, "VPID: single-context-retaining-globals INVVPID", EptVpidCap::invvpid_single_context_retaining_globals),
];

/// "yes" or "no".
const fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// One line per EPT/VPID capability.
fn write_ept_vpid(caps: &VmxCapabilities, out: &mut impl Write) -> fmt::Result {
    heading(out, format_args!("IA32_VMX_EPT_VPID_CAP (SDM Vol. 3C, A.10 \"VPID and EPT Capabilities\")"))?;
    if !caps.has_ept() && !caps.has_vpid() {
        return writeln!(out, "not available: neither \"enable EPT\" nor \"enable VPID\" may be 1");
    }
    for (bit, name, test) in EPT_VPID_BITS {
        writeln!(out, "bit {bit:>2}  {name:<48}  {}", yes_no(test(caps.ept_vpid)))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. IA32_VMX_MISC
// ---------------------------------------------------------------------------

/// The fields of IA32_VMX_MISC (SDM Vol. 3C, Appendix A.6 "Miscellaneous Data").
fn write_misc(caps: &VmxCapabilities, out: &mut impl Write) -> fmt::Result {
    let misc = caps.misc;
    heading(out, format_args!("IA32_VMX_MISC (SDM Vol. 3C, A.6 \"Miscellaneous Data\")"))?;
    let rate = misc.preemption_timer_rate();
    writeln!(out, "bits 4:0    preemption timer rate            TSC / 2^{rate}")?;
    writeln!(out, "bit  5      exits store EFER.LMA             {}", yes_no(misc.stores_efer_lma()))?;
    writeln!(out, "bit  6      HLT activity state               {}", yes_no(misc.activity_hlt()))?;
    writeln!(out, "bit  7      shutdown activity state          {}", yes_no(misc.activity_shutdown()))?;
    writeln!(out, "bit  8      wait-for-SIPI activity state     {}", yes_no(misc.activity_wait_for_sipi()))?;
    writeln!(out, "bit  14     Intel PT in VMX operation        {}", yes_no(misc.intel_pt_in_vmx()))?;
    writeln!(out, "bit  15     RDMSR of IA32_SMBASE in SMM      {}", yes_no(misc.rdmsr_smbase_in_smm()))?;
    writeln!(out, "bits 24:16  CR3-target values                {}", misc.cr3_target_count())?;
    writeln!(out, "bits 27:25  MSR-list maximum (recommended)   {}", misc.max_msr_list_count())?;
    writeln!(out, "bit  28     IA32_SMM_MONITOR_CTL bit 2       {}", yes_no(misc.smm_monitor_ctl_bit2()))?;
    writeln!(out, "bit  29     VMWRITE to any field             {}", yes_no(misc.vmwrite_any_field()))?;
    writeln!(out, "bit  30     zero-length instruction inject   {}", yes_no(misc.zero_length_injection()))?;
    writeln!(out, "bits 63:32  MSEG revision identifier         {:#x}", misc.mseg_revision())
}

// ---------------------------------------------------------------------------
// 5. CR0 and CR4
// ---------------------------------------------------------------------------

/// The architectural CR0 bits (SDM Vol. 3A, 2.5 "Control Registers").
const CR0_NAMES: &[(u32, &str)] = &[
    (0, "PE"),
    (1, "MP"),
    (2, "EM"),
    (3, "TS"),
    (4, "ET"),
    (5, "NE"),
    (16, "WP"),
    (18, "AM"),
    (29, "NW"),
    (30, "CD"),
    (31, "PG"),
];

/// The architectural CR4 bits (SDM Vol. 3A, 2.5 "Control Registers").
const CR4_NAMES: &[(u32, &str)] = &[
    (0, "VME"),
    (1, "PVI"),
    (2, "TSD"),
    (3, "DE"),
    (4, "PSE"),
    (5, "PAE"),
    (6, "MCE"),
    (7, "PGE"),
    (8, "PCE"),
    (9, "OSFXSR"),
    (10, "OSXMMEXCPT"),
    (11, "UMIP"),
    (12, "LA57"),
    (13, "VMXE"),
    (14, "SMXE"),
    (16, "FSGSBASE"),
    (17, "PCIDE"),
    (18, "OSXSAVE"),
    (19, "KL"),
    (20, "SMEP"),
    (21, "SMAP"),
    (22, "PKE"),
    (23, "CET"),
    (24, "PKS"),
    (25, "UINTR"),
];

/// What VMX operation requires of one CR bit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CrRule {
    /// FIXED0 bit is 1: must be 1.
    One,
    /// FIXED1 bit is 0: must be 0.
    Zero,
    /// Neither: software chooses.
    Free,
}

/// The rule for bit `n` (FIXED0 wins should both say "fixed": the SDM never
/// reports such a pair).
const fn rule(fixed: FixedBits, n: u32) -> CrRule {
    if (fixed.fixed0 >> n) & 1 != 0 {
        CrRule::One
    } else if (fixed.fixed1 >> n) & 1 == 0 {
        CrRule::Zero
    } else {
        CrRule::Free
    }
}

/// Writes comma-separated items, starting a new indented line before a line
/// would reach [`ListWriter::WIDTH`] characters.
struct ListWriter<'a, W: Write> {
    out: &'a mut W,
    column: usize,
    items: usize,
}

impl<W: Write> ListWriter<'_, W> {
    /// Lines stay below this many characters.
    const WIDTH: usize = 90;
    /// Indentation of continuation lines (the width of "CR0 fixed to 1: ").
    const INDENT: &'static str = "                ";

    /// Appends one item (formatted into a small stack buffer first, to know
    /// its length).
    fn item(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        let mut text = SmallText::default();
        text.write_fmt(args)?;
        let separator = if self.items == 0 { 0 } else { 2 };
        if self.items > 0 && self.column + separator + text.len > Self::WIDTH {
            self.out.write_str(",\n")?;
            self.out.write_str(Self::INDENT)?;
            self.column = Self::INDENT.len();
        } else if self.items > 0 {
            self.out.write_str(", ")?;
            self.column += 2;
        }
        self.out.write_str(text.as_str())?;
        self.column += text.len;
        self.items += 1;
        Ok(())
    }
}

/// A 32-byte stack string for one list item.
#[derive(Default)]
struct SmallText {
    bytes: [u8; 32],
    len: usize,
}

impl SmallText {
    /// The text written so far.
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl Write for SmallText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The three lists for one control register: which bits are fixed to 1,
/// fixed to 0 and free. Named bits appear as `NAME (n)`; runs of unnamed bits
/// as `bit n` or `bits a-b`.
fn write_fixed(
    out: &mut impl Write,
    register: &str,
    fixed0_msr: u32,
    fixed: FixedBits,
    names: &[(u32, &str)],
) -> fmt::Result {
    let section = if register == "CR0" { "A.7 \"VMX-Fixed Bits in CR0\"" } else { "A.8 \"VMX-Fixed Bits in CR4\"" };
    heading(out, format_args!("{register} in VMX operation (SDM Vol. 3C, {section})"))?;
    writeln!(out, "MSR {fixed0_msr:#05x} IA32_VMX_{register}_FIXED0 = {:#018x} (1 = must be 1)", fixed.fixed0)?;
    writeln!(out, "MSR {:#05x} IA32_VMX_{register}_FIXED1 = {:#018x} (0 = must be 0)", fixed0_msr + 1, fixed.fixed1)?;
    for (wanted, label) in [(CrRule::One, "fixed to 1"), (CrRule::Zero, "fixed to 0"), (CrRule::Free, "free      ")] {
        write!(out, "{register} {label}: ")?;
        let mut list = ListWriter { out: &mut *out, column: register.len() + label.len() + 3, items: 0 };
        let mut bit = 0;
        while bit < 64 {
            if rule(fixed, bit) != wanted {
                bit += 1;
                continue;
            }
            if let Some((_, name)) = names.iter().find(|(n, _)| *n == bit) {
                list.item(format_args!("{name} ({bit})"))?;
                bit += 1;
                continue;
            }
            // A run of unnamed bits with the same rule.
            let first = bit;
            while bit + 1 < 64 && rule(fixed, bit + 1) == wanted && !names.iter().any(|(n, _)| *n == bit + 1) {
                bit += 1;
            }
            if first == bit {
                list.item(format_args!("bit {bit}"))?;
            } else {
                list.item(format_args!("bits {first}-{bit}"))?;
            }
            bit += 1;
        }
        if list.items == 0 {
            list.out.write_str("none")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The values are the ones `caps.rs`' tests use: what Bochs'
    //! `corei7_icelake_u` model reports (see there for their origin).
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn bochs() -> RawVmxMsrs {
        RawVmxMsrs {
            feature_control: 0x5,
            basic: 0x00d8_1000_0000_0004,
            pinbased: 0x0000_007f_0000_0016,
            procbased: 0xfff9_fffe_0400_6172,
            procbased2: 0x0297_7fff << 32,
            exit: 0x01ff_ffff_0003_6dfb,
            entry: 0x0003_ffff_0000_11fb,
            misc: 0x6004_01e0,
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x0037_67ff,
            ept_vpid_cap: 0x0000_0f01_0633_4141,
        }
    }

    fn report(raw: &RawVmxMsrs) -> String {
        let mut text = String::new();
        write_explorer(raw, &mut text).expect("writing to a String cannot fail");
        text
    }

    /// The report's lines with runs of spaces squeezed to one.
    fn squeezed(report: &str) -> Vec<String> {
        report.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
    }

    /// The lines of the section whose heading contains `title`.
    fn section(report: &str, title: &str) -> Vec<String> {
        let lines = squeezed(report);
        let start = lines.iter().position(|l| l.starts_with("==") && l.contains(title)).expect("section exists");
        lines[start + 1..].iter().take_while(|l| !l.starts_with("==")).cloned().collect()
    }

    fn assert_has(lines: &[String], line: &str) {
        assert!(lines.iter().any(|l| l == line), "missing {line:?} in:\n{}", lines.join("\n"));
    }

    #[test]
    fn msrs_are_listed_with_numbers_and_values() {
        let lines = section(&report(&bochs()), "capability MSRs");
        assert_has(&lines, "MSR 0x480 IA32_VMX_BASIC 0x00d8100000000004");
        assert_has(&lines, "MSR 0x48d IA32_VMX_TRUE_PINBASED_CTLS 0x0000007f00000016");
        assert_has(&lines, "MSR 0x481 IA32_VMX_PINBASED_CTLS not read: the TRUE MSR replaces it");
        assert_has(&lines, "MSR 0x48c IA32_VMX_EPT_VPID_CAP 0x00000f0106334141");
        assert_eq!(lines.len(), 19);
    }

    #[test]
    fn control_bits_are_classified() {
        let text = report(&bochs());
        let pin = section(&text, "pin-based");
        assert_has(&pin, "read from MSR 0x48d IA32_VMX_TRUE_PINBASED_CTLS = 0x0000007f00000016 (SDM A.2, A.3.1)");
        assert_has(&pin, "bit 0 External-interrupt exiting flexible");
        assert_has(&pin, "bit 1 reserved fixed-1");
        assert_has(&pin, "bit 7 Process posted interrupts fixed-0");
        let primary = section(&text, "primary processor-based");
        assert_has(&primary, "bit 7 HLT exiting flexible");
        assert_has(&primary, "bit 31 Activate secondary controls flexible");
        let secondary = section(&text, "secondary processor-based");
        assert_has(&secondary, "read from MSR 0x48b IA32_VMX_PROCBASED_CTLS2 = 0x02977fff00000000 (SDM A.2, A.3.3)");
        assert_has(&secondary, "bit 1 Enable EPT flexible");
        assert_has(&secondary, "bit 15 Enable ENCLS exiting fixed-0");
        let entry = section(&text, "VM-entry");
        assert_has(&entry, "bit 9 IA-32e mode guest flexible");
        for set in ["pin-based", "primary processor", "secondary processor", "VM-exit", "VM-entry"] {
            assert_eq!(section(&text, set).iter().filter(|l| l.starts_with("bit ")).count(), 32, "{set}");
        }
    }

    #[test]
    fn ept_vpid_misc_and_basic() {
        let text = report(&bochs());
        let ept = section(&text, "EPT_VPID_CAP");
        assert_has(&ept, "bit 6 EPT: page-walk length 4 yes");
        assert_has(&ept, "bit 7 EPT: page-walk length 5 no");
        assert_has(&ept, "bit 17 EPT: 1-GiB pages (PDPTE) yes");
        assert_has(&ept, "bit 43 VPID: single-context-retaining-globals INVVPID yes");
        let misc = section(&text, "IA32_VMX_MISC");
        assert_has(&misc, "bits 24:16 CR3-target values 4");
        assert_has(&misc, "bit 6 HLT activity state yes");
        assert_has(&misc, "bit 14 Intel PT in VMX operation no");
        let basic = section(&text, "IA32_VMX_BASIC");
        assert_has(&basic, "VMCS memory type (bits 53:50) WB (6)");
        assert_has(&basic, "TRUE control MSRs exist (bit 55) yes");
    }

    #[test]
    fn cr0_and_cr4_fixed_bits() {
        let text = report(&bochs());
        let cr0 = section(&text, "CR0 in VMX");
        assert_has(&cr0, "CR0 fixed to 1: PE (0), NE (5), PG (31)");
        assert_has(&cr0, "CR0 fixed to 0: bits 32-63");
        let cr4 = section(&text, "CR4 in VMX");
        assert_has(&cr4, "CR4 fixed to 1: VMXE (13)");
        // 0x3767ff: bits 11, 12, 15, 19 and 22 up are fixed to 0.
        assert_has(&cr4, "CR4 fixed to 0: UMIP (11), LA57 (12), bit 15, KL (19), PKE (22), CET (23), PKS (24),");
        assert_has(&cr4, "UINTR (25), bits 26-63");
    }

    #[test]
    fn absent_msrs_are_explained() {
        let mut raw = bochs();
        raw.basic &= !(1 << 55);
        raw.procbased &= !(1 << 63);
        let text = report(&raw);
        let msrs = section(&text, "capability MSRs");
        assert_has(&msrs, "MSR 0x481 IA32_VMX_PINBASED_CTLS 0x0000007f00000016");
        assert_has(&msrs, "MSR 0x48d IA32_VMX_TRUE_PINBASED_CTLS absent: IA32_VMX_BASIC bit 55 is 0");
        assert_has(&msrs, "MSR 0x48b IA32_VMX_PROCBASED_CTLS2 absent: \"activate secondary controls\" is fixed 0");
        let secondary = section(&text, "secondary processor-based");
        assert_eq!(secondary, ["not available: \"activate secondary controls\" is fixed 0"]);
        let ept = section(&text, "EPT_VPID_CAP");
        assert_eq!(ept, ["not available: neither \"enable EPT\" nor \"enable VPID\" may be 1"]);
    }

    #[test]
    fn every_line_is_short_and_the_report_ends_with_a_newline() {
        let text = report(&bochs());
        for line in text.lines() {
            assert!(line.len() < 100, "{} characters: {line:?}", line.len());
        }
        assert!(text.ends_with("== end of capability report ==\n"));
    }
}
