//! The guest state the VMCS does *not* switch, switched by hand when the
//! scheduler moves the CPU from one guest to another.
//!
//! A VM exit saves and a VM entry loads the guest's RIP, RSP, RFLAGS, control
//! registers, segment registers, DR7 (with the debug-controls controls) and a few MSRs (SDM Vol. 3C, 28.3 "Saving
//! Guest State" and 27.3.2 "Loading Guest State"). Everything else the guest
//! can touch stays in the CPU across exits — which is why a single guest gets
//! it back for free, and why two guests sharing one CPU would see each other's
//! values unless the hypervisor saves and reloads it:
//!
//! | state | how the guest reaches it | switched here by |
//! |---|---|---|
//! | x87, SSE, AVX… registers | directly | XSAVE / XRSTOR (SDM Vol. 1, 13.8 and 13.9) |
//! | XCR0 | XSETBV (exits) | XSETBV with the guest's value |
//! | CR2 | MOV from CR2, written by #PF | MOV CR2 |
//! | DR0–DR3, DR6 | MOV DR (MOV-DR exiting is off) | MOV DR |
//! | KERNEL_GS_BASE, STAR, LSTAR, CSTAR, FMASK | RDMSR/WRMSR pass through the MSR bitmap | RDMSR/WRMSR |
//!
//! IA32_TSC_AUX is not in the table: RDTSCP is not enabled for guests and the
//! MSR is not in the pass-through list ([`hypervisor_core::msr::PASS_THROUGH`]),
//! so no guest can read or write it. FS.base and GS.base pass through too, but
//! they are guest-state fields of the VMCS, switched by the CPU.
//!
//! The hypervisor itself uses none of this state (it is built soft-float, never
//! page-faults, sets no breakpoints and uses no SYSCALL), so whatever is in the
//! CPU between two exits of one guest is that guest's. The switch costs a few
//! hundred instructions and happens only when the scheduler changes guests,
//! never on the exit path.

use alloc::boxed::Box;

use crate::vmx;

/// The MSRs guests access without an exit that the VMCS does not hold.
const SWITCHED_MSRS: [u32; 5] = [
    hypervisor_core::msr::IA32_KERNEL_GS_BASE,
    hypervisor_core::msr::IA32_STAR,
    hypervisor_core::msr::IA32_LSTAR,
    hypervisor_core::msr::IA32_CSTAR,
    hypervisor_core::msr::IA32_FMASK,
];

/// DR6 at reset (SDM Vol. 3B, 18.2.3 "Debug Status Register (DR6)").
const DR6_INIT: u64 = 0xFFFF_0FF0;

/// Bytes reserved for one XSAVE area (the legacy region, the header and the
/// extended components up to AVX-512 fit; [`XsaveLayout::detect`] checks).
pub const XSAVE_AREA_BYTES: usize = 4096;

/// An XSAVE area: 64-byte aligned as XSAVE/XRSTOR require (SDM Vol. 1, 13.4
/// "XSAVE Area").
#[repr(C, align(64))]
pub struct XsaveArea([u8; XSAVE_AREA_BYTES]);

/// Offset of MXCSR in the legacy region of an XSAVE area (SDM Vol. 1, 10.5.1
/// "FXSAVE Area").
const MXCSR_OFFSET: usize = 24;
/// MXCSR after reset: every SIMD floating-point exception masked (SDM Vol. 1, 10.2.3.1).
const MXCSR_INIT: u32 = 0x1F80;

impl XsaveArea {
    /// The area of a CPU after reset. A header with XSTATE_BV = 0 makes XRSTOR
    /// put every component in its initial state — except MXCSR, which XRSTOR
    /// loads from the legacy region whenever SSE or AVX state is requested
    /// (SDM Vol. 1, 13.8.1 "Standard Form of XRSTOR"), so it is set to its
    /// reset value here.
    fn reset() -> Box<Self> {
        let mut area = Box::new(XsaveArea([0; XSAVE_AREA_BYTES]));
        area.0[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&MXCSR_INIT.to_le_bytes());
        area
    }
}

/// Which state components the CPU has, found once at start-up.
#[derive(Debug, Clone, Copy)]
pub struct XsaveLayout {
    /// Every component this CPU supports (CPUID.(EAX=0DH,ECX=0):EDX:EAX); XCR0
    /// is set to this while a guest's state is saved and restored, so that no
    /// component a guest has not enabled yet keeps another guest's values.
    pub all_components: u64,
    /// The area size those components need (CPUID.(EAX=0DH,ECX=0):ECX).
    pub area_bytes: u32,
}

/// Why the extended state cannot be switched on this CPU.
#[derive(Debug, Clone, Copy)]
pub enum ContextError {
    /// The CPU has no XSAVE: the x87/SSE state could not be switched between guests.
    NoXsave,
    /// The XSAVE area this CPU needs is larger than [`XSAVE_AREA_BYTES`].
    XsaveAreaTooLarge {
        /// Bytes the CPU reports.
        needed: u32,
    },
}

impl core::fmt::Display for ContextError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ContextError::NoXsave => f.write_str("the CPU has no XSAVE; guests' x87/SSE state cannot be switched"),
            ContextError::XsaveAreaTooLarge { needed } => {
                write!(f, "the CPU's XSAVE area needs {needed} bytes, more than the {XSAVE_AREA_BYTES} reserved")
            }
        }
    }
}

impl XsaveLayout {
    /// Reads CPUID leaf 0xD (SDM Vol. 1, 13.2 "Enumeration of CPU Support for
    /// XSAVE Instructions and XSAVE-Supported Features").
    pub fn detect() -> Result<Self, ContextError> {
        if !vmx::has_xsave() {
            return Err(ContextError::NoXsave);
        }
        let leaf = vmx::cpuid(0xD, 0);
        let layout =
            XsaveLayout { all_components: (u64::from(leaf.edx) << 32) | u64::from(leaf.eax), area_bytes: leaf.ecx };
        if layout.area_bytes as usize > XSAVE_AREA_BYTES {
            return Err(ContextError::XsaveAreaTooLarge { needed: layout.area_bytes });
        }
        Ok(layout)
    }
}

/// One guest's share of the CPU state the VMCS does not switch.
pub struct CpuContext {
    /// x87/SSE/AVX registers.
    xsave: Box<XsaveArea>,
    /// The guest's XCR0 (x87 only until it executes XSETBV).
    pub xcr0: u64,
    cr2: u64,
    debug: [u64; 4],
    dr6: u64,
    msrs: [u64; SWITCHED_MSRS.len()],
}

impl CpuContext {
    /// The state of a CPU after reset: every component initial, XCR0 = x87,
    /// CR2, DR0–DR3 and the MSRs zero, DR6 at its reset value.
    pub fn new() -> Self {
        CpuContext {
            xsave: XsaveArea::reset(),
            xcr0: 1,
            cr2: 0,
            debug: [0; 4],
            dr6: DR6_INIT,
            msrs: [0; SWITCHED_MSRS.len()],
        }
    }

    /// Host memory this context occupies.
    pub const fn bytes() -> usize {
        core::mem::size_of::<XsaveArea>() + core::mem::size_of::<CpuContext>()
    }

    /// Copies the guest's state out of the CPU (after its last exit).
    pub fn save(&mut self, layout: &XsaveLayout) {
        // XCR0 = every component, so the area holds all of them (a component
        // the guest never enabled is saved in whatever state the last restore
        // left it: initial, or this guest's own).
        vmx::xsetbv(layout.all_components);
        // SAFETY: the area is 64-byte aligned and large enough for every
        // component (`XsaveLayout::detect` checked the size); CR4.OSXSAVE is set.
        unsafe {
            core::arch::asm!(
                "xsave64 [{area}]",
                area = in(reg) self.xsave.0.as_mut_ptr(),
                in("eax") layout.all_components as u32,
                in("edx") (layout.all_components >> 32) as u32,
                options(nostack),
            );
        }
        // SAFETY: reading CR2 and the debug registers has no side effects at CPL 0.
        unsafe {
            core::arch::asm!("mov {}, cr2", out(reg) self.cr2, options(nostack, nomem));
            core::arch::asm!("mov {}, dr0", out(reg) self.debug[0], options(nostack, nomem));
            core::arch::asm!("mov {}, dr1", out(reg) self.debug[1], options(nostack, nomem));
            core::arch::asm!("mov {}, dr2", out(reg) self.debug[2], options(nostack, nomem));
            core::arch::asm!("mov {}, dr3", out(reg) self.debug[3], options(nostack, nomem));
            core::arch::asm!("mov {}, dr6", out(reg) self.dr6, options(nostack, nomem));
        }
        for (value, msr) in self.msrs.iter_mut().zip(SWITCHED_MSRS) {
            // SAFETY: these architectural MSRs exist on every 64-bit CPU.
            *value = unsafe { vmx::read_msr(msr) };
        }
    }

    /// Puts the guest's state into the CPU (before its next entry).
    pub fn restore(&self, layout: &XsaveLayout) {
        vmx::xsetbv(layout.all_components);
        // SAFETY: the area is aligned, holds either the reset image (a valid
        // "all initial" image) or what XSAVE64 wrote, and the guest cannot reach it
        // (it is hypervisor heap, outside every EPT). Components missing from
        // XSTATE_BV are initialised, so nothing of the previous guest remains.
        unsafe {
            core::arch::asm!(
                "xrstor64 [{area}]",
                area = in(reg) self.xsave.0.as_ptr(),
                in("eax") layout.all_components as u32,
                in("edx") (layout.all_components >> 32) as u32,
                options(nostack, readonly),
            );
        }
        vmx::xsetbv(self.xcr0);
        vmx::write_cr2(self.cr2);
        // SAFETY: DR0–DR3 hold addresses that only act when DR7 enables them;
        // the host runs with DR7 = 0x400 (VM exit sets it, SDM Vol. 3C,
        // 28.3.3), and the guest's DR7 is the VMCS's (saved on exit and
        // loaded on entry with the debug-controls controls, where the CPU
        // offers them). DR6 is a status register.
        unsafe {
            core::arch::asm!("mov dr0, {}", in(reg) self.debug[0], options(nostack, nomem));
            core::arch::asm!("mov dr1, {}", in(reg) self.debug[1], options(nostack, nomem));
            core::arch::asm!("mov dr2, {}", in(reg) self.debug[2], options(nostack, nomem));
            core::arch::asm!("mov dr3, {}", in(reg) self.debug[3], options(nostack, nomem));
            core::arch::asm!("mov dr6, {}", in(reg) self.dr6, options(nostack, nomem));
        }
        for (&value, msr) in self.msrs.iter().zip(SWITCHED_MSRS) {
            // SAFETY: the values are either zero or what the guest wrote
            // through the pass-through bitmap (the CPU checked them then: a
            // non-canonical address would have raised #GP in the guest).
            unsafe { vmx::write_msr(msr, value) };
        }
    }
}

impl Default for CpuContext {
    fn default() -> Self {
        Self::new()
    }
}
